package ctl_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/checkd/checkd/internal/ctl"
)

// ExampleRun lists companies, as `checkctl companies list` does; the
// httptest server stands in for checkd.
func ExampleRun() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != "k" {
			http.Error(w, `{"error":{"code":"unauthorized","message":"bad key"}}`, http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"companies":[{"id":"co_1","name":"Acme","isActive":true,"createdAt":"2026-03-02T10:00:00Z"}]}`)
	}))
	defer api.Close()

	code := ctl.Run(context.Background(), []string{"--url", api.URL, "--api-key", "k", "companies", "list"},
		ctl.Env{Stdout: os.Stdout, Stderr: os.Stdout})
	fmt.Println("exit", code)
	// Output:
	// ID    NAME  ACTIVE  CREATED
	// co_1  Acme  yes     2026-03-02T10:00:00Z
	// exit 0
}
