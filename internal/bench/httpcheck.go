package bench

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/httpcheck"
	"github.com/checkd/checkd/checks/sandbox"
)

// checkerTimeout bounds one call of the measures' HTTP checker: far above
// any latency they simulate, so a slow machine never turns checks into
// retries.
const checkerTimeout = 30 * time.Second

// newSecret returns a fresh whsec_ secret for the measures' checker service.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return httpcheck.SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// checkerServer is the reference checker service (as cmd/checkd-sandbox
// serves it): the sandbox over the HTTP checker protocol on a loopback
// port.
type checkerServer struct {
	URL string
	srv *http.Server
}

// startCheckerServer serves the sandbox with latency, verifying secret.
func startCheckerServer(latency time.Duration, secret string) (*checkerServer, error) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetLevel(logrus.WarnLevel)
	h, err := httpcheck.NewHandler(sandbox.New(sandbox.Options{Latency: latency}), httpcheck.HandlerConfig{Secret: secret, Logger: log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("checker service: %w", err)
	}
	c := &checkerServer{URL: "http://" + ln.Addr().String() + "/check", srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("checker service stopped")
		}
	}()
	return c, nil
}

func (c *checkerServer) stop() { _ = c.srv.Close() }

// httpRegistry registers the sandbox datasource as the daemon registers a
// configured checker service: checked through the HTTP checker at url,
// keeping a connection per concurrent check.
func httpRegistry(url, secret string, concurrency int) (*checks.Registry, *httpcheck.Checker, error) {
	c, err := httpcheck.New(httpcheck.Config{URL: url, Secret: secret, Timeout: checkerTimeout, AllowHTTP: true, MaxIdleConns: concurrency})
	if err != nil {
		return nil, nil, err
	}
	reg := checks.NewRegistry()
	if err := reg.Register(sandbox.Datasource, c); err != nil {
		return nil, nil, err
	}
	return reg, c, nil
}
