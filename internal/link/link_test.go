package link_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/link"
)

var (
	t0     = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	master = bytes.Repeat([]byte{7}, 32)
)

const connA = "cn_0123456789abcdef"

func newSigner(tb testing.TB, clk clock.Clock) *link.Signer {
	tb.Helper()
	s, err := link.NewSigner(link.DeriveKey(master), time.Hour, clk)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func sign(tb testing.TB, s *link.Signer, id string) string {
	tb.Helper()
	tok, _, err := s.Sign(id)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func TestDeriveKey(t *testing.T) {
	k := link.DeriveKey(master)
	m := hmac.New(sha256.New, master)
	m.Write([]byte("checkd link v1"))
	if !bytes.Equal(k, m.Sum(nil)) || len(k) != 32 {
		t.Fatalf("DeriveKey = %x", k)
	}
	if bytes.Equal(k, master) || bytes.Equal(k, link.DeriveKey(bytes.Repeat([]byte{8}, 32))) {
		t.Fatal("the derived key must differ from the master and between masters")
	}
}

func TestNewSigner(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
		ttl  time.Duration
		want string // error text, "" for success
		ttlW time.Duration
	}{
		{"derived key", link.DeriveKey(master), time.Minute, "", time.Minute},
		{"zero ttl", link.DeriveKey(master), 0, "positive", 0},
		{"short key", make([]byte, 31), time.Minute, "at least 32", 0},
		{"no key", nil, time.Minute, "DeriveKey", 0},
		{"negative ttl", link.DeriveKey(master), -time.Second, "positive", 0},
	} {
		s, err := link.NewSigner(tc.key, tc.ttl, nil)
		switch {
		case tc.want == "" && (err != nil || s.TTL() != tc.ttlW):
			t.Errorf("%s: NewSigner = %v, %v", tc.name, s, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestSignVerify(t *testing.T) {
	clk := clock.NewFake(t0)
	s := newSigner(t, clk)
	tok, exp, err := s.Sign(connA)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(t0.Add(time.Hour)) {
		t.Errorf("expires %v, want %v", exp, t0.Add(time.Hour))
	}
	if strings.Contains(tok, connA) || strings.ContainsAny(tok, "+/=") {
		t.Errorf("token %q: the ID must not be readable and the encoding must be URL-safe and unpadded", tok)
	}
	c, err := s.Verify(tok)
	if err != nil || c.Subject != connA || !c.Expires.Equal(exp) || !c.IssuedAt.Equal(t0) || len(c.Nonce) != 22 {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	tok2 := sign(t, s, connA)
	c2, _ := s.Verify(tok2)
	if tok2 == tok || c2.Nonce == c.Nonce {
		t.Error("two tokens of one connection must differ in their nonce")
	}

	for _, tc := range []struct {
		name    string
		advance time.Duration
		want    error
	}{
		{"just before expiry", time.Hour - time.Millisecond, nil},
		{"at expiry", time.Millisecond, link.ErrExpired},
		{"long after", 24 * time.Hour, link.ErrExpired},
	} {
		clk.Advance(tc.advance)
		c, err := s.Verify(tok)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
		if c.Subject != connA {
			t.Errorf("%s: claims %+v: a genuine token reports its claims even when expired", tc.name, c)
		}
	}

	for _, tc := range []struct {
		name string
		id   string
	}{{"empty", ""}, {"too long", strings.Repeat("x", link.MaxSubjectLen+1)}, {"not UTF-8", "cn_\xff"}} {
		if _, _, err := s.Sign(tc.id); err == nil {
			t.Errorf("Sign(%s) succeeded", tc.name)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	clk := clock.NewFake(t0)
	s := newSigner(t, clk)
	tok := sign(t, s, connA)
	payload, mac, _ := strings.Cut(tok, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)

	other, err := link.NewSigner(link.DeriveKey([]byte("another master key, 32 bytes long")), time.Hour, clk)
	if err != nil {
		t.Fatal(err)
	}
	forB := bytes.Clone(raw)
	forB = append(forB[:len(forB)-len(connA)], "cn_fedcba9876543210"...)
	later := bytes.Clone(raw)
	later[9]++ // a later expiry
	earlier := bytes.Clone(raw)
	earlier[1]-- // an earlier issue time (older than a credential update)
	v3 := bytes.Clone(raw)
	v3[0] = 3
	v1 := bytes.Clone(raw)
	v1[0] = 1 // the first format, read with this one's fields
	enc := base64.RawURLEncoding.EncodeToString
	flip := []byte(tok)
	flip[len(flip)-1] ^= 1

	for _, tc := range []struct{ name, token string }{
		{"empty", ""},
		{"no separator", payload + mac},
		{"two separators", tok + ".x"},
		{"other key", sign(t, other, connA)},
		{"payload for another connection", enc(forB) + "." + mac},
		{"extended expiry", enc(later) + "." + mac},
		{"back-dated", enc(earlier) + "." + mac},
		{"unknown version", enc(v3) + "." + mac},
		{"unknown version, signed", enc(v3) + "." + enc(hmacOf(v3))},
		{"version changed", enc(v1) + "." + mac},
		{"version 0, signed", enc(append([]byte{0}, raw[1:]...)) + "." + enc(hmacOf(append([]byte{0}, raw[1:]...)))},
		{"signature swapped", payload + "." + strings.Split(sign(t, s, connA), ".")[1]},
		{"flipped bit", string(flip)},
		{"truncated signature", tok[:len(tok)-2]},
		{"padded", tok + "="},
		{"standard alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(tok) + "+"},
		{"newline inserted", tok[:5] + "\n" + tok[5:]},
		{"carriage return", tok[:5] + "\r" + tok[5:]},
		{"space", " " + tok},
		{"short payload", enc(raw[:20]) + "." + mac},
		{"too long", tok + strings.Repeat("A", link.MaxTokenLen)},
	} {
		if c, err := s.Verify(tc.token); !errors.Is(err, link.ErrTampered) {
			t.Errorf("%s: Verify = %+v, %v; want ErrTampered", tc.name, c, err)
		}
	}
	if _, err := s.Verify(tok); err != nil {
		t.Fatalf("the original still verifies: %v", err)
	}
}

// hmacOf signs p as newSigner's key does, to build payloads the signer
// did not issue.
func hmacOf(p []byte) []byte {
	m := hmac.New(sha256.New, link.DeriveKey(master))
	m.Write(p)
	return m.Sum(nil)
}

// TestVerifyVersion1 reads a token of the first format (version 1, expiry,
// nonce, subject: no issue time), issued before an upgrade: it verifies
// until it expires, and its issue time is its expiry less the TTL.
func TestVerifyVersion1(t *testing.T) {
	clk := clock.NewFake(t0)
	s := newSigner(t, clk)
	exp := t0.Add(30 * time.Minute)
	p := []byte{1, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint64(p[1:9], uint64(exp.UnixMilli()))
	p = append(p, bytes.Repeat([]byte{0xab}, 16)...)
	p = append(p, connA...)
	enc := base64.RawURLEncoding.EncodeToString
	tok := enc(p) + "." + enc(hmacOf(p))
	c, err := s.Verify(tok)
	if err != nil || c.Subject != connA || !c.Expires.Equal(exp) || !c.IssuedAt.Equal(exp.Add(-time.Hour)) ||
		c.Nonce != enc(bytes.Repeat([]byte{0xab}, 16)) {
		t.Fatalf("version 1 token: Verify = %+v, %v", c, err)
	}
	clk.Advance(30 * time.Minute)
	if _, err := s.Verify(tok); !errors.Is(err, link.ErrExpired) {
		t.Fatalf("expired version 1 token: err %v, want ErrExpired", err)
	}
}

// FuzzVerify feeds arbitrary strings: Verify never panics, and whatever it
// accepts is, checked independently, a canonical encoding of a payload and
// its HMAC under the key (so only issued tokens, since the fuzzer cannot
// forge the HMAC). Fuzz workers re-run the setup with fresh nonces, hence
// this oracle rather than a list of issued tokens.
func FuzzVerify(f *testing.F) {
	s := newSigner(f, clock.NewFake(t0))
	for _, id := range []string{connA, "x", strings.Repeat("y", link.MaxSubjectLen)} {
		tok := sign(f, s, id)
		f.Add(tok)
		f.Add(tok[:len(tok)-1])
		f.Add(strings.ToUpper(tok))
	}
	for _, seed := range []string{"", ".", "..", "a.b", "AAAA.AAAA", strings.Repeat("A", 600)} {
		f.Add(seed)
	}
	key := link.DeriveKey(master)
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.Verify(token)
		if err != nil {
			if !errors.Is(err, link.ErrTampered) && !errors.Is(err, link.ErrExpired) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			if len(token) > 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("the error repeats the token: %v", err)
			}
			return
		}
		enc, encMAC, _ := strings.Cut(token, ".")
		p, err1 := base64.RawURLEncoding.DecodeString(enc)
		got, err2 := base64.RawURLEncoding.DecodeString(encMAC)
		m := hmac.New(sha256.New, key)
		m.Write(p)
		want := m.Sum(nil)
		if err1 != nil || err2 != nil || !hmac.Equal(got, want) ||
			base64.RawURLEncoding.EncodeToString(p)+"."+base64.RawURLEncoding.EncodeToString(want) != token ||
			!strings.HasSuffix(string(p), c.Subject) {
			t.Fatalf("accepted %q (%+v), which is not a canonical signed token", token, c)
		}
	})
}

// FuzzVerifyModified edits a genuine token (replace, insert or delete one
// byte at a position, or truncate): any result other than the token itself
// is refused.
func FuzzVerifyModified(f *testing.F) {
	s := newSigner(f, clock.NewFake(t0))
	tok := sign(f, s, connA)
	for i := range len(tok) {
		f.Add(uint16(i), byte('A'), uint8(i%4))
	}
	f.Add(uint16(3), byte('\n'), uint8(1))
	f.Add(uint16(len(tok)-1), byte(tok[len(tok)-1]^1), uint8(0))
	f.Fuzz(func(t *testing.T, pos uint16, b byte, op uint8) {
		i := int(pos) % (len(tok) + 1)
		var mod string
		switch op % 4 {
		case 0: // replace
			if i == len(tok) {
				i--
			}
			mod = tok[:i] + string([]byte{b}) + tok[i+1:]
		case 1: // insert
			mod = tok[:i] + string([]byte{b}) + tok[i:]
		case 2: // delete
			if i == len(tok) {
				i--
			}
			mod = tok[:i] + tok[i+1:]
		default: // truncate
			mod = tok[:i]
		}
		if mod == tok {
			return
		}
		if c, err := s.Verify(mod); !errors.Is(err, link.ErrTampered) {
			t.Fatalf("modified token %q (op %d at %d): %+v, %v; want ErrTampered", mod, op%4, i, c, err)
		}
	})
}

// TestRotatedKey: after an encryption-key rotation, links signed with the
// old key still verify (with the old key given as such), new links are
// signed with the new key, and a signer without the old key refuses them.
func TestRotatedKey(t *testing.T) {
	clk := clock.NewFake(t0)
	oldKey, newKey := link.DeriveKey(master), link.DeriveKey(bytes.Repeat([]byte{8}, 32))
	before := sign(t, newSigner(t, clk), connA)
	rotated, err := link.NewSigner(newKey, time.Hour, clk, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := rotated.Verify(before); err != nil || c.Subject != connA {
		t.Fatalf("a link from before the rotation: %+v, %v", c, err)
	}
	after := sign(t, rotated, connA)
	only, err := link.NewSigner(newKey, time.Hour, clk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := only.Verify(after); err != nil {
		t.Fatalf("a link after the rotation, on the new key alone: %v", err)
	}
	if _, err := only.Verify(before); !errors.Is(err, link.ErrTampered) {
		t.Fatalf("an old link once the old key is gone: %v, want ErrTampered", err)
	}
	if _, err := link.NewSigner(newKey, time.Hour, clk, make([]byte, 8)); err == nil {
		t.Fatal("a short old key was accepted")
	}
}
