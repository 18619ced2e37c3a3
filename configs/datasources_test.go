package configs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// testSecret is a valid whsec_ secret; testSecret2 another.
const (
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="
	testSecret2 = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)

func loadYAML(t *testing.T, doc string, e map[string]string) (Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return load(p, env(e))
}

// TestDatasources: entries inherit the defaults they leave unset, and a
// secret comes from the environment when set there.
func TestDatasources(t *testing.T) {
	t.Parallel()
	c, err := loadYAML(t, `
checkers:
  defaults:
    timeout: 45s
datasources:
  utilityco:
    checker: http
    url: https://scrapers.example.com/check
    secret: `+testSecret+`
  power-east:
    checker: HTTP
    url: " https://east.example.com/check "
    timeout: 20s
`, map[string]string{"CHECKD_DATASOURCE_POWER_EAST_SECRET": testSecret2})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Datasource{
		"utilityco":  {Checker: CheckerHTTP, URL: "https://scrapers.example.com/check", Secret: testSecret, Timeout: 45 * time.Second},
		"power-east": {Checker: CheckerHTTP, URL: "https://east.example.com/check", Secret: testSecret2, Timeout: 20 * time.Second},
	}
	if !reflect.DeepEqual(c.Datasources, want) {
		t.Errorf("datasources:\n got %+v\nwant %+v", c.Datasources, want)
	}
	if got := c.DatasourceNames(); !reflect.DeepEqual(got, []string{"power-east", "utilityco"}) {
		t.Errorf("names %v", got)
	}
	if c.Checkers.AllowHTTP {
		t.Error("http allowed by default")
	}

	// The switch, from the environment.
	c, err = loadYAML(t, "datasources:\n  local:\n    checker: http\n    url: http://127.0.0.1:18100/check\n",
		map[string]string{EnvCheckerAllowHTTP: "true", EnvDatasourceSecret("local"): testSecret})
	if err != nil || !c.Checkers.AllowHTTP || c.Datasources["local"].Secret != testSecret {
		t.Errorf("http checker with the switch on: %+v %v", c.Datasources, err)
	}
}

func TestDatasourceProblems(t *testing.T) {
	t.Parallel()
	entry := func(name, body string) string {
		return "datasources:\n  " + name + ":\n" + body
	}
	good := "    checker: http\n    url: https://x.example.com/check\n    secret: " + testSecret + "\n"
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want string
	}{
		{"sandbox name", entry("sandbox", good), nil, "built-in sandbox"},
		{"upper-case name", entry("UtilityCo", good), nil, "lowercase letters"},
		{"no checker", entry("u", "    url: https://x.example.com/\n    secret: "+testSecret+"\n"), nil, `datasources.u.checker is ""`},
		{"other checker", entry("u", "    checker: grpc\n"), nil, `use "http"`},
		{"plain http", entry("u", "    checker: http\n    url: http://x.example.com/\n    secret: "+testSecret+"\n"), nil, EnvCheckerAllowHTTP},
		{"switch garbage", entry("u", good), map[string]string{EnvCheckerAllowHTTP: "perhaps"}, "is not true or false"},
		{"no url", entry("u", "    checker: http\n    secret: "+testSecret+"\n"), nil, "datasources.u.url"},
		{"no secret", entry("u", "    checker: http\n    url: https://x.example.com/\n"), nil, "CHECKD_DATASOURCE_U_SECRET"},
		{"bad secret", entry("u", good), map[string]string{"CHECKD_DATASOURCE_U_SECRET": "whsec_dG9vIHNob3J0"}, "holds 9 bytes"},
		{"timeout too long", entry("u", good+"    timeout: 2m\n"), nil, "shorter than worker.checkTimeout"},
		{"negative timeout", entry("u", good+"    timeout: -1s\n"), nil, "datasources.u.timeout is -1s"},
		{"no default timeout", "checkers:\n  defaults:\n    timeout: 0s\n", nil, "checkers.defaults.timeout is 0s"},
		{"unknown key", entry("u", good+"    maxConcurent: 3\n"), nil, "field maxConcurent not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadYAML(t, tc.yaml, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
			if !strings.Contains(tc.name, "unknown") && !errors.Is(err, ErrInvalid) {
				t.Errorf("%v does not wrap ErrInvalid", err)
			}
			for _, s := range []string{"MfKQ9r8GKYqr", "dG9vIHNob3J0"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error quotes a secret: %v", err)
				}
			}
		})
	}
}

// TestDatasourceSecretRedacted: Redacted masks every datasource's secret
// without touching the original, and the redacted configuration round
// trips as YAML otherwise unchanged.
func TestDatasourceSecretRedacted(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Datasources = map[string]Datasource{"u": {Checker: CheckerHTTP, URL: "https://x.example.com/", Secret: testSecret, Timeout: time.Minute}}
	r := c.Redacted()
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "MfKQ9r8GKYqr") || r.Datasources["u"].URL != "https://x.example.com/" {
		t.Errorf("redacted:\n%s", out)
	}
	if c.Datasources["u"].Secret != testSecret {
		t.Error("Redacted modified the original")
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil || !reflect.DeepEqual(got.Datasources, c.Datasources) {
		t.Errorf("round trip: %+v %v", got.Datasources, err)
	}
}
