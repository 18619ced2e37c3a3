package ctl

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/store"
)

// The answers are decoded into the API's own types (package api), so
// checkctl cannot drift from what the API sends; -o json prints the answer
// as it came.

// groups builds the command tree, in help order.
func (a *app) groups() []*cobra.Command {
	return []*cobra.Command{
		group("companies", "list companies",
			a.leaf("list", "list companies", 0, 0, "", hintCompany, companiesList)),
		group("company", "one company",
			a.leaf("show <companyId>", "show a company", 1, 1, "<companyId>", hintCompany, companyShow),
			a.leaf("create <name>", "create a company", 1, 1, "<name>", "", companyCreate),
			a.leaf("deactivate <companyId>", "deactivate a company: its connections become COMPANY_INACTIVE and stop being checked",
				1, 1, "<companyId>", hintCompany, companySetActive(false)),
			a.leaf("reactivate <companyId>", "reactivate a company: its connections get their statuses back and are checked",
				1, 1, "<companyId>", hintCompany, companySetActive(true)),
			a.leaf("link <companyId>", "make a single-use link for the customer to add a connection to the company",
				1, 1, "<companyId>", hintCompany, companyLink)),
		group("connections", "list connections",
			a.connectionsList()),
		group("connection", "one connection",
			a.connectionCreate(),
			a.leaf("show <connectionId>", "show a connection, its status and its accounts", 1, 1, "<connectionId>", hintConnection, connectionShow),
			a.connectionHistory(),
			a.leaf("deactivate <connectionId>", "deactivate a connection (DEACTIVATED; not checked)", 1, 1, "<connectionId>", hintConnection,
				connectionSetActive(false)),
			a.leaf("reactivate <connectionId>", "reactivate a connection (previous status; checked at once when checkable)", 1, 1, "<connectionId>",
				hintConnection, connectionSetActive(true)),
			a.connectionSet(),
			withLong(a.leaf("refresh <connectionId>", "check a connection now (critical queue)", 1, 1, "<connectionId>", hintConnection, connectionRefresh),
				"Exits 4 when the connection's status forbids a refresh (credentials needed, deactivated,\ncompany inactive)."),
			a.connectionCredentials(),
			a.leaf("link <connectionId>", "make a single-use link for the customer to update the credentials", 1, 1, "<connectionId>",
				hintConnection, connectionLink),
			a.connectionInvestigate(),
			withLong(a.leaf("clear-investigation <connectionId>", "end an investigation: back to the last check's outcome, checked at once",
				1, 1, "<connectionId>", hintConnection, connectionClearInvestigation),
				"Ends an operator's flag or an automatic escalation. Exits 4 when the connection is not\nUNDER_INVESTIGATION.")),
		group("accounts", "confirm or reject discovered accounts",
			withLong(a.leaf("confirm <connectionId> <accountId>...", "track accounts (ENABLED: ONBOARDED, pulled)", 2, -1,
				"<connectionId> <accountId>...", hintConnection, accountsDecide(checks.TrackingEnabled)), allOrNothing),
			withLong(a.leaf("reject <connectionId> <accountId>...", "stop tracking accounts (DISABLED: CUSTOMER_NOT_TRACKED)", 2, -1,
				"<connectionId> <accountId>...", hintConnection, accountsDecide(checks.TrackingDisabled)), allOrNothing),
			a.accountsFlag(),
			withLong(a.leaf("unflag <connectionId> <accountId>", "undo an account's OLD_ACCOUNT or DUPLICATE flag (its status before comes back)",
				2, 2, "<connectionId> <accountId>", hintConnection, accountsUnflag), "")),
		group("datasources", "datasource health, outage breakers and concurrency",
			withLong(a.leaf("list", "list the datasources: health, window counts, durations, breaker, slots in use", 0, 0, "", "", datasourcesList),
				"HEALTHY, DEGRADED or DOWN from the share of the window's checks that found the website\ndown; while DOWN (breaker open) checks are not attempted but for a few probes a minute.")),
		group("queues", "the task queues",
			a.leaf("list", "list the task queues and their sizes", 0, 0, "", "", queuesList),
			a.leaf("pause <queue>", "pause a queue: workers take no task from it", 1, 1, "<queue>", hintQueue, queueAction("pause")),
			a.leaf("resume <queue>", "resume a paused queue", 1, 1, "<queue>", hintQueue, queueAction("resume"))),
		a.leaf("statuses", "list the status vocabulary and the datasources", 0, 0, "", "", statuses),
		a.webhooksGroup(),
		a.keysGroup(),
		group("store", "the store's encryption keys",
			a.leaf("keys", "show the encryption keys in use and the re-encryption's progress", 0, 0, "", "", storeKeys),
			a.storeRekey()),
	}
}

const allOrNothing = "All or nothing: when one account is refused, none is changed and each refused account\nis named on stderr."

// call is one running command.
type call struct {
	a    *app
	cmd  *cobra.Command
	args []string
}

// leaf is a command that calls the API: use is its name and synopsis,
// min and max bound its arguments (max -1: no bound), names is their
// synopsis for a usage error, and notFound the hint a 404 prints.
func (a *app) leaf(use, short string, min, max int, names, notFound string, run func(c *call) error) *cobra.Command {
	return &cobra.Command{
		Use:                   use,
		Short:                 short,
		DisableFlagsInUseLine: true,
		Args:                  positional(min, max, names),
		Annotations:           map[string]string{annotationNotFound: notFound, annotationArgs: names},
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(&call{a: a, cmd: cmd, args: args})
		},
	}
}

func withLong(cmd *cobra.Command, long string) *cobra.Command {
	cmd.Long = long
	return cmd
}

// send calls the API and returns its raw answer.
func (c *call) send(method, path string, q url.Values, in any) ([]byte, error) {
	client, err := c.a.clientFor()
	if err != nil {
		return nil, err
	}
	raw, _, err := client.Do(c.cmd.Context(), method, path, q, in)
	return raw, err
}

// emit prints raw as JSON (-o json) or calls table with it decoded into v.
func (c *call) emit(raw []byte, v any, table func(t *tw)) error {
	if c.a.output == OutputJSON {
		return printJSON(c.a.env.Stdout, raw)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("the API's answer is not what checkctl expects (version mismatch?): %w", err)
		}
	}
	t := newTW(c.a.env.Stdout)
	table(t)
	return t.flush()
}

func connPath(id string) string { return "/v1/connection/" + seg(id) }

// readPassword takes the password from --password or the first line of
// stdin (--password-stdin); exactly one is required.
func (c *call) readPassword(fromStdin bool, flagValue string) (string, error) {
	flagSet := c.cmd.Flags().Changed("password")
	switch {
	case fromStdin && flagSet:
		return "", usagef("give the password with --password-stdin or --password, not both")
	case flagSet:
		return flagValue, nil
	case !fromStdin:
		return "", usagef("a password is required: pipe it with --password-stdin, or give --password (visible in the process list)")
	}
	line, err := bufio.NewReader(c.a.env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usagef("--password-stdin read an empty password from stdin")
	}
	return line, nil
}

// stamp formats an API time as the API sends it; "-" for none.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339Nano)
}

func stampPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return stamp(*t)
}

// --- companies ---

func companiesList(c *call) error {
	raw, err := c.send(http.MethodGet, "/v1/company", nil, nil)
	if err != nil {
		return err
	}
	var out api.CompanyList
	return c.emit(raw, &out, func(t *tw) {
		companyHeader(t)
		for _, co := range out.Companies {
			companyRow(t, co)
		}
	})
}

func companyHeader(t *tw) { t.row("ID", "NAME", "ACTIVE", "CREATED") }

func companyRow(t *tw, co store.Company) {
	t.row(co.ID, co.Name, yesNo(co.IsActive), stamp(co.CreatedAt))
}

func companyShow(c *call) error {
	raw, err := c.send(http.MethodGet, "/v1/company/"+seg(c.args[0]), nil, nil)
	if err != nil {
		return err
	}
	var co store.Company
	return c.emit(raw, &co, func(t *tw) {
		t.row("ID:", co.ID)
		t.row("Name:", co.Name)
		t.row("Active:", yesNo(co.IsActive))
		t.row("Created:", stamp(co.CreatedAt))
		if co.AutoTrack == nil {
			t.row("Auto-track:", "the service's default (store.autoTrack)")
		} else {
			t.row("Auto-track:", yesNo(*co.AutoTrack))
		}
		t.flush()
		t.line("\nIts connections: checkctl connections list %s", co.ID)
	})
}

func companyCreate(c *call) error {
	raw, err := c.send(http.MethodPost, "/v1/company", nil, api.CreateCompanyRequest{Name: c.args[0]})
	if err != nil {
		return err
	}
	var co store.Company
	return c.emit(raw, &co, func(t *tw) {
		companyHeader(t)
		companyRow(t, co)
	})
}

func companySetActive(active bool) func(c *call) error {
	return func(c *call) error {
		raw, err := c.send(http.MethodPatch, "/v1/company/"+seg(c.args[0]), nil, api.CompanyRequest{IsActive: &active})
		if err != nil {
			return err
		}
		var out api.CompanyChangeResponse
		return c.emit(raw, &out, func(t *tw) {
			companyHeader(t)
			companyRow(t, out.Company)
			t.flush()
			if out.InProgress {
				t.line("connections: still being converted in the background (list them to follow it; repeat this command if checkd stopped meanwhile)")
				return
			}
			t.line("connections updated: %d", out.Connections)
		})
	}
}

// --- connections ---

func (a *app) connectionsList() *cobra.Command {
	var (
		status, cursor, site string
		limit                int
		all                  bool
	)
	cmd := a.leaf("list <companyId> [--status S[,S]] [--site S] [--limit N] [--cursor C | --all]", "list a company's connections", 1, 1, "<companyId>", hintCompany,
		func(c *call) error {
			if c.cmd.Flags().Changed("limit") && (limit < 1 || limit > store.MaxPageSize) {
				return usagef("--limit must be from 1 to %d, not %d", store.MaxPageSize, limit)
			}
			return connectionsList(c, status, site, cursor, limit, all)
		})
	cmd.Long = "Connections come grouped by status, oldest first within one. Without --all one page is\n" +
		"printed; the next page's cursor is printed on stderr."
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only connections in these `statuses` (comma-separated, e.g. PASSWORD_INCORRECT,MFA_TOKEN_EXPIRED)")
	f.IntVar(&limit, "limit", 0, "page size, 1 to 1000 (default: the API's, 100)")
	f.StringVar(&cursor, "cursor", "", "start at this `cursor` (a previous page's nextCursor)")
	f.BoolVar(&all, "all", false, "follow nextCursor and print every page")
	f.StringVar(&site, "site", "", "only connections assigned this `site`")
	return cmd
}

func connectionsList(c *call, status, site, cursor string, limit int, all bool) error {
	q := url.Values{}
	if site != "" {
		q.Set("siteId", site)
	}
	if status != "" {
		q.Set("status", strings.ToUpper(strings.ReplaceAll(status, " ", "")))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	// Pages are merged raw, so -o json prints every field the API sent.
	var merged struct {
		Connections []json.RawMessage `json:"connections"`
		NextCursor  string            `json:"nextCursor"`
	}
	seen := map[string]bool{}
	for {
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		raw, err := c.send(http.MethodGet, "/v1/connection/company/"+seg(c.args[0]), q, nil)
		if err != nil {
			return err
		}
		var page struct {
			Connections []json.RawMessage `json:"connections"`
			NextCursor  string            `json:"nextCursor"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return fmt.Errorf("the API's answer is not a connection page (version mismatch?): %w", err)
		}
		merged.Connections = append(merged.Connections, page.Connections...)
		merged.NextCursor = page.NextCursor
		if !all || page.NextCursor == "" {
			break
		}
		if seen[page.NextCursor] {
			return fmt.Errorf("the API returned cursor %q twice; stopping so --all does not loop", page.NextCursor)
		}
		seen[page.NextCursor] = true
		cursor = page.NextCursor
	}
	if merged.Connections == nil {
		merged.Connections = []json.RawMessage{}
	}
	raw, err := json.Marshal(merged)
	if err != nil {
		return fmt.Errorf("encode connections: %w", err)
	}
	var conns api.ConnectionPage
	if err := c.emit(raw, &conns, func(t *tw) {
		t.row("ID", "NAME", "DATASOURCE", "STATUS", "ACTIVE", "ACCOUNTS", "LAST CHECK", "NEXT CHECK")
		for _, cn := range conns.Connections {
			t.row(cn.ID, orDash(cn.Name), cn.Datasource.Name, string(cn.Status), yesNo(cn.IsActive), strconv.Itoa(len(cn.Accounts)),
				stampPtr(cn.LastCheckAt), stampPtr(cn.NextCheckAt))
		}
	}); err != nil {
		return err
	}
	if merged.NextCursor != "" && c.a.output == OutputTable {
		fmt.Fprintf(c.a.env.Stderr, "more connections: rerun with --cursor %s, or --all for every page\n", merged.NextCursor)
	}
	return nil
}

// credFlags are the login flags of connection create and credentials.
type credFlags struct {
	username, password string
	stdin              bool
}

func (o *credFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.username, "username", "", "login `name` on the provider's website (required)")
	f.BoolVar(&o.stdin, "password-stdin", false, "read the password from the first line of stdin")
	f.StringVar(&o.password, "password", "", "the `password` (prefer --password-stdin: arguments are visible to other users)")
}

// credentials validates the flags and reads the password.
func (o *credFlags) credentials(c *call) (*checks.Credentials, error) {
	if o.username == "" {
		return nil, usagef("--username is required")
	}
	pw, err := c.readPassword(o.stdin, o.password)
	if err != nil {
		return nil, err
	}
	return &checks.Credentials{Username: o.username, Password: pw}, nil
}

const passwordHelp = "The password is read from stdin with --password-stdin (first line), or given with\n" +
	"--password (visible to other users in the process list)."

func (a *app) connectionCreate() *cobra.Command {
	var (
		cred             credFlags
		datasource, name string
		sites            []string
	)
	cmd := a.leaf("create <companyId> --datasource D --username U (--password-stdin | --password P) [--name N]",
		"create a connection (PENDING; checked promptly)", 1, 1, "<companyId>", hintCompany,
		func(c *call) error {
			if datasource == "" {
				return usagef("--datasource is required (e.g. --datasource sandbox)")
			}
			creds, err := cred.credentials(c)
			if err != nil {
				return err
			}
			raw, err := c.send(http.MethodPost, "/v1/connection/company/"+seg(c.args[0]), nil,
				api.CreateConnectionRequest{Datasource: api.DatasourceName(datasource), Name: name, Credentials: creds, SiteIDs: sites})
			if err != nil {
				return err
			}
			return c.showConnection(raw, false)
		})
	cmd.Long = passwordHelp + "\n\n  echo \"$PASSWORD\" | checkctl connection create co_... --datasource sandbox --username user_good --password-stdin"
	cred.register(cmd)
	cmd.Flags().StringVar(&datasource, "datasource", "", "the provider integration (`datasource`), e.g. sandbox (required; see checkctl statuses)")
	cmd.Flags().StringVar(&name, "name", "", "a display `name`")
	cmd.Flags().StringSliceVar(&sites, "site", nil, "assign the connection to a `site` (repeat, or comma-separated)")
	return cmd
}

func (a *app) connectionCredentials() *cobra.Command {
	var cred credFlags
	cmd := a.leaf("credentials <connectionId> --username U (--password-stdin | --password P)",
		"replace a connection's credentials (then checked at once)", 1, 1, "<connectionId>", hintConnection,
		func(c *call) error {
			creds, err := cred.credentials(c)
			if err != nil {
				return err
			}
			raw, err := c.send(http.MethodPatch, connPath(c.args[0])+"/credentials", nil, api.CredentialsRequest{Credentials: creds})
			if err != nil {
				return err
			}
			return c.showConnection(raw, true)
		})
	cmd.Long = passwordHelp
	cred.register(cmd)
	return cmd
}

func connectionShow(c *call) error {
	raw, err := c.send(http.MethodGet, connPath(c.args[0])+"/details", nil, nil)
	if err != nil {
		return err
	}
	return c.showConnection(raw, false)
}

// showConnection prints a connection as a key/value block and its accounts
// as a table; change: the answer of an admin write (api.ConnectionChange),
// which says whether a check was enqueued.
func (c *call) showConnection(raw []byte, change bool) error {
	var cc api.ConnectionChange
	return c.emit(raw, &cc, func(t *tw) {
		cn := cc.Connection
		status := string(cn.Status)
		if cn.StatusDisplayName != "" {
			status += " (" + cn.StatusDisplayName + ")"
		}
		t.row("ID:", cn.ID)
		t.row("Company:", cn.CompanyID)
		t.row("Name:", orDash(cn.Name))
		t.row("Datasource:", cn.Datasource.Name)
		t.row("Active:", yesNo(cn.IsActive))
		t.row("Status:", status)
		t.row("Status since:", stamp(cn.StatusFirstSeenTime))
		t.row("Status updated:", stamp(cn.StatusLastUpdateTime))
		if cn.StatusErrorDetail != "" {
			t.row("Detail:", cn.StatusErrorDetail)
		}
		if cn.Investigation != nil {
			t.row("Investigation:", cn.Investigation.By+" since "+stamp(cn.Investigation.Since)+" ("+cn.StatusReason+")")
		}
		if len(cn.SiteIDs) > 0 {
			t.row("Sites:", strings.Join(cn.SiteIDs, ", "))
		}
		t.row("Can refresh:", yesNo(cn.CanRefresh))
		t.row("Last check:", stampPtr(cn.LastCheckAt))
		if cn.LastCheckStatus != "" && cn.LastCheckStatus != cn.Status {
			out := string(cn.LastCheckStatus)
			if cn.LastCheckDetail != "" {
				out += ": " + cn.LastCheckDetail
			}
			t.row("Last check found:", out)
		}
		t.row("Last success:", stampPtr(cn.LastSuccessAt))
		t.row("Next check:", stampPtr(cn.NextCheckAt))
		t.row("Failures:", strconv.Itoa(cn.ConsecutiveFailures))
		t.row("Start date:", orDash(cn.StartDate))
		if cn.OccupancyMultiplier != 0 {
			t.row("Occupancy:", strconv.FormatFloat(cn.OccupancyMultiplier, 'f', -1, 64))
		}
		if change {
			v := yesNo(cc.CheckEnqueued)
			switch {
			case cc.CheckTaskID != "":
				v += " (task " + cc.CheckTaskID + ")"
			case cc.CheckNote != "":
				v += " (" + cc.CheckNote + ")"
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
		for _, ac := range cn.Accounts {
			t.row(ac.ID, ac.AccountNumber, orDash(ac.Name), string(ac.TrackingStatus), string(ac.Status), orDash(ac.StatusErrorDetail))
		}
	})
}

func (a *app) connectionHistory() *cobra.Command {
	var limit int
	cmd := a.leaf("history <connectionId> [--limit N]", "show a connection's status transitions, newest first", 1, 1, "<connectionId>", hintConnection,
		func(c *call) error {
			q := url.Values{}
			if c.cmd.Flags().Changed("limit") {
				if limit < 1 || limit > api.MaxHistoryLimit {
					return usagef("--limit must be from 1 to %d, not %d", api.MaxHistoryLimit, limit)
				}
				q.Set("limit", strconv.Itoa(limit))
			}
			raw, err := c.send(http.MethodGet, connPath(c.args[0])+"/history", q, nil)
			if err != nil {
				return err
			}
			var out api.History
			return c.emit(raw, &out, func(t *tw) {
				t.row("TIME", "ACCOUNT", "FROM", "TO", "CAUSE", "DETAIL")
				for _, h := range out.History {
					cause := h.Cause
					if h.Actor != "" && h.Actor != h.Cause { // who, unless the cause says it (a check's actor is check)
						cause += " by " + h.Actor
					}
					t.row(stamp(h.Time), orDash(h.AccountID), orDash(h.From), h.To, cause, orDash(h.Detail))
				}
			})
		})
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many entries, 1 to 1000 (default: all the service keeps)")
	return cmd
}

func connectionSetActive(active bool) func(c *call) error {
	return func(c *call) error {
		raw, err := c.send(http.MethodPatch, connPath(c.args[0])+"/details", nil, api.DetailsRequest{IsActive: &active})
		if err != nil {
			return err
		}
		return c.showConnection(raw, true)
	}
}

func (a *app) connectionSet() *cobra.Command {
	var startDate, occupancy, name, sites string
	cmd := a.leaf("set <connectionId> [--start-date D] [--occupancy X] [--name N] [--sites S,S]", "change a connection's settings", 1, 1, "<connectionId>", hintConnection,
		func(c *call) error {
			f := c.cmd.Flags()
			var in api.DetailsRequest
			if f.Changed("start-date") {
				in.StartDate = &startDate
			}
			if f.Changed("occupancy") {
				v, err := strconv.ParseFloat(occupancy, 64)
				if err != nil {
					return usagef("--occupancy must be a number such as 1.5, not %q", occupancy)
				}
				in.OccupancyMultiplier = &v
			}
			if f.Changed("name") {
				in.Name = &name
			}
			if f.Changed("sites") {
				list := []string{}
				if sites != "" {
					list = strings.Split(sites, ",")
				}
				in.SiteIDs = &list
			}
			if in == (api.DetailsRequest{}) {
				return usagef("nothing to change: give --start-date, --occupancy, --name or --sites")
			}
			raw, err := c.send(http.MethodPatch, connPath(c.args[0])+"/details", nil, in)
			if err != nil {
				return err
			}
			return c.showConnection(raw, true)
		})
	cmd.Long = "Give at least one of the flags. --start-date \"\" clears the start date."
	f := cmd.Flags()
	f.StringVar(&startDate, "start-date", "", "collect bills from this `date` (YYYY-MM-DD; \"\" clears it)")
	f.StringVar(&occupancy, "occupancy", "", "occupancy `multiplier`, greater than 0 and at most 100")
	f.StringVar(&name, "name", "", "display `name`")
	f.StringVar(&sites, "sites", "", "replace the site assignments with these `sites` (comma-separated; \"\" clears them)")
	return cmd
}

func connectionRefresh(c *call) error {
	raw, err := c.send(http.MethodPost, connPath(c.args[0])+"/refresh", nil, nil)
	if err != nil {
		return err
	}
	var out api.RefreshResult
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
	raw, err := c.send(http.MethodPost, path, nil, nil)
	if err != nil {
		return err
	}
	var out api.LinkResponse
	return c.emit(raw, &out, func(t *tw) {
		t.row("URL:", out.URL)
		t.row("Expires:", stamp(out.ExpiresAt))
		t.flush()
		t.line("\nSend the URL to the customer; it works once, until it expires.")
	})
}

// --- accounts ---

func accountsDecide(tracking checks.TrackingStatus) func(c *call) error {
	return func(c *call) error {
		in := api.AccountsRequest{Accounts: make([]store.AccountDecision, 0, len(c.args)-1)}
		for _, id := range c.args[1:] {
			in.Accounts = append(in.Accounts, store.AccountDecision{AccountID: id, TrackingStatus: tracking})
		}
		raw, err := c.send(http.MethodPatch, connPath(c.args[0])+"/status", nil, in)
		if err != nil {
			return err
		}
		return c.showConnection(raw, false)
	}
}

func (a *app) accountsFlag() *cobra.Command {
	var dupOf string
	cmd := a.leaf("flag <connectionId> <accountId> OLD_ACCOUNT|DUPLICATE [--duplicate-of A]",
		"flag an account closed (OLD_ACCOUNT) or a duplicate of another (DUPLICATE): terminal, never pulled", 3, 3,
		"<connectionId> <accountId> <status>", hintConnection, func(c *call) error {
			st := strings.ToUpper(c.args[2])
			if st != string(checks.AcctOldAccount) && st != string(checks.AcctDuplicate) {
				return usagef("the flag is OLD_ACCOUNT or DUPLICATE, not %q", c.args[2])
			}
			if (st == string(checks.AcctDuplicate)) != (dupOf != "") {
				return usagef("--duplicate-of goes with DUPLICATE, and DUPLICATE needs it")
			}
			in := api.AccountsRequest{AccountID: c.args[1], Status: api.OptionalStatus{Set: true, Value: &st}, DuplicateOf: dupOf}
			raw, err := c.send(http.MethodPatch, connPath(c.args[0])+"/status", nil, in)
			if err != nil {
				return err
			}
			return c.showConnection(raw, false)
		})
	cmd.Long = "A DUPLICATE names an account of the same connection or of another connection of the same\ncompany that is not itself a DUPLICATE. checkctl accounts unflag undoes a flag."
	cmd.Flags().StringVar(&dupOf, "duplicate-of", "", "the `accountId` this account duplicates")
	return cmd
}

func accountsUnflag(c *call) error {
	in := api.AccountsRequest{AccountID: c.args[1], Status: api.OptionalStatus{Set: true}}
	raw, err := c.send(http.MethodPatch, connPath(c.args[0])+"/status", nil, in)
	if err != nil {
		return err
	}
	return c.showConnection(raw, false)
}

// --- investigation ---

func (a *app) connectionInvestigate() *cobra.Command {
	var note string
	cmd := a.leaf("investigate <connectionId> [--note N]", "put a connection UNDER_INVESTIGATION (an operator's flag)", 1, 1,
		"<connectionId>", hintConnection, func(c *call) error {
			raw, err := c.send(http.MethodPost, connPath(c.args[0])+"/investigation", nil, api.InvestigationRequest{Note: note})
			if err != nil {
				return err
			}
			return c.showConnection(raw, false)
		})
	cmd.Long = "The connection is still checked weekly (its last check shows on it); the flag stays until\n" +
		"checkctl connection clear-investigation, new credentials, or a check that finds a credential\n" +
		"error. Exits 4 for a deactivated, company-inactive or credential-blocked connection."
	cmd.Flags().StringVar(&note, "note", "", "the `note` shown as the status detail")
	return cmd
}

func connectionClearInvestigation(c *call) error {
	raw, err := c.send(http.MethodDelete, connPath(c.args[0])+"/investigation", nil, nil)
	if err != nil {
		return err
	}
	return c.showConnection(raw, true)
}

// --- datasources ---

func datasourcesList(c *call) error {
	raw, err := c.send(http.MethodGet, "/v1/datasources", nil, nil)
	if err != nil {
		return err
	}
	var out api.DatasourceList
	return c.emit(raw, &out, func(t *tw) {
		t.row("DATASOURCE", "HEALTH", "CHECKS", "SITE-FAILED", "SUCCESS", "P50", "P95", "BREAKER", "SINCE", "NOT-ATTEMPTED", "RUNNING", "CAP")
		for _, d := range out.Datasources {
			rate := "-"
			if d.SuccessRate != nil {
				rate = strconv.FormatFloat(*d.SuccessRate*100, 'f', 1, 64) + "%"
			}
			cap := "-"
			if d.MaxConcurrent > 0 {
				cap = strconv.Itoa(d.MaxConcurrent)
			}
			t.row(d.Name, d.Health, strconv.FormatInt(d.Checks, 10), strconv.FormatInt(d.SiteFailures, 10), rate,
				(time.Duration(d.DurationP50Ms) * time.Millisecond).String(), (time.Duration(d.DurationP95Ms) * time.Millisecond).String(),
				d.Breaker, stampPtr(d.BreakerSince), strconv.FormatInt(d.NotAttempted, 10), strconv.FormatInt(d.Running, 10), cap)
		}
	})
}

// --- queues ---

func queueHeader(t *tw) {
	t.row("QUEUE", "SIZE", "PENDING", "ACTIVE", "SCHEDULED", "RETRY", "ARCHIVED", "COMPLETED", "PAUSED")
}

func queueRow(t *tw, q api.QueueStats) {
	t.row(q.Queue, strconv.Itoa(q.Size), strconv.Itoa(q.Pending), strconv.Itoa(q.Active), strconv.Itoa(q.Scheduled),
		strconv.Itoa(q.Retry), strconv.Itoa(q.Archived), strconv.Itoa(q.Completed), yesNo(q.Paused))
}

func queuesList(c *call) error {
	raw, err := c.send(http.MethodGet, "/v1/queues", nil, nil)
	if err != nil {
		return err
	}
	var out api.QueueList
	return c.emit(raw, &out, func(t *tw) {
		queueHeader(t)
		for _, q := range out.Queues {
			queueRow(t, q)
		}
	})
}

func queueAction(action string) func(c *call) error {
	return func(c *call) error {
		raw, err := c.send(http.MethodPost, "/v1/queues/"+seg(c.args[0])+"/"+action, nil, nil)
		if err != nil {
			return err
		}
		var q api.QueueStats
		return c.emit(raw, &q, func(t *tw) {
			queueHeader(t)
			queueRow(t, q)
		})
	}
}

// --- statuses ---

func statuses(c *call) error {
	raw, err := c.send(http.MethodGet, "/v1/statuses", nil, nil)
	if err != nil {
		return err
	}
	var out api.Statuses
	return c.emit(raw, &out, func(t *tw) {
		table := func(title string, infos []checks.Info) {
			t.line(title)
			t.row("STATUS", "NAME", "CATEGORY", "REFRESH", "RECONNECT")
			for _, s := range infos {
				t.row(s.Value, s.DisplayName, string(s.Category), yesNo(s.CanRefresh), yesNo(s.CanReconnect))
			}
			t.flush()
		}
		table("Connection statuses:", out.ConnectionStatuses)
		t.line("")
		table("Account statuses:", out.AccountStatuses)
		tracking := make([]string, len(out.TrackingStatuses))
		for i, s := range out.TrackingStatuses {
			tracking[i] = string(s)
		}
		t.line("\nTracking statuses: %s", strings.Join(tracking, ", "))
		t.line("Datasources: %s", strings.Join(out.Datasources, ", "))
	})
}

// --- encryption keys ---

func storeKeys(c *call) error {
	raw, err := c.send(http.MethodGet, "/v1/store/keys", nil, nil)
	if err != nil {
		return err
	}
	var st store.KeyStatus
	return c.emit(raw, &st, func(t *tw) { keyLines(t, st) })
}

// keyLines prints a key status, and what to do next.
func keyLines(t *tw, st store.KeyStatus) {
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

func (a *app) storeRekey() *cobra.Command {
	var (
		wait bool
		poll time.Duration
	)
	cmd := a.leaf("rekey [--wait [--poll D]]", "re-encrypt every stored credential under the primary encryption key", 0, 0, "", "",
		func(c *call) error {
			if poll <= 0 {
				return usagef("--poll must be positive, not %s", poll)
			}
			raw, err := c.send(http.MethodPost, "/v1/store/rekey", nil, nil)
			if err != nil {
				return err
			}
			var st api.RekeyResponse
			if err := c.emit(raw, &st, func(t *tw) {
				if st.Started {
					t.line("re-encryption started toward key %s", st.Primary)
				} else {
					t.line("a re-encryption toward key %s is under way already", st.Primary)
				}
				keyLines(t, st.KeyStatus)
			}); err != nil || !wait {
				return err
			}
			for st.Rekey.Running {
				select {
				case <-c.cmd.Context().Done():
					return c.cmd.Context().Err()
				case <-time.After(poll):
				}
				if raw, err = c.send(http.MethodGet, "/v1/store/keys", nil, nil); err != nil {
					return err
				}
				st.KeyStatus = store.KeyStatus{}
				if err := c.emit(raw, &st.KeyStatus, func(t *tw) { keyLines(t, st.KeyStatus) }); err != nil {
					return err
				}
			}
			if st.Rekey.Blocked {
				return errors.New("the re-encryption is blocked: configure the key that sealed the unreadable credentials (or give those connections new credentials), then run checkctl store rekey again")
			}
			return nil
		})
	cmd.Long = "Run it once every checkd process has the new CHECKD_ENCRYPTION_KEY with the old key in\n" +
		"CHECKD_ENCRYPTION_OLD_KEYS: those processes do the work in the background, in batches,\n" +
		"beside the checks, and a run survives restarts. With --wait checkctl prints the progress\n" +
		"until the run is done (then remove the old key from every process) or blocked (exit 1)."
	cmd.Flags().BoolVar(&wait, "wait", false, "print the progress until the run is done or blocked")
	cmd.Flags().DurationVar(&poll, "poll", 2*time.Second, "with --wait, how often to ask")
	return cmd
}
