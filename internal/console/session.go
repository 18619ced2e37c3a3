package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"time"
)

// The browser's session is a random ID in a cookie; the CSRF token of its
// forms is an HMAC of that ID and the logged-in user under Config.Secret,
// so the server keeps nothing per session and any process of the cluster
// checks any token. A request from another site carries neither the cookie
// (SameSite=Strict) nor the token.

const (
	sessionCookie = "checkd_console"
	noticeCookie  = "checkd_console_notice"
	// csrfField is the form field of the token.
	csrfField = "csrf"
)

var b64 = base64.RawURLEncoding

type userKey struct{}

func withUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

// userOf is the logged-in user of a request served by the console.
func userOf(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// mac is the HMAC of the parts, NUL-separated, under the console's secret.
func (c *Console) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, c.cfg.Secret)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return m.Sum(nil)
}

func (c *Console) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: RootPath + "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode}
}

// session returns the request's session ID, starting one (a cookie) when
// it has none.
func (c *Console) session(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(sessionCookie); err == nil && validSession(ck.Value) {
		return ck.Value
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	id := b64.EncodeToString(b[:])
	http.SetCookie(w, c.cookie(r, sessionCookie, id, 0))
	return id
}

func validSession(v string) bool {
	b, err := b64.DecodeString(v)
	return err == nil && len(b) == 16
}

// csrfToken is the token forms of session carry for user.
func (c *Console) csrfToken(session, user string) string {
	return b64.EncodeToString(c.mac("csrf", session, user))
}

// csrfOK checks a state-changing request's token against its session
// cookie and user.
func (c *Console) csrfOK(r *http.Request) bool {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || !validSession(ck.Value) {
		return false
	}
	got, err := b64.DecodeString(r.PostFormValue(csrfField))
	return err == nil && hmac.Equal(got, c.mac("csrf", ck.Value, userOf(r.Context())))
}

// notice is the message shown once at the top of the page an action
// redirects to.
type notice struct {
	Kind string // "good" or "bad"
	Text string
}

// noticeLife is how long a notice waits for the page it is for.
const noticeLife = time.Minute

// setNotice keeps n for the next page the browser opens, signed, in a
// short-lived cookie.
func (c *Console) setNotice(w http.ResponseWriter, r *http.Request, n notice) {
	v := b64.EncodeToString([]byte(n.Kind + "\x00" + n.Text))
	v += "." + b64.EncodeToString(c.mac("notice", v))
	http.SetCookie(w, c.cookie(r, noticeCookie, v, int(noticeLife/time.Second)))
}

// takeNotice returns the notice waiting for this page, if any, and clears
// it.
func (c *Console) takeNotice(w http.ResponseWriter, r *http.Request) *notice {
	ck, err := r.Cookie(noticeCookie)
	if err != nil {
		return nil
	}
	http.SetCookie(w, c.cookie(r, noticeCookie, "", -1))
	v, sig, ok := strings.Cut(ck.Value, ".")
	got, err := b64.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(got, c.mac("notice", v)) {
		return nil
	}
	raw, err := b64.DecodeString(v)
	if err != nil {
		return nil
	}
	kind, text, ok := strings.Cut(string(raw), "\x00")
	if !ok || (kind != "good" && kind != "bad") {
		return nil
	}
	return &notice{Kind: kind, Text: text}
}
