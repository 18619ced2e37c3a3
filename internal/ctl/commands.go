package ctl

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// commands lists every command, in help order.
var commands = []*command{
	{name: "companies list", summary: "list companies", maxArgs: 0, run: companiesList},
	{name: "company create", args: "<name>", summary: "create a company", minArgs: 1, maxArgs: 1, run: companyCreate},
	{name: "company deactivate", args: "<companyId>", summary: "deactivate a company: its connections become COMPANY_INACTIVE and stop being checked",
		minArgs: 1, maxArgs: 1, run: companySetActive(false)},
	{name: "company reactivate", args: "<companyId>", summary: "reactivate a company: its connections get their statuses back and are checked",
		minArgs: 1, maxArgs: 1, run: companySetActive(true)},
	{name: "company link", args: "<companyId>", summary: "make a single-use link for the customer to add a connection to the company", minArgs: 1, maxArgs: 1,
		run: companyLink},

	{name: "connections list", args: "<companyId>", flagSyn: "[--status S[,S]] [--limit N] [--cursor C | --all]", summary: "list a company's connections", minArgs: 1, maxArgs: 1,
		detail: "Connections come grouped by status, oldest first within one. Without --all one page is\n" +
			"printed; the next page's cursor is printed on stderr.",
		flags: connectionsListFlags, run: connectionsList},

	{name: "connection create", args: "<companyId>", flagSyn: "--datasource D --username U (--password-stdin | --password P) [--name N]", summary: "create a connection (PENDING; checked promptly)", minArgs: 1, maxArgs: 1,
		detail: "The password is read from stdin with --password-stdin (first line), or given with\n" +
			"--password (visible to other users in the process list).\n\n" +
			"  echo \"$PASSWORD\" | checkctl connection create co_... --datasource sandbox --username user_good --password-stdin",
		flags: connectionCreateFlags, run: connectionCreate},
	{name: "connection show", args: "<connectionId>", summary: "show a connection, its status and its accounts", minArgs: 1, maxArgs: 1, run: connectionShow},
	{name: "connection history", args: "<connectionId>", flagSyn: "[--limit N]", summary: "show a connection's status transitions, newest first", minArgs: 1, maxArgs: 1,
		flags: historyFlags, run: connectionHistory},
	{name: "connection deactivate", args: "<connectionId>", summary: "deactivate a connection (DEACTIVATED; not checked)", minArgs: 1, maxArgs: 1,
		run: connectionSetActive(false)},
	{name: "connection reactivate", args: "<connectionId>", summary: "reactivate a connection (previous status; checked at once when checkable)", minArgs: 1, maxArgs: 1,
		run: connectionSetActive(true)},
	{name: "connection set", args: "<connectionId>", flagSyn: "[--start-date D] [--occupancy X] [--name N]", summary: "change a connection's settings", minArgs: 1, maxArgs: 1,
		detail: "Give at least one of the flags. --start-date \"\" clears the start date.",
		flags:  connectionSetFlags, run: connectionSet},
	{name: "connection refresh", args: "<connectionId>", summary: "check a connection now (critical queue)", minArgs: 1, maxArgs: 1,
		detail: "Exits 4 when the connection's status forbids a refresh (credentials needed, deactivated,\n" +
			"company inactive).",
		run: connectionRefresh},
	{name: "connection credentials", args: "<connectionId>", flagSyn: "--username U (--password-stdin | --password P)", summary: "replace a connection's credentials (then checked at once)", minArgs: 1, maxArgs: 1,
		detail: "The password is read from stdin with --password-stdin (first line), or given with\n" +
			"--password (visible to other users in the process list).",
		flags: credentialsFlags, run: connectionCredentials},
	{name: "connection link", args: "<connectionId>", summary: "make a single-use link for the customer to update the credentials", minArgs: 1, maxArgs: 1,
		run: connectionLink},

	{name: "accounts confirm", args: "<connectionId> <accountId>...", summary: "track accounts (ENABLED: ONBOARDED, pulled)", minArgs: 2, maxArgs: -1,
		detail: "All or nothing: when one account is refused, none is changed and each refused account\n" +
			"is named on stderr.",
		run: accountsDecide("ENABLED")},
	{name: "accounts reject", args: "<connectionId> <accountId>...", summary: "stop tracking accounts (DISABLED: CUSTOMER_NOT_TRACKED)", minArgs: 2, maxArgs: -1,
		detail: "All or nothing: when one account is refused, none is changed and each refused account\n" +
			"is named on stderr.",
		run: accountsDecide("DISABLED")},

	{name: "queues list", summary: "list the task queues and their sizes", maxArgs: 0, run: queuesList},
	{name: "queues pause", args: "<queue>", summary: "pause a queue: workers take no task from it", minArgs: 1, maxArgs: 1, run: queueAction("pause")},
	{name: "queues resume", args: "<queue>", summary: "resume a paused queue", minArgs: 1, maxArgs: 1, run: queueAction("resume")},

	{name: "statuses", summary: "list the status vocabulary and the datasources", maxArgs: 0, run: statuses},

	{name: "store keys", summary: "show the encryption keys in use and the re-encryption's progress", maxArgs: 0, run: storeKeys},
	{name: "store rekey", flagSyn: "[--wait [--poll D]]", summary: "re-encrypt every stored credential under the primary encryption key", maxArgs: 0,
		detail: "Run it once every checkd process has the new CHECKD_ENCRYPTION_KEY with the old key in\n" +
			"CHECKD_ENCRYPTION_OLD_KEYS: those processes do the work in the background, in batches,\n" +
			"beside the checks, and a run survives restarts. With --wait checkctl prints the progress\n" +
			"until the run is done (then remove the old key from every process) or blocked (exit 1).",
		flags: rekeyFlags, run: storeRekey},
}

// --- API shapes (the fields checkctl prints; --output json prints all) ---

type company struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	IsActive  bool   `json:"isActive"`
	CreatedAt string `json:"createdAt"`
}

type account struct {
	ID                  string `json:"id"`
	AccountNumber       string `json:"accountNumber"`
	Name                string `json:"name"`
	TrackingStatus      string `json:"trackingStatus"`
	Status              string `json:"status"`
	StatusFirstSeenTime string `json:"statusFirstSeenTime"`
	StatusErrorDetail   string `json:"statusErrorDetail"`
}

// datasource is a connection's datasource: {"name": ...}, or a bare name
// (servers before the object form).
type datasource string

func (d *datasource) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, (*string)(d))
	}
	var o struct {
		Name string `json:"name"`
	}
	err := json.Unmarshal(b, &o)
	*d = datasource(o.Name)
	return err
}

type connection struct {
	ID                   string     `json:"id"`
	CompanyID            string     `json:"companyId"`
	Datasource           datasource `json:"datasource"`
	Name                 string     `json:"name"`
	IsActive             bool       `json:"isActive"`
	CreatedAt            string     `json:"createdAt"`
	Status               string     `json:"status"`
	StatusDisplayName    string     `json:"statusDisplayName"`
	StatusFirstSeenTime  string     `json:"statusFirstSeenTime"`
	StatusLastUpdateTime string     `json:"statusLastUpdateTime"`
	StatusErrorDetail    string     `json:"statusErrorDetail"`
	LastCheckAt          *string    `json:"lastCheckAt"`
	LastSuccessAt        *string    `json:"lastSuccessAt"`
	NextCheckAt          *string    `json:"nextCheckAt"`
	ConsecutiveFailures  int        `json:"consecutiveFailures"`
	StartDate            string     `json:"startDate"`
	OccupancyMultiplier  float64    `json:"occupancyMultiplier"`
	CanRefresh           bool       `json:"canRefresh"`
	CanReconnect         bool       `json:"canReconnect"`
	CheckEnqueued        *bool      `json:"checkEnqueued"`
	CheckTaskID          string     `json:"checkTaskId"`
	CheckNote            string     `json:"checkNote"`
	Accounts             []account  `json:"accounts"`
}

type connectionPage struct {
	Connections []json.RawMessage `json:"connections"`
	NextCursor  string            `json:"nextCursor"`
}

type historyEntry struct {
	Time      string `json:"time"`
	AccountID string `json:"accountId"`
	From      string `json:"from"`
	To        string `json:"to"`
	Detail    string `json:"detail"`
	Cause     string `json:"cause"`
}

type queue struct {
	Queue     string `json:"queue"`
	Size      int    `json:"size"`
	Pending   int    `json:"pending"`
	Active    int    `json:"active"`
	Scheduled int    `json:"scheduled"`
	Retry     int    `json:"retry"`
	Archived  int    `json:"archived"`
	Completed int    `json:"completed"`
	Paused    bool   `json:"paused"`
}

type statusInfo struct {
	Value        string `json:"value"`
	DisplayName  string `json:"displayName"`
	Category     string `json:"category"`
	CanRefresh   bool   `json:"canRefresh"`
	CanReconnect bool   `json:"canReconnect"`
}

type keyStatus struct {
	Primary string   `json:"primary"`
	InUse   []string `json:"inUse"`
	Rekey   struct {
		Target     string `json:"target"`
		Pass       int    `json:"pass"`
		Scanned    int64  `json:"scanned"`
		Rewritten  int64  `json:"rewritten"`
		Unreadable int64  `json:"unreadable"`
		Running    bool   `json:"running"`
		Done       bool   `json:"done"`
		Blocked    bool   `json:"blocked"`
	} `json:"rekey"`
}

// --- helpers ---

// send calls the API and returns its raw answer.
func (c *call) send(method, path string, q url.Values, in any) ([]byte, int, error) {
	return c.client.Do(c.ctx, method, path, q, in)
}

// emit prints raw as JSON (--output json) or calls table with it decoded
// into v.
func (c *call) emit(raw []byte, v any, table func(t *tw)) error {
	if c.g.output == OutputJSON {
		return printJSON(c.env.Stdout, raw)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("the API's answer is not what checkctl expects (version mismatch?): %w", err)
		}
	}
	t := newTW(c.env.Stdout)
	table(t)
	return t.flush()
}

func connPath(id string) string { return "/v1/connection/" + seg(id) }

// readPassword takes the password from --password or the first line of
// stdin (--password-stdin); exactly one is required.
func readPassword(c *call, fromStdin bool, flagValue string, flagSet bool) (string, error) {
	switch {
	case fromStdin && flagSet:
		return "", usagef("give the password with --password-stdin or --password, not both")
	case flagSet:
		return flagValue, nil
	case !fromStdin:
		return "", usagef("a password is required: pipe it with --password-stdin, or give --password (visible in the process list)")
	}
	line, err := bufio.NewReader(c.env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usagef("--password-stdin read an empty password from stdin")
	}
	return line, nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// --- companies ---

func companiesList(c *call) error {
	raw, _, err := c.send(http.MethodGet, "/v1/company", nil, nil)
	if err != nil {
		return err
	}
	var out struct {
		Companies []company `json:"companies"`
	}
	return c.emit(raw, &out, func(t *tw) {
		companyHeader(t)
		for _, co := range out.Companies {
			companyRow(t, co)
		}
	})
}

func companyHeader(t *tw) { t.row("ID", "NAME", "ACTIVE", "CREATED") }

func companyRow(t *tw, co company) { t.row(co.ID, co.Name, yesNo(co.IsActive), orDash(co.CreatedAt)) }

func companyCreate(c *call) error {
	raw, _, err := c.send(http.MethodPost, "/v1/company", nil, map[string]string{"name": c.args[0]})
	if err != nil {
		return err
	}
	var co company
	return c.emit(raw, &co, func(t *tw) {
		companyHeader(t)
		companyRow(t, co)
	})
}

func companySetActive(active bool) func(c *call) error {
	return func(c *call) error {
		raw, _, err := c.send(http.MethodPatch, "/v1/company/"+seg(c.args[0]), nil, map[string]bool{"isActive": active})
		if err != nil {
			return err
		}
		var out struct {
			Company            company `json:"company"`
			ConnectionsUpdated int     `json:"connectionsUpdated"`
			InProgress         bool    `json:"inProgress"`
		}
		return c.emit(raw, &out, func(t *tw) {
			companyHeader(t)
			companyRow(t, out.Company)
			t.flush()
			if out.InProgress {
				t.line("connections: still being converted in the background (list them to follow it; repeat this command if checkd stopped meanwhile)")
				return
			}
			t.line("connections updated: %d", out.ConnectionsUpdated)
		})
	}
}

// --- connections ---

type listOpts struct {
	status, cursor string
	limit          int
	all            bool
}

func connectionsListFlags(fs *flag.FlagSet) (any, func() error) {
	o := &listOpts{}
	fs.StringVar(&o.status, "status", "", "only connections in these `statuses` (comma-separated, e.g. PASSWORD_INCORRECT,MFA_TOKEN_EXPIRED)")
	fs.IntVar(&o.limit, "limit", 0, "page size, 1 to 1000 (default: the API's, 100)")
	fs.StringVar(&o.cursor, "cursor", "", "start at this `cursor` (a previous page's nextCursor)")
	fs.BoolVar(&o.all, "all", false, "follow nextCursor and print every page")
	return o, func() error {
		if isSet(fs, "limit") && (o.limit < 1 || o.limit > 1000) {
			return usagef("--limit must be from 1 to 1000, not %d", o.limit)
		}
		return nil
	}
}

func connectionsList(c *call) error {
	o := c.opts.(*listOpts)
	q := url.Values{}
	if o.status != "" {
		q.Set("status", strings.ToUpper(strings.ReplaceAll(o.status, " ", "")))
	}
	if o.limit > 0 {
		q.Set("limit", strconv.Itoa(o.limit))
	}
	cursor := o.cursor
	var all connectionPage
	seen := map[string]bool{}
	for {
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		raw, _, err := c.send(http.MethodGet, "/v1/connection/company/"+seg(c.args[0]), q, nil)
		if err != nil {
			return err
		}
		var page connectionPage
		if err := json.Unmarshal(raw, &page); err != nil {
			return fmt.Errorf("the API's answer is not a connection page (version mismatch?): %w", err)
		}
		all.Connections = append(all.Connections, page.Connections...)
		all.NextCursor = page.NextCursor
		if !o.all || page.NextCursor == "" {
			break
		}
		if seen[page.NextCursor] {
			return fmt.Errorf("the API returned cursor %q twice; stopping so --all does not loop", page.NextCursor)
		}
		seen[page.NextCursor] = true
		cursor = page.NextCursor
	}
	if all.Connections == nil {
		all.Connections = []json.RawMessage{}
	}
	raw, err := json.Marshal(all)
	if err != nil {
		return fmt.Errorf("encode connections: %w", err)
	}
	var conns struct {
		Connections []connection `json:"connections"`
	}
	if err := c.emit(raw, &conns, func(t *tw) {
		t.row("ID", "NAME", "DATASOURCE", "STATUS", "ACTIVE", "ACCOUNTS", "LAST CHECK", "NEXT CHECK")
		for _, cn := range conns.Connections {
			t.row(cn.ID, orDash(cn.Name), string(cn.Datasource), cn.Status, yesNo(cn.IsActive), strconv.Itoa(len(cn.Accounts)),
				orDash(deref(cn.LastCheckAt)), orDash(deref(cn.NextCheckAt)))
		}
	}); err != nil {
		return err
	}
	if all.NextCursor != "" && c.g.output == OutputTable {
		fmt.Fprintf(c.env.Stderr, "more connections: rerun with --cursor %s, or --all for every page\n", all.NextCursor)
	}
	return nil
}

type credOpts struct {
	datasource, username, password, name string
	stdin                                bool
}

func registerCredFlags(fs *flag.FlagSet) *credOpts {
	o := &credOpts{}
	fs.StringVar(&o.username, "username", "", "login `name` on the provider's website (required)")
	fs.BoolVar(&o.stdin, "password-stdin", false, "read the password from the first line of stdin")
	fs.StringVar(&o.password, "password", "", "the `password` (prefer --password-stdin: arguments are visible to other users)")
	return o
}

func connectionCreateFlags(fs *flag.FlagSet) (any, func() error) {
	o := registerCredFlags(fs)
	fs.StringVar(&o.datasource, "datasource", "", "the provider integration (`datasource`), e.g. sandbox (required; see checkctl statuses)")
	fs.StringVar(&o.name, "name", "", "a display `name`")
	return o, func() error {
		if o.datasource == "" {
			return usagef("--datasource is required (e.g. --datasource sandbox)")
		}
		if o.username == "" {
			return usagef("--username is required")
		}
		return nil
	}
}

func credentialsFlags(fs *flag.FlagSet) (any, func() error) {
	o := registerCredFlags(fs)
	return o, func() error {
		if o.username == "" {
			return usagef("--username is required")
		}
		return nil
	}
}

func connectionCreate(c *call) error {
	o := c.opts.(*credOpts)
	pw, err := readPassword(c, o.stdin, o.password, isSet(c.fs, "password"))
	if err != nil {
		return err
	}
	body := map[string]any{
		"datasource":  o.datasource,
		"credentials": map[string]string{"username": o.username, "password": pw},
	}
	if o.name != "" {
		body["name"] = o.name
	}
	raw, _, err := c.send(http.MethodPost, "/v1/connection/company/"+seg(c.args[0]), nil, body)
	if err != nil {
		return err
	}
	return c.showConnection(raw)
}

func connectionCredentials(c *call) error {
	o := c.opts.(*credOpts)
	pw, err := readPassword(c, o.stdin, o.password, isSet(c.fs, "password"))
	if err != nil {
		return err
	}
	raw, _, err := c.send(http.MethodPatch, connPath(c.args[0])+"/credentials", nil,
		map[string]any{"credentials": map[string]string{"username": o.username, "password": pw}})
	if err != nil {
		return err
	}
	return c.showConnection(raw)
}

func connectionShow(c *call) error {
	raw, _, err := c.send(http.MethodGet, connPath(c.args[0])+"/details", nil, nil)
	if err != nil {
		return err
	}
	return c.showConnection(raw)
}

// showConnection prints a connection as a key/value block and its accounts
// as a table.
func (c *call) showConnection(raw []byte) error {
	var cn connection
	return c.emit(raw, &cn, func(t *tw) {
		status := cn.Status
		if cn.StatusDisplayName != "" {
			status += " (" + cn.StatusDisplayName + ")"
		}
		t.row("ID:", cn.ID)
		t.row("Company:", cn.CompanyID)
		t.row("Name:", orDash(cn.Name))
		t.row("Datasource:", string(cn.Datasource))
		t.row("Active:", yesNo(cn.IsActive))
		t.row("Status:", status)
		t.row("Status since:", orDash(cn.StatusFirstSeenTime))
		t.row("Status updated:", orDash(cn.StatusLastUpdateTime))
		if cn.StatusErrorDetail != "" {
			t.row("Detail:", cn.StatusErrorDetail)
		}
		t.row("Can refresh:", yesNo(cn.CanRefresh))
		t.row("Last check:", orDash(deref(cn.LastCheckAt)))
		t.row("Last success:", orDash(deref(cn.LastSuccessAt)))
		t.row("Next check:", orDash(deref(cn.NextCheckAt)))
		t.row("Failures:", strconv.Itoa(cn.ConsecutiveFailures))
		t.row("Start date:", orDash(cn.StartDate))
		if cn.OccupancyMultiplier != 0 {
			t.row("Occupancy:", strconv.FormatFloat(cn.OccupancyMultiplier, 'f', -1, 64))
		}
		if cn.CheckEnqueued != nil {
			v := yesNo(*cn.CheckEnqueued)
			switch {
			case cn.CheckTaskID != "":
				v += " (task " + cn.CheckTaskID + ")"
			case cn.CheckNote != "":
				v += " (" + cn.CheckNote + ")"
			}
			t.row("Check enqueued:", v)
		}
		t.flush()
		if len(cn.Accounts) == 0 {
			t.line("\nNo accounts yet.")
			return
		}
		t.line("\nAccounts:")
		t.row("ID", "NUMBER", "NAME", "TRACKING", "STATUS", "DETAIL")
		for _, a := range cn.Accounts {
			t.row(a.ID, a.AccountNumber, orDash(a.Name), a.TrackingStatus, a.Status, orDash(a.StatusErrorDetail))
		}
	})
}

func historyFlags(fs *flag.FlagSet) (any, func() error) {
	n := fs.Int("limit", 0, "at most this many entries, 1 to 1000 (default: all the service keeps)")
	return n, func() error {
		if isSet(fs, "limit") && (*n < 1 || *n > 1000) {
			return usagef("--limit must be from 1 to 1000, not %d", *n)
		}
		return nil
	}
}

func connectionHistory(c *call) error {
	q := url.Values{}
	if n := *c.opts.(*int); n > 0 {
		q.Set("limit", strconv.Itoa(n))
	}
	raw, _, err := c.send(http.MethodGet, connPath(c.args[0])+"/history", q, nil)
	if err != nil {
		return err
	}
	var out struct {
		History []historyEntry `json:"history"`
	}
	return c.emit(raw, &out, func(t *tw) {
		t.row("TIME", "ACCOUNT", "FROM", "TO", "CAUSE", "DETAIL")
		for _, h := range out.History {
			t.row(h.Time, orDash(h.AccountID), orDash(h.From), h.To, h.Cause, orDash(h.Detail))
		}
	})
}

func connectionSetActive(active bool) func(c *call) error {
	return func(c *call) error {
		raw, _, err := c.send(http.MethodPatch, connPath(c.args[0])+"/details", nil, map[string]bool{"isActive": active})
		if err != nil {
			return err
		}
		return c.showConnection(raw)
	}
}

type setOpts struct {
	startDate, occupancy, name string
}

func connectionSetFlags(fs *flag.FlagSet) (any, func() error) {
	o := &setOpts{}
	fs.StringVar(&o.startDate, "start-date", "", "collect bills from this `date` (YYYY-MM-DD; \"\" clears it)")
	fs.StringVar(&o.occupancy, "occupancy", "", "occupancy `multiplier`, greater than 0 and at most 100")
	fs.StringVar(&o.name, "name", "", "display `name`")
	return o, func() error {
		if !isSet(fs, "start-date") && !isSet(fs, "occupancy") && !isSet(fs, "name") {
			return usagef("nothing to change: give --start-date, --occupancy or --name")
		}
		if isSet(fs, "occupancy") {
			if _, err := strconv.ParseFloat(o.occupancy, 64); err != nil {
				return usagef("--occupancy must be a number such as 1.5, not %q", o.occupancy)
			}
		}
		return nil
	}
}

func connectionSet(c *call) error {
	o := c.opts.(*setOpts)
	body := map[string]any{}
	if isSet(c.fs, "start-date") {
		body["startDate"] = o.startDate
	}
	if isSet(c.fs, "occupancy") {
		v, _ := strconv.ParseFloat(o.occupancy, 64) // validated
		body["occupancyMultiplier"] = v
	}
	if isSet(c.fs, "name") {
		body["name"] = o.name
	}
	raw, _, err := c.send(http.MethodPatch, connPath(c.args[0])+"/details", nil, body)
	if err != nil {
		return err
	}
	return c.showConnection(raw)
}

func connectionRefresh(c *call) error {
	raw, _, err := c.send(http.MethodPost, connPath(c.args[0])+"/refresh", nil, nil)
	if err != nil {
		return err
	}
	var out struct {
		Enqueued bool   `json:"enqueued"`
		TaskID   string `json:"taskId"`
		Reason   string `json:"reason"`
	}
	return c.emit(raw, &out, func(t *tw) {
		if out.Enqueued {
			t.line("check enqueued: task %s", out.TaskID)
			return
		}
		t.line("check not enqueued: %s", orDash(out.Reason))
	})
}

func connectionLink(c *call) error {
	return printLink(c, connPath(c.args[0])+"/link")
}

func companyLink(c *call) error {
	return printLink(c, "/v1/connection/company/"+seg(c.args[0])+"/link")
}

// printLink asks for a link at path and prints where it leads and until when.
func printLink(c *call, path string) error {
	raw, _, err := c.send(http.MethodPost, path, nil, nil)
	if err != nil {
		return err
	}
	var out struct {
		URL       string `json:"url"`
		Token     string `json:"token"`
		ExpiresAt string `json:"expiresAt"`
	}
	return c.emit(raw, &out, func(t *tw) {
		t.row("URL:", out.URL)
		t.row("Expires:", out.ExpiresAt)
		t.flush()
		t.line("\nSend the URL to the customer; it works once, until it expires.")
	})
}

// --- accounts ---

func accountsDecide(tracking string) func(c *call) error {
	return func(c *call) error {
		ds := make([]map[string]string, 0, len(c.args)-1)
		for _, id := range c.args[1:] {
			ds = append(ds, map[string]string{"accountId": id, "trackingStatus": tracking})
		}
		raw, _, err := c.send(http.MethodPatch, connPath(c.args[0])+"/status", nil, map[string]any{"accounts": ds})
		if err != nil {
			return err
		}
		return c.showConnection(raw)
	}
}

// --- queues ---

func queueHeader(t *tw) {
	t.row("QUEUE", "SIZE", "PENDING", "ACTIVE", "SCHEDULED", "RETRY", "ARCHIVED", "COMPLETED", "PAUSED")
}

func queueRow(t *tw, q queue) {
	t.row(q.Queue, strconv.Itoa(q.Size), strconv.Itoa(q.Pending), strconv.Itoa(q.Active), strconv.Itoa(q.Scheduled),
		strconv.Itoa(q.Retry), strconv.Itoa(q.Archived), strconv.Itoa(q.Completed), yesNo(q.Paused))
}

func queuesList(c *call) error {
	raw, _, err := c.send(http.MethodGet, "/v1/queues", nil, nil)
	if err != nil {
		return err
	}
	var out struct {
		Queues []queue `json:"queues"`
	}
	return c.emit(raw, &out, func(t *tw) {
		queueHeader(t)
		for _, q := range out.Queues {
			queueRow(t, q)
		}
	})
}

func queueAction(action string) func(c *call) error {
	return func(c *call) error {
		raw, _, err := c.send(http.MethodPost, "/v1/queues/"+seg(c.args[0])+"/"+action, nil, nil)
		if err != nil {
			return err
		}
		var q queue
		return c.emit(raw, &q, func(t *tw) {
			queueHeader(t)
			queueRow(t, q)
		})
	}
}

// --- statuses ---

func statuses(c *call) error {
	raw, _, err := c.send(http.MethodGet, "/v1/statuses", nil, nil)
	if err != nil {
		return err
	}
	var out struct {
		ConnectionStatuses []statusInfo `json:"connectionStatuses"`
		AccountStatuses    []statusInfo `json:"accountStatuses"`
		TrackingStatuses   []string     `json:"trackingStatuses"`
		Datasources        []string     `json:"datasources"`
	}
	return c.emit(raw, &out, func(t *tw) {
		table := func(title string, infos []statusInfo) {
			t.line(title)
			t.row("STATUS", "NAME", "CATEGORY", "REFRESH", "RECONNECT")
			for _, s := range infos {
				t.row(s.Value, s.DisplayName, s.Category, yesNo(s.CanRefresh), yesNo(s.CanReconnect))
			}
			t.flush()
		}
		table("Connection statuses:", out.ConnectionStatuses)
		t.line("")
		table("Account statuses:", out.AccountStatuses)
		t.line("\nTracking statuses: %s", strings.Join(out.TrackingStatuses, ", "))
		t.line("Datasources: %s", strings.Join(out.Datasources, ", "))
	})
}

// --- encryption keys ---

func storeKeys(c *call) error {
	raw, _, err := c.send(http.MethodGet, "/v1/store/keys", nil, nil)
	if err != nil {
		return err
	}
	var st keyStatus
	return c.emit(raw, &st, func(t *tw) { keyLines(t, st) })
}

// keyLines prints a key status, and what to do next.
func keyLines(t *tw, st keyStatus) {
	t.line("primary key:   %s", st.Primary)
	t.line("keys in use:   %s", strings.Join(st.InUse, ", "))
	r := st.Rekey
	state := "none started"
	switch {
	case r.Running:
		state = fmt.Sprintf("running (pass %d)", r.Pass)
	case r.Done:
		state = "done"
	case r.Blocked:
		state = fmt.Sprintf("blocked: %d credentials open with none of the configured keys", r.Unreadable)
	}
	t.line("re-encryption: %s", state)
	if r.Target != "" {
		t.line("  toward key %s: %d scanned, %d rewritten", r.Target, r.Scanned, r.Rewritten)
	}
	if r.Done && len(st.InUse) == 1 && st.InUse[0] == st.Primary {
		t.line("every credential is sealed with the primary key: remove CHECKD_ENCRYPTION_OLD_KEYS from every process")
	}
}

type rekeyOpts struct {
	wait bool
	poll time.Duration
}

func rekeyFlags(fs *flag.FlagSet) (any, func() error) {
	o := &rekeyOpts{}
	fs.BoolVar(&o.wait, "wait", false, "print the progress until the run is done or blocked")
	fs.DurationVar(&o.poll, "poll", 2*time.Second, "with --wait, how often to ask")
	return o, func() error {
		if o.poll <= 0 {
			return usagef("--poll must be positive, not %s", o.poll)
		}
		return nil
	}
}

func storeRekey(c *call) error {
	o := c.opts.(*rekeyOpts)
	raw, _, err := c.send(http.MethodPost, "/v1/store/rekey", nil, nil)
	if err != nil {
		return err
	}
	var st struct {
		Started bool `json:"started"`
		keyStatus
	}
	if err := c.emit(raw, &st, func(t *tw) {
		if st.Started {
			t.line("re-encryption started toward key %s", st.Primary)
		} else {
			t.line("a re-encryption toward key %s is under way already", st.Primary)
		}
		keyLines(t, st.keyStatus)
	}); err != nil || !o.wait {
		return err
	}
	for st.Rekey.Running {
		select {
		case <-c.ctx.Done():
			return c.ctx.Err()
		case <-time.After(o.poll):
		}
		if raw, _, err = c.send(http.MethodGet, "/v1/store/keys", nil, nil); err != nil {
			return err
		}
		st.keyStatus = keyStatus{}
		if err := c.emit(raw, &st.keyStatus, func(t *tw) { keyLines(t, st.keyStatus) }); err != nil {
			return err
		}
	}
	if st.Rekey.Blocked {
		return errors.New("the re-encryption is blocked: configure the key that sealed the unreadable credentials (or give those connections new credentials), then run checkctl store rekey again")
	}
	return nil
}
