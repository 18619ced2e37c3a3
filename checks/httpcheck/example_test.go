package httpcheck_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/httpcheck"
	"github.com/checkd/checkd/checks/sandbox"
)

// A checker service (here the sandbox, served by NewHandler as
// cmd/checkd-sandbox serves it) and checkd's side calling it (New, as the
// daemon registers a datasource configured with checker: http).
func Example() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=" // echo "whsec_$(openssl rand -base64 32)"
	log := logrus.New()
	log.SetOutput(os.Stderr)
	h, err := httpcheck.NewHandler(sandbox.New(sandbox.Options{}), httpcheck.HandlerConfig{Secret: secret, Logger: log})
	if err != nil {
		panic(err)
	}
	svc := httptest.NewServer(h)
	defer svc.Close()

	c, err := httpcheck.New(httpcheck.Config{URL: svc.URL + "/check", Secret: secret, Timeout: 30 * time.Second,
		AllowHTTP: true, MaxIdleConns: 20}) // https in production
	if err != nil {
		panic(err)
	}
	for _, user := range []string{"user_good", "error_PASSWORD_INCORRECT"} {
		res, err := c.Check(context.Background(), checks.Request{ConnectionID: "cn_example", Datasource: "utilityco",
			Credentials: checks.Credentials{Username: user, Password: "hunter22"}})
		fmt.Println(res.Status, len(res.Accounts), err)
	}
	// Output:
	// CONNECTED 2 <nil>
	// PASSWORD_INCORRECT 0 <nil>
}
