package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/store"
)

// DefaultPageSize is the page size of a connection listing without ?limit.
const DefaultPageSize = 100

// MaxHistoryLimit bounds ?limit of a history request (the store keeps fewer
// entries per connection anyway).
const MaxHistoryLimit = 1000

// CreateCompanyRequest is the body of POST /v1/company.
type CreateCompanyRequest struct {
	Name string `json:"name"`
	// AutoTrack, when set, decides whether the company's discovered
	// accounts are tracked at once or wait for a decision (PATCH
	// .../status); absent, the service's store.autoTrack decides.
	AutoTrack *bool `json:"autoTrack,omitempty"`
}

// CreateConnectionRequest is the body of POST /v1/connection/company/{companyId}.
type CreateConnectionRequest struct {
	Datasource  DatasourceName      `json:"datasource"`
	Name        string              `json:"name,omitempty"`
	Credentials *checks.Credentials `json:"credentials"`
	// SiteIDs are the customer's sites the connection serves.
	SiteIDs []string `json:"siteIds,omitempty"`
}

// DatasourceName is a request's datasource: its name, or the object
// answers carry ({"name": "sandbox"}), so a connection read from the API
// can be sent back as it is.
type DatasourceName string

// datasourceObject is the object form of a DatasourceName.
type datasourceObject struct {
	Name string `json:"name"`
}

// strictObjectType tells the strict decoding which fields the object form
// has (see strictProblem).
func (DatasourceName) strictObjectType() reflect.Type { return reflect.TypeFor[datasourceObject]() }

// UnmarshalJSON reads a string or {"name": string}; anything else is the
// *json.UnmarshalTypeError encoding/json gives a mistyped field.
func (d *DatasourceName) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return &json.UnmarshalTypeError{Value: "nothing", Type: reflect.TypeFor[string]()}
	}
	switch {
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, (*string)(d))
	case len(b) > 0 && b[0] == '{':
		var o datasourceObject
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			return err
		}
		*d = DatasourceName(o.Name)
		return nil
	case string(b) == "null":
		return nil
	}
	kind := "number"
	switch b[0] {
	case '[':
		kind = "array"
	case 't', 'f':
		kind = "bool"
	}
	return &json.UnmarshalTypeError{Value: kind, Type: reflect.TypeFor[string]()}
}

// CompanyList is the answer of GET /v1/company.
type CompanyList struct {
	Companies []store.Company `json:"companies"`
}

// DatasourceList is the answer of GET /v1/datasources: each datasource's
// health, window counts, durations, breaker and concurrency.
type DatasourceList struct {
	Datasources []store.DatasourceHealth `json:"datasources"`
}

func (s *Server) listDatasources(w http.ResponseWriter, r *http.Request) {
	hs, err := s.st.DatasourceHealths(r.Context(), s.cfg.Datasources(), s.cfg.DatasourceRules, s.cfg.Clock.Now())
	if err != nil {
		s.storeError(w, r, err, "")
		return
	}
	writeJSON(w, http.StatusOK, DatasourceList{Datasources: hs})
}

// StatusInfo is what a status means, derived from the checks vocabulary, so
// a client need not carry its own copy.
type StatusInfo struct {
	StatusDisplayName string          `json:"statusDisplayName"`
	StatusCategory    checks.Category `json:"statusCategory"`
	StatusReason      string          `json:"statusReason"`
	CanRefresh        bool            `json:"canRefresh"`
	CanReconnect      bool            `json:"canReconnect"`
}

// Account is an account as the API returns it: the stored fields and what
// its status means.
type Account struct {
	store.Account
	StatusInfo
}

// Connection is a connection as the API returns it: the stored fields (never
// credentials), what its status means, and its accounts likewise.
type Connection struct {
	store.Connection
	StatusInfo
	// Accounts shadows store.Connection.Accounts with the derived fields.
	Accounts []Account `json:"accounts"`
}

// ConnectionPage is the answer of GET /v1/connection/company/{companyId}.
// NextCursor is empty on the last page; otherwise pass it as ?cursor= with
// the same status filter to get the next page.
type ConnectionPage struct {
	Connections []Connection `json:"connections"`
	NextCursor  string       `json:"nextCursor"`
}

// History is the answer of GET /v1/connection/{connectionId}/history, newest
// first.
type History struct {
	History []store.HistoryEntry `json:"history"`
}

// Statuses is the answer of GET /v1/statuses: the vocabulary a UI needs.
type Statuses struct {
	ConnectionStatuses []checks.Info           `json:"connectionStatuses"`
	AccountStatuses    []checks.Info           `json:"accountStatuses"`
	TrackingStatuses   []checks.TrackingStatus `json:"trackingStatuses"`
	Datasources        []string                `json:"datasources"`
}

func statusInfo(in checks.Info) StatusInfo {
	return StatusInfo{StatusDisplayName: in.DisplayName, StatusCategory: in.Category,
		StatusReason: in.Reason, CanRefresh: in.CanRefresh, CanReconnect: in.CanReconnect}
}

func viewConnection(c store.Connection) Connection {
	in, _ := c.Status.Info() // an unknown stored status leaves the derived fields empty
	out := Connection{Connection: c, StatusInfo: statusInfo(in), Accounts: make([]Account, len(c.Accounts))}
	if c.Investigation != nil && c.Investigation.By == store.InvestigationAutomatic {
		out.StatusReason = checks.ReasonContinuedFailures
	}
	for i, a := range c.Accounts {
		ai, _ := a.Status.Info()
		out.Accounts[i] = Account{Account: a, StatusInfo: statusInfo(ai)}
	}
	out.Connection.Accounts = nil // shadowed; keeps one copy in memory
	return out
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /v1/openapi.json", s.openAPI)
	api := func(pattern string, scope Scope, h http.HandlerFunc) { s.mux.Handle(pattern, s.requireScope(scope, h)) }
	api("POST /v1/company", ScopeWrite, s.createCompany)
	api("GET /v1/company", ScopeRead, s.listCompanies)
	api("GET /v1/company/{companyId}", ScopeRead, s.getCompany)
	api("PATCH /v1/company/{companyId}", ScopeWrite, s.patchCompany)
	// /v1/connection/company/{companyId} and /v1/connection/{connectionId}/{view}
	// overlap ("/v1/connection/company/details") with neither more specific,
	// which ServeMux refuses; one pattern dispatches both, by the connRoutes
	// table that handleConn fills. Connection IDs start with "cn_", so never
	// "company".
	s.mux.ServeMux.HandleFunc("/v1/connection/{id}/{view}", s.connectionRoute)
	s.handleConn("GET /v1/connection/company/{companyId}", ScopeRead, s.listConnections)
	s.handleConn("POST /v1/connection/company/{companyId}", ScopeWrite, s.createConnection)
	s.handleConn("GET /v1/connection/{connectionId}/details", ScopeRead, s.connectionDetails)
	s.handleConn("PATCH /v1/connection/{connectionId}/details", ScopeWrite, s.patchDetails)
	s.handleConn("GET /v1/connection/{connectionId}/history", ScopeRead, s.connectionHistory)
	s.handleConn("PATCH /v1/connection/{connectionId}/status", ScopeWrite, s.confirmAccounts)
	// Investigation is the operations team's (a company-limited key cannot
	// hold admin).
	s.handleConn("POST /v1/connection/{connectionId}/investigation", ScopeAdmin, s.flagInvestigation)
	s.handleConn("DELETE /v1/connection/{connectionId}/investigation", ScopeAdmin, s.clearInvestigation)
	s.handleConn("PATCH /v1/connection/{connectionId}/credentials", ScopeWrite, s.updateCredentials)
	s.handleConn("POST /v1/connection/{connectionId}/refresh", ScopeWrite, s.refresh)
	s.handleConn("POST /v1/connection/{connectionId}/link", ScopeWrite, s.createLink)
	// Signing a link changes nothing stored, but hands out the power to
	// change credentials: write, like POST .../link.
	api("GET /v1/connection/{connectionId}", ScopeWrite, s.editLink)
	api("GET /v1/statuses", ScopeRead, s.statuses)
	// Providers' health, as integrators may poll it (no tenant's data).
	api("GET /v1/datasources", ScopeRead, s.listDatasources)
	api("GET /v1/queues", ScopeAdmin, s.listQueues)
	api("POST /v1/queues/{queue}/pause", ScopeAdmin, s.pauseQueue)
	api("POST /v1/queues/{queue}/resume", ScopeAdmin, s.resumeQueue)
	api("GET /v1/store/keys", ScopeAdmin, s.keyStatus)
	api("POST /v1/store/rekey", ScopeAdmin, s.startRekey)
	api("POST /v1/keys", ScopeAdmin, s.createAPIKey)
	api("GET /v1/keys", ScopeAdmin, s.listAPIKeys)
	api("DELETE /v1/keys/{name}", ScopeAdmin, s.deleteAPIKey)
	// The link routes take no API key: the signed token is the authority.
	s.mux.HandleFunc("PATCH /v1/link/credentials", s.useLink)
	s.mux.HandleFunc("POST /v1/link/connection", s.useNewLink)
	s.mux.HandleFunc("POST /v1/link/info", s.linkInfo)
	api("GET /v1/connection/company/{companyId}/link", ScopeWrite, s.companyLink)
	api("POST /v1/connection/company/{companyId}/link", ScopeWrite, s.companyLink)
	s.mux.HandleFunc("GET /link", s.linkPage)
}

// connHandler serves one route under /v1/connection/{id}/: id is the
// connection ID, or the company ID of /v1/connection/company/{companyId}.
type connHandler func(w http.ResponseWriter, r *http.Request, id string)

// connRoute is a connHandler and the scope it needs.
type connRoute struct {
	h     connHandler
	scope Scope
}

// connectionRoute dispatches /v1/connection/{id}/{view} by method like the
// mux would: 404 for an unknown view, 405 with Allow for a wrong method
// (neither needs a key), and the API key and its scope before the handler
// (the ID is set as {companyId} or {connectionId}, which requireScope
// reads).
func (s *Server) connectionRoute(w http.ResponseWriter, r *http.Request) {
	id, view := r.PathValue("id"), r.PathValue("view")
	key, param := view, "connectionId"
	if id == "company" {
		key, id, param = "company", view, "companyId"
	}
	methods, ok := s.connRoutes[key]
	if !ok {
		s.noRoute(w, r)
		return
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	route, ok := methods[method]
	if !ok {
		allow := make([]string, 0, len(methods)+1)
		for m := range methods {
			allow = append(allow, m)
			if m == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
		slices.Sort(allow)
		s.methodNotAllowed(w, r, strings.Join(allow, ", "))
		return
	}
	r.SetPathValue(param, id)
	s.requireScope(route.scope, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { route.h(w, r, id) })).ServeHTTP(w, r)
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf(
		"method %s is not allowed on %s: use %s", r.Method, r.URL.Path, allow))
}

// dispatch serves the mux, answering its 404 and 405 in JSON (the mux's own
// are plain text), keeping the Allow header of a 405.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	probe := &headerProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.code == http.StatusMethodNotAllowed {
		s.methodNotAllowed(w, r, probe.header.Get("Allow"))
		return
	}
	s.noRoute(w, r)
}

func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf(
		"no route %s %s: the API lives under /v1 (see GET /v1/statuses, /v1/company, /v1/connection/...)", r.Method, r.URL.Path))
}

// headerProbe captures what the mux's fallback handler would answer.
type headerProbe struct {
	header http.Header
	code   int
}

func (p *headerProbe) Header() http.Header { return p.header }

func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }

func (p *headerProbe) WriteHeader(code int) {
	if p.code == 0 {
		p.code = code
	}
}

func (s *Server) createCompany(w http.ResponseWriter, r *http.Request) {
	if c := callerOf(r.Context()); c != nil && c.companies != nil {
		writeError(w, http.StatusForbidden, CodeForbidden, fmt.Sprintf(
			"key %s is limited to companies %s, so it cannot create one: use a key without a company limit", c.name, strings.Join(c.companies, ", ")))
		return
	}
	var in CreateCompanyRequest
	if !s.decode(w, r, &in) {
		return
	}
	if strings.TrimSpace(in.Name) == "" {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, `name is required: send {"name": "..."}`)
		return
	}
	co, err := s.st.CreateCompany(r.Context(), store.NewCompany{Name: in.Name, AutoTrack: in.AutoTrack})
	if err != nil {
		s.storeError(w, r, err, "")
		return
	}
	w.Header().Set("Location", "/v1/company/"+co.ID)
	writeJSON(w, http.StatusCreated, co)
}

func (s *Server) listCompanies(w http.ResponseWriter, r *http.Request) {
	cos, err := s.st.ListCompanies(r.Context())
	if err != nil {
		s.storeError(w, r, err, "")
		return
	}
	if c := callerOf(r.Context()); c != nil && c.companies != nil {
		cos = slices.DeleteFunc(cos, func(co store.Company) bool { return !c.sees(co.ID) })
	}
	if cos == nil {
		cos = []store.Company{}
	}
	writeJSON(w, http.StatusOK, CompanyList{Companies: cos})
}

func (s *Server) getCompany(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("companyId")
	co, err := s.st.GetCompany(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, companyNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, co)
}

func companyNotFound(id string) string {
	return fmt.Sprintf("company %.100q not found: check the ID (list companies with GET /v1/company)", id)
}

func connectionNotFound(id string) string {
	return fmt.Sprintf("connection %.100q not found: check the ID (list a company's connections with GET /v1/connection/company/{companyId})", id)
}

func (s *Server) createConnection(w http.ResponseWriter, r *http.Request, companyID string) {
	var in CreateConnectionRequest
	if !s.decode(w, r, &in) {
		return
	}
	if problems := s.connectionProblems(in); len(problems) > 0 {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, strings.Join(problems, "; "))
		return
	}
	c, err := s.st.CreateConnection(r.Context(), store.NewConnection{
		CompanyID: companyID, Datasource: string(in.Datasource), Name: in.Name, Credentials: *in.Credentials, SiteIDs: in.SiteIDs})
	if err != nil {
		s.storeError(w, r, err, companyNotFound(companyID))
		return
	}
	w.Header().Set("Location", "/v1/connection/"+c.ID+"/details")
	writeJSON(w, http.StatusCreated, viewConnection(c))
}

// connectionProblems lists what the API itself refuses in a new
// connection (the store checks the rest).
func (s *Server) connectionProblems(in CreateConnectionRequest) []string {
	var problems []string
	valid := s.cfg.Datasources()
	switch {
	case in.Datasource == "":
		problems = append(problems, fmt.Sprintf("datasource is required (one of %s)", strings.Join(valid, ", ")))
	case !slices.Contains(valid, string(in.Datasource)):
		problems = append(problems, (&checks.UnknownValueError{Kind: "datasource", Value: string(in.Datasource), Valid: valid}).Error())
	}
	switch {
	case in.Credentials == nil:
		problems = append(problems, `credentials is required: send {"username": "...", "password": "..."}`)
	case strings.TrimSpace(in.Credentials.Username) == "":
		problems = append(problems, "credentials.username is required")
	}
	return problems
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request, companyID string) {
	q := r.URL.Query()
	statuses, err := parseStatuses(q["status"])
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, err.Error())
		return
	}
	limit, ok := parseLimit(w, q.Get("limit"), DefaultPageSize, store.MaxPageSize)
	if !ok {
		return
	}
	page, err := s.st.ListConnectionsBy(r.Context(), companyID, store.ListFilter{Statuses: statuses, SiteID: q.Get("siteId")}, q.Get("cursor"), limit)
	if err != nil {
		s.storeError(w, r, err, companyNotFound(companyID))
		return
	}
	out := ConnectionPage{Connections: make([]Connection, len(page.Connections)), NextCursor: page.Next}
	for i, c := range page.Connections {
		out.Connections[i] = viewConnection(c)
	}
	writeJSON(w, http.StatusOK, out)
}

// parseStatuses reads ?status= values, each one status or several
// comma-separated, into the reference's order without duplicates, so the
// same filter in any spelling pages the same way. Empty items are ignored.
func parseStatuses(vals []string) ([]checks.ConnectionStatus, error) {
	seen := map[checks.ConnectionStatus]bool{}
	for _, v := range vals {
		for _, item := range strings.Split(v, ",") {
			if strings.TrimSpace(item) == "" {
				continue
			}
			st, err := checks.ParseConnectionStatus(item)
			if err != nil {
				return nil, fmt.Errorf("status filter: %w", err)
			}
			seen[st] = true
		}
	}
	if len(seen) == 0 {
		return nil, nil
	}
	out := make([]checks.ConnectionStatus, 0, len(seen))
	for _, st := range checks.ConnectionStatuses {
		if seen[st] {
			out = append(out, st)
		}
	}
	return out, nil
}

// parseLimit reads ?limit=: def when absent, else an integer in [1, max].
func parseLimit(w http.ResponseWriter, v string, def, max int) (int, bool) {
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest,
			fmt.Sprintf("limit must be an integer from 1 to %d, not %.50q", max, v))
		return 0, false
	}
	return n, true
}

func (s *Server) connectionDetails(w http.ResponseWriter, r *http.Request, id string) {
	c, err := s.st.GetConnection(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, connectionNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, viewConnection(c))
}

func (s *Server) connectionHistory(w http.ResponseWriter, r *http.Request, id string) {
	// 0 lets the store return all it keeps.
	limit, ok := parseLimit(w, r.URL.Query().Get("limit"), 0, MaxHistoryLimit)
	if !ok {
		return
	}
	h, err := s.st.History(r.Context(), id, limit)
	if err != nil {
		s.storeError(w, r, err, connectionNotFound(id))
		return
	}
	if h == nil {
		h = []store.HistoryEntry{}
	}
	writeJSON(w, http.StatusOK, History{History: h})
}

func (s *Server) statuses(w http.ResponseWriter, r *http.Request) {
	ds := s.cfg.Datasources()
	if ds == nil {
		ds = []string{}
	}
	writeJSON(w, http.StatusOK, Statuses{
		ConnectionStatuses: checks.ConnectionInfos(),
		AccountStatuses:    checks.AccountInfos(),
		TrackingStatuses:   checks.TrackingStatuses,
		Datasources:        ds,
	})
}
