// Package ctl is checkctl, the admin CLI of checkd: a small client of the
// HTTP API (Client) and the commands over it (Run). cmd/checkctl only calls
// Run.
//
//	checkctl [global flags] <command> [args] [flags]
//
// Global flags, accepted before or after the command:
//
//	--url URL            API base URL (env CHECKD_URL, default http://127.0.0.1:8080)
//	--api-key KEY        API key (env CHECKD_API_KEY)
//	--output json|table  output format (default table); json prints the API's answer
//
// Exit codes: 0 success, 1 API or other error, 2 usage error, 3 not found
// (404), 4 conflict or refused (409, 410). Error messages go to stderr.
package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
)

// Exit codes of Run.
const (
	ExitOK       = 0 // success
	ExitError    = 1 // the API refused (other than below) or something else failed
	ExitUsage    = 2 // bad command line; the command's help is printed
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

// globals are the flags every command accepts.
type globals struct {
	url, apiKey, output string
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.url, "url", g.url, "checkd API base `URL` (env "+EnvURL+")")
	fs.StringVar(&g.apiKey, "api-key", g.apiKey, "API `key` (env "+EnvAPIKey+")")
	fs.StringVar(&g.output, "output", g.output, "output `format`: json or table")
}

// usageError is a bad command line: Run prints it with the command's help
// and exits ExitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// command is one leaf command ("connection create").
type command struct {
	name    string // full name: "connection create"
	args    string // positional synopsis: "<companyId>"
	flagSyn string // flags synopsis: "--username U [--password-stdin]"
	summary string
	detail  string // extra help text
	minArgs int
	maxArgs int // -1: unbounded
	// flags registers the command's own flags into an options value (handed
	// to run as call.opts) and returns it with a validation run after
	// parsing.
	flags func(fs *flag.FlagSet) (opts any, validate func() error)
	run   func(c *call) error
}

// call is one running command.
type call struct {
	ctx    context.Context
	env    Env
	g      *globals
	client *Client
	args   []string
	fs     *flag.FlagSet
	opts   any // what command.flags returned
}

// Run runs checkctl with args (os.Args[1:]) and returns the exit code.
func Run(ctx context.Context, args []string, env Env) int {
	env = env.withDefaults()
	g := &globals{url: env.Getenv(EnvURL), apiKey: env.Getenv(EnvAPIKey), output: OutputTable}
	if g.url == "" {
		g.url = DefaultURL
	}

	top := flag.NewFlagSet("checkctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	g.register(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(env.Stdout, topHelp())
			return ExitOK
		}
		return usage(env, err.Error(), topHelp())
	}
	rest := top.Args()
	if len(rest) == 0 {
		return usage(env, "a command is required", topHelp())
	}
	if rest[0] == "help" {
		return help(env, rest[1:])
	}
	cmd, group, rest := lookup(rest)
	if cmd == nil {
		if group != "" {
			if len(rest) > 0 && isHelpFlag(rest[0]) {
				fmt.Fprint(env.Stdout, groupHelp(group))
				return ExitOK
			}
			msg := fmt.Sprintf("%q needs a subcommand", group)
			if len(rest) > 0 {
				msg = fmt.Sprintf("unknown command %q", group+" "+rest[0])
			}
			return usage(env, msg, groupHelp(group))
		}
		return usage(env, fmt.Sprintf("unknown command %q", rest[0]), topHelp())
	}
	return cmd.exec(ctx, env, g, rest)
}

func isHelpFlag(s string) bool {
	return s == "-h" || s == "-help" || s == "--help" || s == "-?"
}

// lookup finds the command named by the first one or two words of args. It
// returns the group when args name a group but no command of it.
func lookup(args []string) (*command, string, []string) {
	if c, ok := commandIndex[args[0]]; ok {
		return c, "", args[1:]
	}
	if !groups[args[0]] {
		return nil, "", args
	}
	if len(args) > 1 {
		if c, ok := commandIndex[args[0]+" "+args[1]]; ok {
			return c, "", args[2:]
		}
	}
	return nil, args[0], args[1:]
}

func (cmd *command) exec(ctx context.Context, env Env, g *globals, args []string) int {
	fs := flag.NewFlagSet("checkctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	var (
		opts     any
		validate func() error
	)
	if cmd.flags != nil {
		opts, validate = cmd.flags(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(env.Stdout, cmd.help(fs))
			return ExitOK
		}
		return usage(env, err.Error(), cmd.help(fs))
	}
	switch {
	case len(pos) < cmd.minArgs:
		return usage(env, fmt.Sprintf("missing arguments: %s", cmd.args), cmd.help(fs))
	case cmd.maxArgs >= 0 && len(pos) > cmd.maxArgs:
		return usage(env, fmt.Sprintf("unexpected argument %q", pos[cmd.maxArgs]), cmd.help(fs))
	}
	for _, a := range pos {
		if strings.TrimSpace(a) == "" {
			return usage(env, "an argument is empty", cmd.help(fs))
		}
	}
	if g.output != OutputTable && g.output != OutputJSON {
		return usage(env, fmt.Sprintf("--output must be json or table, not %q", g.output), cmd.help(fs))
	}
	if validate != nil {
		if err := validate(); err != nil {
			return usage(env, err.Error(), cmd.help(fs))
		}
	}
	client, err := NewClient(g.url, g.apiKey, env.HTTPClient)
	if err != nil {
		return usage(env, err.Error(), cmd.help(fs))
	}
	c := &call{ctx: ctx, env: env, g: g, client: client, args: pos, fs: fs, opts: opts}
	err = cmd.run(c)
	if err == nil {
		return ExitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return usage(env, ue.msg, cmd.help(fs))
	}
	return report(env, g, err)
}

// parseInterspersed parses flags anywhere among the positional arguments;
// everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return append(pos, tail...), nil
}

// usage prints a usage error and help to stderr.
func usage(env Env, msg, helpText string) int {
	fmt.Fprintf(env.Stderr, "checkctl: %s\n\n%s", msg, helpText)
	return ExitUsage
}

// report prints a failed call to stderr and maps it to an exit code.
func report(env Env, g *globals, err error) int {
	ae, ok := isAPIError(err)
	if !ok {
		fmt.Fprintf(env.Stderr, "checkctl: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(env.Stderr, "checkctl: %s\n", ae.Error())
	ids := make([]string, 0, len(ae.Accounts))
	for id := range ae.Accounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(env.Stderr, "  %s: %s\n", id, ae.Accounts[id])
	}
	switch ae.Status {
	case http.StatusUnauthorized:
		if g.apiKey == "" {
			fmt.Fprintf(env.Stderr, "checkctl: no API key was sent: set --api-key or %s\n", EnvAPIKey)
		}
		return ExitError
	case http.StatusNotFound:
		return ExitNotFound
	case http.StatusConflict, http.StatusGone:
		return ExitConflict
	}
	return ExitError
}

func help(env Env, path []string) int {
	if len(path) == 0 {
		fmt.Fprint(env.Stdout, topHelp())
		return ExitOK
	}
	cmd, group, rest := lookup(path)
	switch {
	case cmd != nil && len(rest) == 0:
		fs := flag.NewFlagSet("checkctl "+cmd.name, flag.ContinueOnError)
		(&globals{}).register(fs)
		if cmd.flags != nil {
			cmd.flags(fs)
		}
		fmt.Fprint(env.Stdout, cmd.help(fs))
		return ExitOK
	case group != "" && len(rest) == 0:
		fmt.Fprint(env.Stdout, groupHelp(group))
		return ExitOK
	}
	return usage(env, fmt.Sprintf("no help for unknown command %q", strings.Join(path, " ")), topHelp())
}

func (cmd *command) synopsis() string {
	s := "checkctl " + cmd.name
	for _, part := range []string{cmd.args, cmd.flagSyn} {
		if part != "" {
			s += " " + part
		}
	}
	return s
}

// help is the command's --help text: synopsis, summary, detail, then its
// own flags and the global ones.
func (cmd *command) help(fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\n%s\n", cmd.synopsis(), cmd.summary)
	if cmd.detail != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimRight(cmd.detail, "\n"))
	}
	var own, global strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		dst := &own
		if f.Name == "url" || f.Name == "api-key" || f.Name == "output" {
			dst = &global
		}
		name, use := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(dst, "%-28s %s\n", line, use)
	})
	if own.Len() > 0 {
		fmt.Fprintf(&b, "\nFlags:\n%s", own.String())
	}
	fmt.Fprintf(&b, "\nGlobal flags:\n%s", global.String())
	return b.String()
}

func topHelp() string {
	var b strings.Builder
	b.WriteString(`checkctl administers a checkd service through its HTTP API.

Usage: checkctl [--url URL] [--api-key KEY] [--output json|table] <command> [args] [flags]

Commands:
`)
	listCommands(&b, "")
	b.WriteString(`
Global flags (before or after the command):
  --url URL            API base URL (env ` + EnvURL + `, default ` + DefaultURL + `)
  --api-key KEY        API key (env ` + EnvAPIKey + `)
  --output FORMAT      json (the API's answer) or table (default)

Run "checkctl <command> --help" for a command's flags.
Exit codes: 0 ok, 1 API or other error, 2 usage error, 3 not found, 4 conflict or refused.
`)
	return b.String()
}

func groupHelp(group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: checkctl %s <command> [args] [flags]\n\nCommands:\n", group)
	listCommands(&b, group)
	fmt.Fprintf(&b, "\nRun \"checkctl %s <command> --help\" for a command's flags.\n", group)
	return b.String()
}

// listCommands writes the name, arguments and summary of every command
// (of group, when not empty) as aligned columns.
func listCommands(b *strings.Builder, group string) {
	w := tabwriter.NewWriter(b, 0, 8, 2, ' ', 0)
	for _, c := range commands {
		if group == "" || strings.HasPrefix(c.name, group+" ") {
			name := c.name
			if c.args != "" {
				name += " " + c.args
			}
			fmt.Fprintf(w, "  %s\t%s\n", name, c.summary)
		}
	}
	_ = w.Flush() // a strings.Builder does not fail
}

var (
	commandIndex = map[string]*command{}
	groups       = map[string]bool{}
)

func init() {
	for _, c := range commands {
		commandIndex[c.name] = c
		if g, _, ok := strings.Cut(c.name, " "); ok {
			groups[g] = true
		}
	}
}
