package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// categories are the connection categories in the order the console shows
// them, with what each means for an admin.
var categories = []struct {
	Category    checks.Category
	Label, Hint string
}{
	{checks.CategoryHealthy, "Healthy", "checked on schedule"},
	{checks.CategoryProviderError, "Provider errors", "the provider's website failed; checked again at the next slot"},
	{checks.CategoryCredential, "Need the customer", "login refused or more verification needed: not checked until the customer updates it"},
	{checks.CategorySystem, "Paused by an admin", "deactivated connections and inactive companies: not checked"},
}

type statusRow struct {
	Status checks.ConnectionStatus
	Info   checks.Info
	N      int64
}

type categoryRow struct {
	Category    checks.Category
	Label, Hint string
	N           int64
	Statuses    []statusRow
}

// byCategory groups per-status counts into the categories.
func byCategory(counts map[checks.ConnectionStatus]int64) ([]categoryRow, int64) {
	out := make([]categoryRow, len(categories))
	var total int64
	for i, cat := range categories {
		out[i] = categoryRow{Category: cat.Category, Label: cat.Label, Hint: cat.Hint}
		for _, st := range checks.ConnectionStatuses {
			if st.Category() != cat.Category {
				continue
			}
			in, _ := st.Info()
			out[i].Statuses = append(out[i].Statuses, statusRow{Status: st, Info: in, N: counts[st]})
			out[i].N += counts[st]
		}
		total += out[i].N
	}
	return out, total
}

type queueRow struct {
	Name                                             string
	Exists                                           bool
	Size, Pending, Active, Scheduled, Retry, Archive int
	Processed, Failed                                int
	Latency                                          string
	Paused                                           bool
}

type overviewData struct {
	Categories  []categoryRow
	Total       int64
	CountsErr   string
	Queues      []queueRow
	QueuesErr   string
	Backlog     int64
	BacklogErr  string
	Forecast    *chart
	ForecastErr string
	// Datasources is nil when the console has no datasource rules.
	Datasources    []store.DatasourceHealth
	HasDatasources bool
	DatasourcesErr string
	Webhooks       webhooksData
}

func (c *Console) overview(q *request) {
	ctx := q.r.Context()
	var d overviewData
	if counts, err := c.cfg.Store.StatusCounts(ctx); err != nil {
		d.CountsErr = c.panelError(q, err, "read the status counters")
	} else {
		d.Categories, d.Total = byCategory(counts)
	}
	d.Queues, d.QueuesErr = c.queues(q)
	now := c.cfg.Clock.Now()
	if n, err := c.cfg.Store.DueBacklog(ctx, now); err != nil {
		d.BacklogErr = c.panelError(q, err, "count the checks due now")
	} else {
		d.Backlog = n
	}
	if windows, err := c.cfg.Store.DueForecast(ctx, forecastBounds(now)); err != nil {
		d.ForecastErr = c.panelError(q, err, "read the schedule for the forecast")
	} else {
		d.Forecast = drawForecast(windows)
	}
	if c.cfg.DatasourceRules != nil {
		d.HasDatasources = true
		var names []string
		if c.cfg.Datasources != nil {
			names = c.cfg.Datasources()
		}
		var err error
		if d.Datasources, err = c.cfg.Store.DatasourceHealths(ctx, names, c.cfg.DatasourceRules, now); err != nil {
			d.DatasourcesErr = c.panelError(q, err, "read the datasources' health")
		}
	}
	d.Webhooks = c.webhooks(q)
	c.render(q, http.StatusOK, "overview", "Overview", "overview", d)
}

// panelError logs err and returns what one panel of a page says instead
// of its content.
func (c *Console) panelError(q *request, err error, what string) string {
	c.log.WithError(err).WithField("path", q.r.URL.Path).Warn("console: " + what)
	if api.Unreachable(err) { // not the error: it may name the Redis address
		return "Could not " + what + ": checkd's Redis is slow or unreachable. Reload in a few seconds."
	}
	return "Could not " + what + ": " + err.Error()
}

// queues reads the task queues as GET /v1/queues does, with their latency.
func (c *Console) queues(q *request) ([]queueRow, string) {
	if c.cfg.Queues == nil {
		return nil, "The queues cannot be read here: this console has no queue inspector."
	}
	names, err := c.cfg.Queues.Queues()
	if err != nil {
		return nil, c.panelError(q, err, "list the task queues")
	}
	exist := map[string]bool{}
	for _, n := range names {
		exist[n] = true
	}
	out := make([]queueRow, 0, len(tasks.Queues))
	for _, name := range tasks.Queues {
		row := queueRow{Name: name, Latency: "—"}
		if exist[name] {
			in, err := c.cfg.Queues.GetQueueInfo(name)
			if err != nil {
				return nil, c.panelError(q, err, "read queue "+name)
			}
			row = queueRow{Name: name, Exists: true, Size: in.Size, Pending: in.Pending, Active: in.Active, Scheduled: in.Scheduled,
				Retry: in.Retry, Archive: in.Archived, Processed: in.Processed, Failed: in.Failed, Paused: in.Paused, Latency: "—"}
			if in.Latency > 0 {
				row.Latency = in.Latency.Round(100 * time.Millisecond).String()
			}
		}
		out = append(out, row)
	}
	return out, ""
}

// companyRow is a company with its connections by category.
type companyRow struct {
	Company    store.Company
	Total      int64
	ByCategory map[string]int64 // by checks.Category
}

func (c *Console) companies(q *request) {
	ctx := q.r.Context()
	cos, err := c.cfg.Store.ListCompanies(ctx)
	if err != nil {
		c.serverError(q, err, "list the companies")
		return
	}
	ids := make([]string, len(cos))
	for i, co := range cos {
		ids[i] = co.ID
	}
	counts, err := c.cfg.Store.CompanyStatusCounts(ctx, ids)
	if err != nil {
		c.serverError(q, err, "count the companies' connections")
		return
	}
	rows := make([]companyRow, len(cos))
	for i, co := range cos {
		rows[i] = companyRow{Company: co, ByCategory: map[string]int64{}}
		for st, n := range counts[i] {
			rows[i].ByCategory[string(st.Category())] += n
			rows[i].Total += n
		}
	}
	c.render(q, http.StatusOK, "companies", "Companies", "companies", rows)
}

// pageSize is how many connections a company page lists.
const pageSize = 50

type chip struct {
	Label    string
	N        int64
	URL      string
	Selected bool
	Class    string
}

type connRow struct {
	Conn store.Connection
	Info checks.Info
}

type companyData struct {
	Company store.Company
	Total   int64
	Chips   []chip
	Filter  checks.ConnectionStatus
	// Site is the site filter ("" for every site), as GET
	// /v1/connection/company/{id}?siteId= takes it.
	Site string
	Rows []connRow
	// Next is the next page's URL, First the first page's when this is
	// not it.
	Next, First string
}

// companyOr404 reads the company of the request's {id}, answering the
// error page when it cannot.
func (c *Console) companyOr404(q *request) (store.Company, bool) {
	return lookup(c, q, c.cfg.Store.GetCompany, "company", "pick it from the companies list")
}

// lookup reads the record of the request's {id} with get, answering the
// error page (404 for an unknown ID, saying what to try: hint) when it
// cannot.
func lookup[T any](c *Console, q *request, get func(context.Context, string) (T, error), kind, hint string) (T, bool) {
	id := q.r.PathValue("id")
	v, err := get(q.r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		c.errorPage(q, http.StatusNotFound, strings.ToUpper(kind[:1])+kind[1:]+" not found",
			fmt.Sprintf("There is no %s %.100q. Check the ID, or %s.", kind, id, hint))
		return v, false
	}
	if err != nil {
		c.serverError(q, err, "read the "+kind)
		return v, false
	}
	return v, true
}

func (c *Console) company(q *request) {
	co, ok := c.companyOr404(q)
	if !ok {
		return
	}
	ctx := q.r.Context()
	query := q.r.URL.Query()
	var filter []checks.ConnectionStatus
	var status checks.ConnectionStatus
	if v := query.Get("status"); v != "" {
		st, err := checks.ParseConnectionStatus(v)
		if err != nil {
			c.errorPage(q, http.StatusBadRequest, "Unknown status filter", err.Error()+".")
			return
		}
		status, filter = st, []checks.ConnectionStatus{st}
	}
	counts, err := c.cfg.Store.CompanyStatusCounts(ctx, []string{co.ID})
	if err != nil {
		c.serverError(q, err, "count the company's connections")
		return
	}
	site := strings.TrimSpace(query.Get("siteId"))
	if site != "" && !store.ValidSiteID(site) {
		c.errorPage(q, http.StatusBadRequest, "Not a site ID",
			fmt.Sprintf("A site ID is 1 to %d bytes without control characters; %.100q is not one.", store.MaxSiteIDLen, site))
		return
	}
	cursor := query.Get("cursor")
	page, err := c.cfg.Store.ListConnectionsBy(ctx, co.ID, store.ListFilter{Statuses: filter, SiteID: site}, cursor, pageSize)
	if errors.Is(err, store.ErrInvalid) {
		c.errorPage(q, http.StatusBadRequest, "This page link is not valid",
			"The page cursor in the address is not one this list handed out: start again from the first page.")
		return
	}
	if err != nil {
		c.serverError(q, err, "list the company's connections")
		return
	}
	base := RootPath + "/companies/" + url.PathEscape(co.ID)
	d := companyData{Company: co, Filter: status, Site: site}
	pageURL := func(st checks.ConnectionStatus, cursor string) string {
		v := url.Values{}
		if st != "" {
			v.Set("status", string(st))
		}
		if site != "" {
			v.Set("siteId", site)
		}
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		if len(v) == 0 {
			return base
		}
		return base + "?" + v.Encode()
	}
	for _, st := range checks.ConnectionStatuses {
		d.Total += counts[0][st]
	}
	d.Chips = append(d.Chips, chip{Label: "All", N: d.Total, URL: pageURL("", ""), Selected: status == ""})
	for _, st := range checks.ConnectionStatuses {
		if n := counts[0][st]; n > 0 || st == status {
			in, _ := st.Info()
			d.Chips = append(d.Chips, chip{Label: in.DisplayName, N: n, URL: pageURL(st, ""), Selected: st == status,
				Class: "cat-" + strings.ReplaceAll(string(in.Category), "_", "-")})
		}
	}
	for _, cn := range page.Connections {
		in, _ := cn.Status.Info()
		d.Rows = append(d.Rows, connRow{Conn: cn, Info: in})
	}
	if page.Next != "" {
		d.Next = pageURL(status, page.Next)
	}
	if cursor != "" {
		d.First = pageURL(status, "")
	}
	c.render(q, http.StatusOK, "company", co.Name, "companies", d)
}

type confirmData struct {
	Company store.Company
	Action  string // deactivate or reactivate
	// Affected is how many connections the action converts, Checked how
	// many of them are checked today (deactivation) or will be again
	// (reactivation).
	Affected, Total int64
	Already         bool // the company is in that state already (the action finishes an interrupted run)
}

// companyAction reads the {action} of a company route: true to
// reactivate.
func (c *Console) companyAction(q *request) (active, ok bool) {
	switch q.r.PathValue("action") {
	case "deactivate":
		return false, true
	case "reactivate":
		return true, true
	}
	c.notFound(q)
	return false, false
}

// companyTarget reads a company route's {action} and {id}: the company
// and true to reactivate it; false when it answered the error page.
func (c *Console) companyTarget(q *request) (co store.Company, active, ok bool) {
	if active, ok = c.companyAction(q); !ok {
		return co, active, false
	}
	co, ok = c.companyOr404(q)
	return co, active, ok
}

func (c *Console) confirmCompany(q *request) {
	if co, active, ok := c.companyTarget(q); ok {
		c.renderConfirm(q, http.StatusOK, co, active)
	}
}

func (c *Console) renderConfirm(q *request, status int, co store.Company, active bool) {
	counts, err := c.cfg.Store.CompanyStatusCounts(q.r.Context(), []string{co.ID})
	if err != nil {
		c.serverError(q, err, "count the company's connections")
		return
	}
	d := confirmData{Company: co, Action: "deactivate", Already: !co.IsActive}
	for st, n := range counts[0] {
		d.Total += n
		if st != checks.ConnCompanyInactive {
			d.Affected += n
		}
	}
	if active {
		d.Action, d.Affected, d.Already = "reactivate", counts[0][checks.ConnCompanyInactive], co.IsActive
	}
	title := strings.ToUpper(d.Action[:1]) + d.Action[1:] + " " + co.Name
	c.render(q, status, "confirm", title, "companies", d)
}
