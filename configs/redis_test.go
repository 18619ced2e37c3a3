package configs

import (
	"slices"
	"strings"
	"testing"
)

func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url                   string
		master                string
		sentinels             []string
		db                    int
		user, pass, sentPass  string
		single, wantErr, hide string
	}{
		{url: "redis://127.0.0.1:6379/2", single: "127.0.0.1:6379", db: 2},
		{url: "redis+sentinel://h1:26379,h2:26380/mymaster/3", master: "mymaster", sentinels: []string{"h1:26379", "h2:26380"}, db: 3},
		{url: "redis+sentinel://:pw@h1/mymaster", master: "mymaster", sentinels: []string{"h1:26379"}, pass: "pw"},
		{url: "REDIS+SENTINEL://u:p%40ss@[::1]:5000/m/0?sentinelPassword=sp&sentinelUsername=su", master: "m", sentinels: []string{"[::1]:5000"},
			user: "u", pass: "p@ss", sentPass: "sp"},
		{url: "redis+sentinel://h1:26379, h2:26379 ,/m", master: "m", sentinels: []string{"h1:26379", "h2:26379"}},
		{url: "redis+sentinel:///m", wantErr: "no sentinel address"},
		{url: "redis+sentinel://h1:26379", wantErr: "no master name"},
		{url: "redis+sentinel://h1:26379/", wantErr: "no master name"},
		{url: "redis+sentinel://h1:26379/m/x", wantErr: `database "x"`},
		{url: "redis+sentinel://h1:26379/m/0/1", wantErr: "too many path segments"},
		{url: "redis+sentinel://h1:99999/m", wantErr: "no valid port"},
		{url: "redis+sentinel://:1/m", wantErr: "has no host"},
		{url: "redis+sentinel://h1/m?db=2", wantErr: `unknown parameter "db"`},
		{url: "redis+sentinel://:hunter2@h1:26379/m?x=1", wantErr: "unknown parameter", hide: "hunter2"},
		{url: "http://h1:6379", wantErr: "invalid URL scheme"},
	} {
		u, err := ParseRedisURL(tc.url)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || (tc.hide != "" && strings.Contains(err.Error(), tc.hide)) {
				t.Errorf("%s: %v, want an error containing %q", tc.url, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if tc.single != "" {
			if u.Single == nil || u.Single.Addr != tc.single || u.Single.DB != tc.db || u.Addr() != tc.single {
				t.Errorf("%s: %+v", tc.url, u)
			}
			continue
		}
		s := u.Sentinel
		if s == nil || s.MasterName != tc.master || !slices.Equal(s.SentinelAddrs, tc.sentinels) || s.DB != tc.db ||
			s.Username != tc.user || s.Password != tc.pass || s.SentinelPassword != tc.sentPass {
			t.Errorf("%s: %+v", tc.url, s)
		}
		if strings.Contains(u.Addr(), tc.pass) && tc.pass != "" {
			t.Errorf("%s: Addr() shows the password: %s", tc.url, u.Addr())
		}
	}
}

func TestSentinelURLConfig(t *testing.T) {
	t.Parallel()
	c, err := load("", env(map[string]string{EnvRedisURL: "redis+sentinel://:s3cret@h1:26379,h2:26379/mymaster/1?sentinelPassword=t0psecret", EnvEncryptionKey: testKey, EnvAPIKeys: "aaaaaaaaaaaaaaaa"}))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted().RedisURL
	if strings.Contains(r, "s3cret") || strings.Contains(r, "t0psecret") || !strings.Contains(r, "h1:26379,h2:26379/mymaster/1") {
		t.Errorf("redacted sentinel URL: %s", r)
	}
	if _, err := load("", env(map[string]string{EnvRedisURL: "redis+sentinel://h1:26379"})); err == nil || !strings.Contains(err.Error(), "redis+sentinel://") {
		t.Errorf("a sentinel URL without a master: %v", err)
	}
}
