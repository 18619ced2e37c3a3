package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/store"
)

// TestDeadlineAnswers503: a handler still running a moment after the
// request's deadline is answered 503 unavailable with Retry-After, and
// whatever it writes later is dropped.
func TestDeadlineAnswers503(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.RequestTimeout = 20 * time.Millisecond })
	release := make(chan struct{})
	ended := make(chan error, 1)
	e.srv.Mount("GET /stuck", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // a Redis call that ignores its context
		w.WriteHeader(http.StatusTeapot)
		_, err := w.Write([]byte("late"))
		ended <- err
	}), true)
	start := time.Now()
	w := e.do(call{method: "GET", path: "/stuck", unchecked: true})
	took := time.Since(start)
	close(release)
	got := decodeAs[api.ErrorResponse](t, w)
	if w.Code != http.StatusServiceUnavailable || got.Error.Code != api.CodeUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("stuck handler: %d %+v (Retry-After %q); want 503 unavailable", w.Code, got, w.Header().Get("Retry-After"))
	}
	if took > 5*time.Second {
		t.Errorf("answered after %s", took)
	}
	if err := <-ended; err == nil {
		t.Error("the late handler's write succeeded; want it refused")
	}
	if strings.Contains(w.Body.String(), "late") {
		t.Errorf("the late answer leaked: %s", w.Body)
	}

	// A handler that answers in time is passed through unchanged, headers
	// and all.
	e.srv.Mount("GET /quick", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Context().Deadline(); !ok {
			t.Error("the request's context has no deadline")
		}
		w.Header().Set("X-Quick", "1")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("done"))
	}), true)
	w = e.do(call{method: "GET", path: "/quick", unchecked: true})
	if w.Code != http.StatusCreated || w.Body.String() != "done" || w.Header().Get("X-Quick") != "1" {
		t.Errorf("quick handler: %d %q %v", w.Code, w.Body, w.Header())
	}
}

// pageHandler is a mounted page that answers the deadline's 503 itself.
type pageHandler struct{ release chan struct{} }

func (p pageHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { <-p.release }

func (p pageHandler) AnswerUnavailable(w http.ResponseWriter, r *http.Request, bound time.Duration) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte("<p>no answer within " + bound.String() + "</p>"))
}

// TestDeadlineAnswerOfAPage: a mounted handler that is an
// UnavailableAnswerer writes the deadline's 503 in its own format.
func TestDeadlineAnswerOfAPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.RequestTimeout = 20 * time.Millisecond })
	p := pageHandler{release: make(chan struct{})}
	defer close(p.release)
	e.srv.Mount("/page/", p, false)
	w := e.do(call{method: "GET", path: "/page/x", unchecked: true})
	want := "<p>no answer within " + api.AnswerBound(20*time.Millisecond).String() + "</p>"
	if w.Code != http.StatusServiceUnavailable || w.Body.String() != want || w.Header().Get("Retry-After") == "" ||
		!strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Errorf("stuck page: %d %q %v; want its own 503 %q with Retry-After", w.Code, w.Body, w.Header(), want)
	}
}

// TestCompanyConversionOutlivesTheRequest: a company conversion that does
// not finish by the request's deadline is answered 202 with inProgress and
// goes on in the background until every connection is converted; Stop
// waits for it.
func TestCompanyConversionOutlivesTheRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.RequestTimeout = 30 * time.Millisecond })
	co := e.company("Acme")
	const n = 300
	ins := make([]store.NewConnection, n)
	for i := range ins {
		ins[i] = store.NewConnection{CompanyID: co.ID, Datasource: "sandbox", Credentials: checks.Credentials{Username: "user_good"}}
	}
	if _, err := e.st.CreateConnections(context.Background(), co.ID, ins); err != nil {
		t.Fatal(err)
	}
	// The conversion reads each status index with ZRANGE: hold those
	// until the request has been answered.
	gate := make(chan struct{})
	e.rdb.AddHook(holdHook{cmd: "zrange", gate: gate})
	w := e.do(call{method: "PATCH", path: "/v1/company/" + co.ID, body: `{"isActive":false}`})
	close(gate)
	got := decodeAs[api.CompanyChangeResponse](t, w)
	if w.Code != http.StatusAccepted || !got.InProgress || got.Company.ID != co.ID || got.Company.IsActive {
		t.Fatalf("deactivate: %d %s; want 202 inProgress", w.Code, w.Body)
	}
	if err := e.srv.Stop(context.Background()); err != nil { // waits for the conversion
		t.Fatal(err)
	}
	counts, err := e.st.StatusCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if counts[checks.ConnCompanyInactive] != n {
		t.Fatalf("after Stop: %d of %d connections COMPANY_INACTIVE (%v)", counts[checks.ConnCompanyInactive], n, counts)
	}
}

// holdHook holds every command named cmd until gate is closed.
type holdHook struct {
	cmd  string
	gate chan struct{}
}

func (h holdHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h holdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == h.cmd {
			<-h.gate
		}
		return next(ctx, cmd)
	}
}

func (h holdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
