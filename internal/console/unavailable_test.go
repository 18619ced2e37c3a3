package console_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/api"
)

// TestRedisDownPages: a page whose Redis read fails as unreachable is a
// 503 HTML page saying to retry, without the error (it may name the
// address); the page the API server sends for one it stopped waiting for
// (api.UnavailableAnswerer) is the console's too.
func TestRedisDownPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	cn := e.conn("user_good")
	e.te.Mini.SetError("LOADING Redis is loading the dataset in memory")
	t.Cleanup(func() { e.te.Mini.SetError("") })
	b := e.browser()
	for _, path := range []string{"/console/connections/" + cn.ID, "/console/companies/" + e.co.ID, "/console/companies"} {
		got := b.get(path)
		if got.code != http.StatusServiceUnavailable || got.hdr.Get("Retry-After") == "" || !strings.HasPrefix(got.hdr.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s with Redis loading: %d %v, want a 503 page with Retry-After", path, got.code, got.hdr)
		}
		got.has(t, path, "database is not answering", "Reload in a few seconds")
		if strings.Contains(got.text(), "LOADING") {
			t.Errorf("GET %s shows the Redis error", path)
		}
	}
	// The overview shows its panels' failures, not the error.
	if p := b.get("/console/"); strings.Contains(p.text(), "LOADING") || !strings.Contains(p.text(), "slow or unreachable") {
		t.Errorf("the overview with Redis loading: %.2000s", p.text())
	}

	var ua api.UnavailableAnswerer = e.console
	w := httptest.NewRecorder()
	ua.AnswerUnavailable(w, httptest.NewRequest("GET", "/console/", nil), 2250*time.Millisecond)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("AnswerUnavailable: %d %v", w.Code, w.Header())
	}
	page{code: w.Code, body: w.Body.String()}.has(t, "AnswerUnavailable", "did not load within 2.25s", "database is not answering")
}
