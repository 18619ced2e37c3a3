package webhook

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// fakeResolver answers from a table.
type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := f[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func TestBlocked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1", true}, {"127.255.0.9", true}, {"::1", true}, {"10.1.2.3", true}, {"172.16.0.1", true},
		{"172.31.255.255", true}, {"192.168.1.1", true}, {"169.254.169.254", true}, {"fe80::1", true},
		{"fd00:ec2::254", true}, {"fc00::1", true}, {"0.0.0.0", true}, {"::", true}, {"224.0.0.1", true},
		{"255.255.255.255", true}, {"100.64.0.1", true}, {"100.100.100.200", true}, {"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true}, {"198.18.0.1", true}, {"240.0.0.1", true}, {"2001:db8::1", true},
		{"64:ff9b::a00:1", true}, {"2002:a00:1::", true},
		{"93.184.216.34", false}, {"8.8.8.8", false}, {"172.32.0.1", false}, {"100.128.0.1", false},
		{"2606:4700:4700::1111", false}, {"::ffff:8.8.8.8", false},
	} {
		if got := Blocked(netip.MustParseAddr(tc.addr)); got != tc.blocked {
			t.Errorf("Blocked(%s) = %v, want %v", tc.addr, got, tc.blocked)
		}
	}
}

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	r := fakeResolver{
		"hooks.example.com":    {"93.184.216.34", "2606:2800:220:1::1"},
		"internal.example.com": {"10.0.0.5"},
		"mixed.example.com":    {"93.184.216.34", "127.0.0.1"},
		"metadata.example.com": {"169.254.169.254"},
	}
	p := Policy{Resolver: r}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://hooks.example.com/webhooks", true},
		{"https://93.184.216.34:8443/x", true},
		{"https://[2606:2800:220:1::1]/x", true},
		{"http://hooks.example.com/webhooks", false}, // http
		{"https://internal.example.com/", false},
		{"https://mixed.example.com/", false}, // any private address refuses
		{"https://metadata.example.com/latest", false},
		{"https://127.0.0.1/", false},
		{"https://[::1]:8080/", false},
		{"https://unknown.example.com/", false},
	} {
		err := p.Check(context.Background(), tc.url)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrURLRefused) {
			t.Errorf("Check(%s) = %v, want ok %v", tc.url, err, tc.ok)
		}
		if err != nil && strings.Contains(tc.url, "internal") && !strings.Contains(err.Error(), EnvAllowPrivate) {
			t.Errorf("the refusal does not say how to allow private addresses: %v", err)
		}
		if err := (Policy{AllowPrivate: true, Resolver: r}).Check(context.Background(), tc.url); err != nil {
			t.Errorf("AllowPrivate refused %s: %v", tc.url, err)
		}
	}
	for _, tc := range []struct {
		addr string
		ok   bool
	}{{"93.184.216.34:443", true}, {"127.0.0.1:80", false}, {"[::1]:443", false}, {"[::ffff:169.254.169.254]:80", false}, {"nonsense", false}} {
		if err := p.control("tcp", tc.addr, nil); (err == nil) != tc.ok {
			t.Errorf("control(%s) = %v, want ok %v", tc.addr, err, tc.ok)
		}
		if err := (Policy{AllowPrivate: true}).control("tcp", tc.addr, nil); err != nil {
			t.Errorf("AllowPrivate refused connecting to %s", tc.addr)
		}
	}
}
