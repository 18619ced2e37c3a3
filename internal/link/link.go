// Package link signs and verifies link tokens: the "magic links" a company
// hands to its end user, so they can fix one connection's credentials, or
// add one connection to the company, without an API key. A token names its
// subject, the connection or the company it is for; the caller checks that
// the subject is of the kind its action needs.
//
// A token is base64url(payload) + "." + base64url(HMAC-SHA256(key, payload)),
// unpadded, where payload is a version byte (2), the issue time and the
// expiry (Unix ms, 8 bytes big endian each), a random 16-byte nonce and the
// subject's ID. Tokens are stateless: Verify proves a token was signed with
// the key and has not expired. Single use is the caller's job: spend
// Claims.Nonce atomically (store.UseOnce) before acting on a token; so is
// refusing a token that what happened since its issue made stale
// (Claims.IssuedAt).
//
// Tokens are secrets. Never log them and never put them in a URL path (the
// access log records paths): links carry them in the fragment, which
// browsers do not send to servers.
package link

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/store"
)

// ErrTampered reports a token that is malformed or whose signature does not
// match: it was not issued by this service with this key, or was modified.
var ErrTampered = errors.New("link token is invalid")

// ErrExpired reports a correctly signed token past its expiry.
var ErrExpired = errors.New("link token has expired")

// MinKeyLen is the shortest signing key NewSigner accepts.
const MinKeyLen = 32

// MaxSubjectLen bounds the subject ID a token carries.
const MaxSubjectLen = 128

// MaxTokenLen bounds a token Verify reads; longer input is rejected before
// any decoding.
const MaxTokenLen = 512

const (
	version  = 2
	nonceLen = 16
	headLen  = 1 + 8 + 8 + nonceLen // version, issue time, expiry, nonce
	macLen   = sha256.Size
	// Version 1 tokens (no issue time) are still read until they expire.
	v1HeadLen = 1 + 8 + nonceLen
)

var b64 = base64.RawURLEncoding.Strict()

// DeriveKey derives the link-signing key from a master secret (the
// credential encryption key), so one configured secret serves both without
// the two uses sharing a key.
func DeriveKey(master []byte) []byte { return store.DeriveKey(master, "checkd link v1") }

// Claims is what a verified token says.
type Claims struct {
	// Subject is the ID of the only connection or company the token may act on.
	Subject string
	// Nonce is unique per token (base64url); spend it to make the token
	// single-use.
	Nonce string
	// IssuedAt is when the token was signed (ms precision). For a token of
	// the first format, which did not carry it, Expires less the signer's
	// TTL.
	IssuedAt time.Time
	// Expires is when the token stops being valid.
	Expires time.Time
}

// Signer issues and verifies tokens. It is safe for concurrent use.
type Signer struct {
	key []byte
	old [][]byte // verify only: the keys of a rotation still under way
	ttl time.Duration
	clk clock.Clock
}

// NewSigner returns a signer with key (at least MinKeyLen bytes; derive it
// with DeriveKey), issuing tokens valid for ttl (positive: checkd's
// linkTTL) by clk (the real clock when nil). Tokens signed with an old key
// verify too: the links handed out before an encryption-key rotation keep
// working.
func NewSigner(key []byte, ttl time.Duration, clk clock.Clock, old ...[]byte) (*Signer, error) {
	for _, k := range append([][]byte{key}, old...) {
		if len(k) < MinKeyLen {
			return nil, fmt.Errorf("link: a signing key has %d bytes, want at least %d: derive it with link.DeriveKey", len(k), MinKeyLen)
		}
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("link: the token lifetime is %s; give a positive duration (configs: linkTTL)", ttl)
	}
	if clk == nil {
		clk = clock.Real{}
	}
	sg := &Signer{key: append([]byte(nil), key...), ttl: ttl, clk: clk}
	for _, k := range old {
		sg.old = append(sg.old, append([]byte(nil), k...))
	}
	return sg, nil
}

// TTL is how long the tokens this signer issues stay valid.
func (s *Signer) TTL() time.Duration { return s.ttl }

// Sign issues a token for subject (a connection or company ID) and tells
// when it expires.
func (s *Signer) Sign(subject string) (string, time.Time, error) {
	if subject == "" || len(subject) > MaxSubjectLen || !utf8.ValidString(subject) {
		return "", time.Time{}, fmt.Errorf("link: sign: the subject ID must be 1 to %d bytes of UTF-8", MaxSubjectLen)
	}
	now := s.clk.Now()
	exp := now.Add(s.ttl).UnixMilli()
	p := make([]byte, headLen, headLen+len(subject))
	p[0] = version
	binary.BigEndian.PutUint64(p[1:9], uint64(now.UnixMilli()))
	binary.BigEndian.PutUint64(p[9:17], uint64(exp))
	_, _ = rand.Read(p[17:headLen]) // crypto/rand.Read never fails (it crashes the program instead)
	p = append(p, subject...)
	return b64.EncodeToString(p) + "." + b64.EncodeToString(s.mac(p)), time.UnixMilli(exp).UTC(), nil
}

func (s *Signer) mac(p []byte) []byte { return mac(s.key, p) }

func mac(key, p []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(p)
	return m.Sum(nil)
}

// signedByAny reports whether sig is p's MAC under the key or an old one
// (every key is tried, so timing tells nothing about which matched).
func (s *Signer) signedByAny(p, sig []byte) bool {
	ok := hmac.Equal(sig, s.mac(p))
	for _, k := range s.old {
		ok = hmac.Equal(sig, mac(k, p)) || ok
	}
	return ok
}

// Verify checks a token. It returns an error wrapping ErrTampered for
// anything not issued by this signer's key exactly as issued, and one
// wrapping ErrExpired (with the claims filled in) for a genuine token past
// its expiry.
func (s *Signer) Verify(token string) (Claims, error) {
	if len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrTampered, MaxTokenLen)
	}
	// The decoder skips CR and LF; allowing only the alphabet keeps one
	// encoding per token, so no modified string verifies.
	for i := 0; i < len(token); i++ {
		if !tokenByte(token[i]) {
			return Claims{}, fmt.Errorf("%w: unexpected character at byte %d", ErrTampered, i)
		}
	}
	enc, encMAC, ok := strings.Cut(token, ".")
	if !ok {
		return Claims{}, fmt.Errorf("%w: not of the form payload.signature", ErrTampered)
	}
	p, err := b64.DecodeString(enc)
	if err != nil || len(p) <= v1HeadLen || len(p) > headLen+MaxSubjectLen {
		return Claims{}, fmt.Errorf("%w: malformed payload", ErrTampered)
	}
	got, err := b64.DecodeString(encMAC)
	if err != nil || len(got) != macLen {
		return Claims{}, fmt.Errorf("%w: malformed signature", ErrTampered)
	}
	if !s.signedByAny(p, got) {
		return Claims{}, fmt.Errorf("%w: signature mismatch", ErrTampered)
	}
	var c Claims
	switch {
	case p[0] == version && len(p) > headLen:
		c = Claims{
			Subject:  string(p[headLen:]),
			Nonce:    b64.EncodeToString(p[17:headLen]),
			IssuedAt: msTime(p[1:9]),
			Expires:  msTime(p[9:17]),
		}
	case p[0] == 1 && len(p) <= v1HeadLen+MaxSubjectLen:
		c = Claims{Subject: string(p[v1HeadLen:]), Nonce: b64.EncodeToString(p[9:v1HeadLen]), Expires: msTime(p[1:9])}
		c.IssuedAt = c.Expires.Add(-s.ttl)
	default:
		return Claims{}, fmt.Errorf("%w: unknown version %d or malformed payload", ErrTampered, p[0])
	}
	if !s.clk.Now().Before(c.Expires) {
		return c, fmt.Errorf("%w (at %s)", ErrExpired, c.Expires.Format(time.RFC3339))
	}
	return c, nil
}

func msTime(b []byte) time.Time {
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b))).UTC()
}

// tokenByte reports the bytes a token is made of: the base64url alphabet and
// the separator.
func tokenByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}
