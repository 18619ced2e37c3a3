package configs

import (
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/checkd/checkd/checks/httpcheck"
	"github.com/checkd/checkd/checks/sandbox"
)

// Checkers configures what every checker service shares.
type Checkers struct {
	// AllowHTTP accepts plain http:// checker URLs: for development and
	// tests (credentials travel in the request body). Env:
	// CHECKD_CHECKER_ALLOW_HTTP.
	AllowHTTP bool `yaml:"allowHTTP"`
	// Defaults fill what a datasources entry leaves unset.
	Defaults DatasourceDefaults `yaml:"defaults"`
}

// DatasourceDefaults are the settings a datasources entry inherits.
type DatasourceDefaults struct {
	// Timeout bounds one call to the checker.
	Timeout time.Duration `yaml:"timeout"`
}

// Datasource is one datasource checked by a checker service (the
// datasources section, by name).
type Datasource struct {
	// Checker is how its connections are checked: CheckerHTTP.
	Checker string `yaml:"checker"`
	// URL receives the checks (https unless checkers.allowHTTP).
	URL string `yaml:"url"`
	// Secret signs the requests: whsec_ and the base64 of 24 to 64 random
	// bytes. Env: CHECKD_DATASOURCE_<NAME>_SECRET.
	Secret string `yaml:"secret"`
	// Timeout bounds one call to the checker; 0 takes
	// checkers.defaults.timeout. A call that overruns it is retried.
	Timeout time.Duration `yaml:"timeout"`
}

// CheckerHTTP is the checker of a datasource served over the HTTP checker
// protocol (checks/httpcheck).
const CheckerHTTP = "http"

// EnvCheckerAllowHTTP is the development switch allowing http:// checkers.
const EnvCheckerAllowHTTP = httpcheck.EnvAllowHTTP

// EnvDatasourceSecret is the environment variable of a datasource's
// secret: CHECKD_DATASOURCE_<NAME>_SECRET, NAME upper-cased with - as _.
func EnvDatasourceSecret(name string) string {
	return "CHECKD_DATASOURCE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_SECRET"
}

// datasourceName is what a configured datasource may be called: it is
// stored with every connection and names an environment variable.
var datasourceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// DatasourceNames lists the configured datasources, sorted.
func (c Config) DatasourceNames() []string {
	out := make([]string, 0, len(c.Datasources))
	for n := range c.Datasources {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// applyDatasourceSecrets reads each configured datasource's secret from
// the environment.
func (c *Config) applyDatasourceSecrets(getenv func(string) string) {
	for name, ds := range c.Datasources {
		if v := getenv(EnvDatasourceSecret(name)); v != "" {
			ds.Secret = v
			c.Datasources[name] = ds
		}
	}
}

// normalizeDatasources fills each entry's unset settings from the defaults.
func (c *Config) normalizeDatasources() {
	if len(c.Datasources) == 0 {
		c.Datasources = nil
		return
	}
	for name, ds := range c.Datasources {
		ds.Checker = strings.ToLower(strings.TrimSpace(ds.Checker))
		ds.URL = strings.TrimSpace(ds.URL)
		ds.Secret = strings.TrimSpace(ds.Secret)
		if ds.Timeout == 0 {
			ds.Timeout = c.Checkers.Defaults.Timeout
		}
		c.Datasources[name] = ds
	}
}

// datasourceProblems lists what is wrong with the checkers and datasources
// sections. A secret is never quoted.
func (c Config) datasourceProblems(p *problems) {
	p.positiveDur("checkers.defaults.timeout", c.Checkers.Defaults.Timeout)
	for _, name := range c.DatasourceNames() {
		ds := c.Datasources[name]
		key := "datasources." + name
		switch {
		case name == sandbox.Datasource:
			p.add("%s: %q is the built-in sandbox datasource; name yours differently", key, name)
		case !datasourceName.MatchString(name):
			p.add("%s: a datasource name is 1 to 63 lowercase letters, digits, - and _, starting with a letter or digit", key)
		}
		if ds.Checker != CheckerHTTP {
			p.add("%s.checker is %q; use %q (a checker service over the HTTP checker protocol, docs/checkers.md)", key, ds.Checker, CheckerHTTP)
			continue
		}
		if err := httpcheck.CheckURL(ds.URL, c.Checkers.AllowHTTP); err != nil {
			p.add("%s.url: %v", key, err)
		}
		if ds.Secret == "" {
			p.add("%s.secret is required (or %s): generate one with: echo \"whsec_$(openssl rand -base64 32)\"", key, EnvDatasourceSecret(name))
		} else if _, err := httpcheck.ParseSecret(ds.Secret); err != nil {
			p.add("%s.secret (%s): %v", key, EnvDatasourceSecret(name), err)
		}
		if ds.Timeout <= 0 {
			p.add("%s.timeout is %s; it must be positive (e.g. 90s)", key, ds.Timeout)
		} else if c.Worker.CheckTimeout > 0 && ds.Timeout >= c.Worker.CheckTimeout {
			p.add("%s.timeout (%s) must be shorter than worker.checkTimeout (%s): a call that overruns its timeout is retried, one that overruns the check's is recorded as WEBSITE_DOWN",
				key, ds.Timeout, c.Worker.CheckTimeout)
		}
	}
}

// redactDatasources masks the secrets of out's datasources (a copy).
func (out *Config) redactDatasources() {
	if len(out.Datasources) == 0 {
		return
	}
	m := make(map[string]Datasource, len(out.Datasources))
	for n, ds := range out.Datasources {
		if ds.Secret != "" {
			ds.Secret = "<redacted>"
		}
		m[n] = ds
	}
	out.Datasources = m
}
