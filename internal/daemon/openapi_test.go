package daemon_test

import (
	"testing"

	"github.com/checkd/checkd/internal/daemon"
	"github.com/checkd/checkd/internal/testing/openapitest"
)

// TestOpenAPIMatchesTheServedRoutes holds the API's OpenAPI document to the
// server the daemon assembles (the API's routes and the daemon's mounts),
// both ways: every route served is described, with its authentication, and
// every described operation is served.
func TestOpenAPIMatchesTheServedRoutes(t *testing.T) {
	t.Parallel()
	cfg := baseConfig() // embedded Redis
	cfg.APIKeys = []string{testAPIKey}
	d, err := daemon.New(cfg, quietLogger(t), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(stopCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(stopCtx(t)) })
	undocumented, unserved := openapitest.CompareRoutes(t, d.API().Routes())
	for _, m := range append(undocumented, unserved...) {
		t.Error(m)
	}
}
