package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
)

// ErrURLRefused reports an endpoint URL the policy does not allow; the
// message says why and what to do.
var ErrURLRefused = errors.New("webhook endpoint URL refused")

// EnvAllowPrivate names the setting that lets endpoints be plain http and
// reach any address (development and tests).
const EnvAllowPrivate = "CHECKD_WEBHOOK_ALLOW_PRIVATE"

// Resolver looks up a host's addresses; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Policy decides which endpoint URLs checkd may call: by default https
// only, and only hosts whose every address is public, so an API key
// cannot turn checkd against its own network (SSRF). It is applied when an
// endpoint is created or changed and again at every connection, after the
// host was resolved, so a name that later resolves to a private address
// (DNS rebinding) is refused too.
type Policy struct {
	// AllowPrivate allows http and every address.
	AllowPrivate bool
	// Resolver resolves hosts at creation (default net.DefaultResolver).
	Resolver Resolver
}

// blockedPrefixes are ranges not covered by netip.Addr's predicates:
// shared address space (carrier NAT; cloud metadata such as
// 100.100.100.200), "this network", IETF protocol assignments,
// benchmarking, documentation, reserved, NAT64 and 6to4.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("100::/64"),
}

// Blocked reports whether a is an address endpoints may not reach:
// loopback, private, link-local (169.254.169.254, the cloud metadata
// service, among them), unspecified, multicast, or one of blockedPrefixes.
// An IPv4 address mapped into IPv6 counts as the IPv4 one.
func Blocked(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return true
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func refused(format string, a ...any) error {
	return fmt.Errorf("%w: %s (for development and tests, %s=true or webhooks.allowPrivate allows http and any address)",
		ErrURLRefused, fmt.Sprintf(format, a...), EnvAllowPrivate)
}

// Check reports whether checkd may deliver to rawURL (an absolute http(s)
// URL the store accepted): https, and a host whose every address is
// public. It resolves the host.
func (p Policy) Check(ctx context.Context, rawURL string) error {
	if p.AllowPrivate {
		return nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrURLRefused, err)
	}
	if u.Scheme != "https" {
		return refused("url must be https, not %s", u.Scheme)
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if Blocked(a) {
			return refused("url's address %s is loopback, private, link-local or reserved", a)
		}
		return nil
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("%w: host %q does not resolve (%v): check the URL", ErrURLRefused, host, err)
	}
	for _, a := range addrs {
		if Blocked(a) {
			return refused("host %s resolves to %s, a loopback, private, link-local or reserved address", host, a.Unmap())
		}
	}
	return nil
}

// control refuses a connection to a blocked address: the dialer calls it
// after resolving, just before connecting.
func (p Policy) control(network, address string, _ syscall.RawConn) error {
	if p.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot read the address %q", ErrURLRefused, address)
	}
	if Blocked(ap.Addr()) {
		return refused("the endpoint's host resolved to %s, a loopback, private, link-local or reserved address", ap.Addr().Unmap())
	}
	return nil
}
