package configs

import (
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/checkd/checkd/checks/httpcheck"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/store"
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

// Datasource is one entry of the datasources section, by name: a
// datasource checked by a checker service (Checker, URL, Secret,
// Timeout), and the operations settings any datasource may have, the
// built-in sandbox's included (MaxConcurrent, Health), which are all an
// entry named sandbox may set.
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
	// MaxConcurrent caps its checks running at once across every worker
	// (0: no cap).
	MaxConcurrent int `yaml:"maxConcurrent"`
	// Health overrides the health rules' fields it sets.
	Health store.HealthRules `yaml:"health"`
}

// service reports whether the entry configures a checker service (the
// sandbox's entry may only set operations settings).
func (d Datasource) service() bool {
	return d.Checker != "" || d.URL != "" || d.Secret != "" || d.Timeout != 0
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

// DatasourceNames lists the configured datasources, sorted: those checked
// by a checker service (an entry of the sandbox, which may only set
// operations settings, is not listed).
func (c Config) DatasourceNames() []string {
	out := make([]string, 0, len(c.Datasources))
	for n := range c.Datasources {
		if n != sandbox.Datasource {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// HealthRules are datasource ds's health rules: health's, with the fields
// datasources.<ds>.health sets in their place (health.enabled aside).
func (c Config) HealthRules(ds string) store.HealthRules {
	r := c.Health.HealthRules
	o := c.Datasources[ds].Health
	if o.Window != 0 {
		r.Window = o.Window
	}
	if o.MinChecks != 0 {
		r.MinChecks = o.MinChecks
	}
	if o.DownRatio != 0 {
		r.DownRatio = o.DownRatio
	}
	if o.DegradedRatio != 0 {
		r.DegradedRatio = o.DegradedRatio
	}
	if o.ProbesPerMinute != 0 {
		r.ProbesPerMinute = o.ProbesPerMinute
	}
	return r
}

// MaxConcurrent is datasource ds's concurrency cap (0: none).
func (c Config) MaxConcurrent(ds string) int { return c.Datasources[ds].MaxConcurrent }

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
		if ds.Timeout == 0 && name != sandbox.Datasource {
			ds.Timeout = c.Checkers.Defaults.Timeout
		}
		c.Datasources[name] = ds
	}
}

// datasourceProblems lists what is wrong with the checkers and datasources
// sections. A secret is never quoted.
func (c Config) datasourceProblems(p *problems) {
	p.positiveDur("checkers.defaults.timeout", c.Checkers.Defaults.Timeout)
	for _, name := range slices.Sorted(maps.Keys(c.Datasources)) {
		ds := c.Datasources[name]
		key := "datasources." + name
		if ds.MaxConcurrent < 0 {
			p.add("%s.maxConcurrent is %d; use 0 (no cap) or more", key, ds.MaxConcurrent)
		}
		if c.Health.Enabled {
			if err := c.HealthRules(name).Validate(key + ".health"); err != nil {
				p.add("%v", err)
			}
		}
		switch {
		case name == sandbox.Datasource && ds.service():
			p.add("%s: %q is the built-in sandbox datasource: its entry takes only maxConcurrent and health; name a checker service differently", key, name)
			continue
		case name == sandbox.Datasource:
			continue
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
