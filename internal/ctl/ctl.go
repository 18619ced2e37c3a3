// Package ctl is checkctl, the admin CLI of checkd: a small client of the
// HTTP API (Client) and the commands over it (Run), built on
// github.com/spf13/cobra, which also generates the shell completion.
// cmd/checkctl only calls Run.
//
//	checkctl [global flags] <command> [args] [flags]
//
// Global flags, accepted before or after the command:
//
//	--url URL              API base URL (env CHECKD_URL, default http://127.0.0.1:8080; a trailing /v1 is fine)
//	--api-key KEY          API key (env CHECKD_API_KEY); without one no command is sent (exit 2)
//	-o, --output FORMAT    json (the API's answer) or table (default); under json, errors are JSON too
//	--version              the build's version and commit
//
// Exit codes: 0 success, 1 API or other error, 2 usage error (no API key
// included), 3 not found (404), 4 conflict or refused (409, 410). Errors go
// to stderr: the message and, for a usage error, the usage of the one
// command; under -o json one JSON object {"error":{...}}.
package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/checkd/checkd/internal/version"
)

// Exit codes of Run.
const (
	ExitOK       = 0 // success
	ExitError    = 1 // the API refused (other than below) or something else failed
	ExitUsage    = 2 // bad command line, or no API key; nothing was sent
	ExitNotFound = 3 // 404: no such company, connection or queue
	ExitConflict = 4 // 409 or 410: the current state refuses the action
)

// Environment variables read by Run.
const (
	EnvURL    = "CHECKD_URL"
	EnvAPIKey = "CHECKD_API_KEY"
)

// Output formats.
const (
	OutputTable = "table"
	OutputJSON  = "json"
)

// Env is what a run of checkctl talks to; the zero value means the process's
// own (os.Stdin, os.Stdout, os.Stderr, os.Getenv, an http.Client with
// DefaultTimeout).
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	HTTPClient     *http.Client
}

func (e Env) withDefaults() Env {
	if e.Stdin == nil {
		e.Stdin = os.Stdin
	}
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Stderr == nil {
		e.Stderr = os.Stderr
	}
	if e.Getenv == nil {
		e.Getenv = os.Getenv
	}
	return e
}

// usageError is a bad command line: Run prints it with the command's usage
// and exits ExitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// errNoKey refuses to send a command without an API key: every route needs
// one, and a 401 would only say so later.
var errNoKey = errors.New("no API key: set --api-key or " + EnvAPIKey + " (nothing was sent)")

func init() {
	// Help lists the commands in the order they are added (by topic).
	cobra.EnableCommandSorting = false
}

// app is one run of checkctl: its environment and global flags.
type app struct {
	env                 Env
	url, apiKey, output string
	client              *Client
}

// Run runs checkctl with args (os.Args[1:]) and returns the exit code.
func Run(ctx context.Context, args []string, env Env) int {
	a := &app{env: env.withDefaults()}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(a.env.Stdin)
	root.SetOut(a.env.Stdout)
	root.SetErr(a.env.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if a.output == "" {
		a.output = outputIn(args) // flags did not parse: as far as they tell
	}
	return a.report(cmd, err)
}

// outputIn finds -o/--output json among args that did not parse.
func outputIn(args []string) string {
	for i, s := range args {
		switch {
		case s == "--":
			return ""
		case s == "-ojson" || s == "--output=json" || s == "-o=json":
			return OutputJSON
		case (s == "-o" || s == "--output") && i+1 < len(args) && args[i+1] == OutputJSON:
			return OutputJSON
		}
	}
	return ""
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "checkctl [--url URL] [--api-key KEY] [-o json|table] <command>",
		Short: "checkctl administers a checkd service through its HTTP API.",
		Long: "Exit codes: 0 ok, 1 API or other error, 2 usage error, 3 not found, 4 conflict or refused\n" +
			"(2 also when no API key is set: nothing is sent). Global flags go before or after the command.\n" +
			"Run \"checkctl <command> --help\" for a command's flags, \"checkctl completion bash|zsh\" for shell completion.",
		Version:               version.Get().String(),
		DisableFlagsInUseLine: true,
		SilenceErrors:         true,
		SilenceUsage:          true,
		CompletionOptions:     cobra.CompletionOptions{DisableDefaultCmd: true},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q%s", args[0], suggest(cmd, args[0]))
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error { return usagef("a command is required") },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.output != OutputTable && a.output != OutputJSON {
				return usagef("--output must be json or table, not %q", a.output)
			}
			return nil
		},
	}
	root.SetVersionTemplate("checkctl {{.Version}}\n")
	root.Flags().BoolP("version", "v", false, "print the build's version and commit")
	pf := root.PersistentFlags()
	pf.StringVar(&a.url, "url", "", "checkd API base `URL` (env "+EnvURL+", default "+DefaultURL+"; a trailing /v1 is fine)")
	pf.StringVar(&a.apiKey, "api-key", "", "API `key` (env "+EnvAPIKey+")")
	pf.StringVarP(&a.output, "output", "o", OutputTable, "output `format`: json (the API's answer; errors as JSON) or table")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) { fmt.Fprint(cmd.OutOrStdout(), help(cmd)) })
	root.SetUsageFunc(func(cmd *cobra.Command) error {
		fmt.Fprint(cmd.OutOrStderr(), usage(cmd))
		return nil
	})
	root.SetHelpCommand(a.helpCommand(root))
	for _, g := range a.groups() {
		root.AddCommand(g)
	}
	root.AddCommand(a.completionCommand(root))
	return root
}

// group is a command that only holds others ("connection"): run alone or
// with an unknown word, it is a usage error.
func group(name, short string, cmds ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{
		Use:                   name + " <command>",
		Short:                 short,
		DisableFlagsInUseLine: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q%s", name+" "+args[0], suggest(cmd, args[0]))
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error { return usagef("%q needs a subcommand", name) },
	}
	g.AddCommand(cmds...)
	return g
}

// suggest names the commands close to a mistyped one, as cobra would.
func suggest(cmd *cobra.Command, typed string) string {
	s := cmd.SuggestionsFor(typed)
	if len(s) == 0 {
		return ""
	}
	return " (did you mean " + strings.Join(s, " or ") + "?)"
}

// positional checks a leaf's positional arguments: at least min, at most
// max (-1: no limit), none blank; names is their synopsis for the message.
func positional(min, max int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) < min:
			return usagef("missing arguments: %s", names)
		case max >= 0 && len(args) > max:
			return usagef("unexpected argument %q", args[max])
		}
		for _, a := range args {
			if strings.TrimSpace(a) == "" {
				return usagef("an argument is empty")
			}
		}
		return nil
	}
}

// helpCommand is "checkctl help [command]"; an unknown command is a usage
// error (cobra's own says so on stdout and exits 0).
func (a *app) helpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:                   "help [command]",
		Short:                 "show the help of checkctl or of a command",
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return usagef("no help for unknown command %q", strings.Join(args, " "))
			}
			fmt.Fprint(cmd.OutOrStdout(), help(target))
			return nil
		},
	}
}

// completionCommand prints a shell completion script generated from the
// command tree.
func (a *app) completionCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh",
		Short: "print the shell completion script",
		Long: "Load it in the current shell, or install it for good:\n\n" +
			"  source <(checkctl completion bash)      # bash (needs the bash-completion package)\n" +
			"  checkctl completion zsh > \"${fpath[1]}/_checkctl\"   # zsh, then start a new shell",
		DisableFlagsInUseLine: true,
		Annotations:           map[string]string{annotationArgs: "bash|zsh"},
		ValidArgs:             []string{"bash", "zsh"},
		Args: func(cmd *cobra.Command, args []string) error {
			if err := positional(1, 1, "bash|zsh")(cmd, args); err != nil {
				return err
			}
			if args[0] != "bash" && args[0] != "zsh" {
				return usagef("no completion for %q: the shells are bash and zsh", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "bash" {
				return root.GenBashCompletionV2(cmd.OutOrStdout(), true)
			}
			return root.GenZshCompletion(cmd.OutOrStdout())
		},
	}
}

// report prints a failed run to stderr and maps it to an exit code.
func (a *app) report(cmd *cobra.Command, err error) int {
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		if a.output == OutputJSON {
			a.printJSONError(errorBody{Code: "usage", Message: ue.msg})
		} else {
			fmt.Fprintf(a.env.Stderr, "checkctl: %s\n\n%s", ue.msg, usage(cmd))
		}
		return ExitUsage
	case errors.Is(err, errNoKey):
		a.printError(errorBody{Code: "no_api_key", Message: err.Error()})
		return ExitUsage
	}
	ae, ok := isAPIError(err)
	if !ok {
		a.printError(errorBody{Code: "error", Message: err.Error()})
		return ExitError
	}
	body := errorBody{Code: ae.Code, Message: ae.Error(), Status: ae.Status, Accounts: ae.Accounts}
	if ae.Status == http.StatusNotFound {
		body.Hint = cmd.Annotations[annotationNotFound]
	}
	a.printError(body)
	switch ae.Status {
	case http.StatusNotFound:
		return ExitNotFound
	case http.StatusConflict, http.StatusGone:
		return ExitConflict
	}
	return ExitError
}

// errorBody is an error as -o json prints it: {"error": errorBody}, the
// API's code and message with the HTTP status and a hint.
type errorBody struct {
	Code     string            `json:"code"`
	Message  string            `json:"message"`
	Status   int               `json:"status,omitempty"`
	Accounts map[string]string `json:"accounts,omitempty"`
	Hint     string            `json:"hint,omitempty"`
}

// printError writes an error as text, or as JSON under -o json.
func (a *app) printError(e errorBody) {
	if a.output == OutputJSON {
		a.printJSONError(e)
		return
	}
	fmt.Fprintf(a.env.Stderr, "checkctl: %s\n", e.Message)
	ids := make([]string, 0, len(e.Accounts))
	for id := range e.Accounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(a.env.Stderr, "  %s: %s\n", id, e.Accounts[id])
	}
	if e.Hint != "" {
		fmt.Fprintf(a.env.Stderr, "checkctl: %s\n", e.Hint)
	}
}

func (a *app) printJSONError(e errorBody) {
	enc := json.NewEncoder(a.env.Stderr)
	enc.SetEscapeHTML(false) // "<companyId>" as it is, not \u003c
	enc.SetIndent("", "  ")
	_ = enc.Encode(struct { // strings, ints and a map of strings always encode
		Error errorBody `json:"error"`
	}{e})
}

// Annotations of a command: its hint for a 404 (which checkctl command
// lists what the ID should be), and its positional arguments' synopsis.
const (
	annotationNotFound = "checkctl/notFound"
	annotationArgs     = "checkctl/args"
)

// Hints for a 404, by what the command's ID names.
const (
	hintCompany    = "list the companies and their IDs with: checkctl companies list"
	hintConnection = "list a company's connections and their IDs with: checkctl connections list <companyId> (companies: checkctl companies list)"
	hintAccount    = "show a connection's accounts and their IDs with: checkctl connection show <connectionId>"
	hintQueue      = "list the queues with: checkctl queues list"
)

// usage is what a usage error prints after the message: the synopsis of the
// one command, its subcommands or own flags, and where the rest is.
func usage(cmd *cobra.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n", cmd.UseLine())
	writeSubcommands(&b, cmd)
	if own := withoutHelp(cmd.LocalNonPersistentFlags()); cmd.HasParent() && own.HasAvailableFlags() {
		fmt.Fprintf(&b, "\nFlags:\n%s", own.FlagUsages())
	}
	fmt.Fprintf(&b, "\nRun \"%s --help\" for more, the global flags included.\n", cmd.CommandPath())
	return b.String()
}

// help is a command's --help: its synopsis, what it does, its subcommands
// or flags.
func help(cmd *cobra.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\n%s\n", cmd.UseLine(), cmd.Short)
	if cmd.Long != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimRight(cmd.Long, "\n"))
	}
	writeSubcommands(&b, cmd)
	writeFlags(&b, cmd)
	return b.String()
}

// writeSubcommands lists every command under cmd with its arguments and
// summary, as aligned columns.
func writeSubcommands(b *strings.Builder, cmd *cobra.Command) {
	var rows [][2]string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if !s.IsAvailableCommand() || s.Name() == "help" {
				continue
			}
			if s.HasAvailableSubCommands() {
				walk(s)
				continue
			}
			name := strings.TrimPrefix(s.CommandPath(), cmd.Root().Name()+" ")
			if args := s.Annotations[annotationArgs]; args != "" {
				name += " " + args
			}
			rows = append(rows, [2]string{name, s.Short})
		}
	}
	walk(cmd)
	if len(rows) == 0 {
		return
	}
	b.WriteString("\nCommands:\n")
	w := 0
	for _, r := range rows {
		w = max(w, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(b, "  %-*s  %s\n", w, r[0], r[1])
	}
}

// writeFlags lists the command's own flags, then the global ones, leaving
// out --help (every command has it).
func writeFlags(b *strings.Builder, cmd *cobra.Command) {
	own, global := withoutHelp(cmd.LocalNonPersistentFlags()), withoutHelp(cmd.Root().PersistentFlags())
	if !cmd.HasParent() {
		global.AddFlagSet(own) // --version
	} else if own.HasAvailableFlags() {
		fmt.Fprintf(b, "\nFlags:\n%s", own.FlagUsages())
	}
	fmt.Fprintf(b, "\nGlobal flags:\n%s", global.FlagUsages())
}

func withoutHelp(fs *pflag.FlagSet) *pflag.FlagSet {
	out := pflag.NewFlagSet("flags", pflag.ContinueOnError)
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			out.AddFlag(f)
		}
	})
	return out
}

// client is the API client of this run, made at the first request: no
// request is sent without an API key.
func (a *app) clientFor() (*Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	url, key := a.url, a.apiKey
	if url == "" {
		url = a.env.Getenv(EnvURL)
	}
	if url == "" {
		url = DefaultURL
	}
	if key == "" {
		key = a.env.Getenv(EnvAPIKey)
	}
	c, err := NewClient(url, key, a.env.HTTPClient)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	if key == "" {
		return nil, errNoKey
	}
	a.client = c
	return c, nil
}

// printJSON writes raw indented, with a final newline.
func printJSON(w io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(raw), "", "  "); err != nil {
		return fmt.Errorf("the API's answer is not JSON: %w", err)
	}
	b.WriteByte('\n')
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
