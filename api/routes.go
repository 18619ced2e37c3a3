package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Route is one route the server serves, as its OpenAPI document
// (api/openapi.json, served at GET /v1/openapi.json) must describe it. The
// tests hold the document to Routes, both ways.
type Route struct {
	// Method is the HTTP method, "" for a pattern that takes every method
	// (a mounted subtree such as the dashboard's).
	Method string
	// Path is the path as the OpenAPI document writes it
	// (/v1/company/{companyId}); a mounted subtree ends in "/".
	Path string
	// KeyRequired is whether the server refuses the route without an API
	// key (X-API-Key, or Authorization: Bearer). A route without it may
	// authorize by other means: a link's token in the body, the
	// dashboard's login.
	KeyRequired bool
	// Scope is the scope a key needs on the route ("" when it takes no
	// key).
	Scope Scope
}

// Routes lists every route the server serves, in the order they were
// registered: the API's own and those added with Mount. It is read from
// the registrations themselves, so a registration cannot be left out.
func (s *Server) Routes() []Route {
	return slices.Clone(s.mux.routes)
}

// routeMux is the server's ServeMux, remembering every pattern it is given
// (and whether its handler is behind the API-key check), so that Routes
// lists exactly what is served.
type routeMux struct {
	*http.ServeMux
	routes []Route
}

func newRouteMux() *routeMux { return &routeMux{ServeMux: http.NewServeMux()} }

// Handle registers h at pattern, as ServeMux.Handle does (panicking on an
// invalid or conflicting pattern), and records the route.
func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.ServeMux.Handle(pattern, h)
	method, path := splitPattern(pattern)
	kh, keyed := h.(keyedHandler)
	m.routes = append(m.routes, Route{Method: method, Path: path, KeyRequired: keyed, Scope: kh.scope})
}

// HandleFunc is Handle for a function.
func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// splitPattern splits a ServeMux pattern ("GET example.com/v1/x/{$}") into
// its method and its path as OpenAPI writes it ("GET", "/v1/x/"); the host
// is dropped.
func splitPattern(pattern string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	path = strings.TrimLeft(path, " \t")
	if i := strings.IndexByte(path, '/'); i > 0 {
		path = path[i:]
	}
	return method, strings.TrimSuffix(path, "{$}")
}

// keyedHandler is a handler behind the API-key check: requireScope and
// RequireKey return one, so routeMux knows which routes need a key, and
// which scope.
type keyedHandler struct {
	http.Handler
	scope Scope
}

// connPrefix starts the routes the connection table dispatches.
const connPrefix = "/v1/connection/"

// handleConn registers a route /v1/connection/{connectionId}/<view> or
// /v1/connection/company/{companyId} ("METHOD path") in the connection
// table that connectionRoute dispatches, behind the API-key check for
// scope (ServeMux refuses the two shapes side by side: see routes), and
// records it. Like ServeMux.Handle, it panics on a pattern of another
// shape or one registered twice.
func (s *Server) handleConn(pattern string, scope Scope, h connHandler) {
	method, path := splitPattern(pattern)
	key := ""
	switch rest := strings.TrimPrefix(path, connPrefix); {
	case !strings.HasPrefix(path, connPrefix) || method == "":
	case rest == "company/{companyId}":
		key = "company"
	case strings.HasPrefix(rest, "{connectionId}/") && !strings.ContainsAny(strings.TrimPrefix(rest, "{connectionId}/"), "/{}"):
		key = strings.TrimPrefix(rest, "{connectionId}/") // "" for a bare trailing slash: refused below
	}
	if key == "" {
		panic(fmt.Sprintf("api: connection route %q is neither METHOD %s{connectionId}/<view> nor METHOD %scompany/{companyId}", pattern, connPrefix, connPrefix))
	}
	if s.connRoutes == nil {
		s.connRoutes = map[string]map[string]connRoute{}
	}
	if s.connRoutes[key] == nil {
		s.connRoutes[key] = map[string]connRoute{}
	}
	if _, dup := s.connRoutes[key][method]; dup {
		panic(fmt.Sprintf("api: connection route %q is registered twice", pattern))
	}
	s.connRoutes[key][method] = connRoute{h: h, scope: scope}
	s.mux.routes = append(s.mux.routes, Route{Method: method, Path: path, KeyRequired: true, Scope: scope})
}
