package api

import (
	"crypto/sha256"
	_ "embed" // the link page's files
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strings"
	"time"

	"github.com/checkd/checkd/internal/link"
	"github.com/checkd/checkd/store"
)

// The page a link opens: one HTML file with its stylesheet and script
// inlined, allowed by their hashes in the Content-Security-Policy, so the
// page loads nothing from anywhere (no CDN, no other request than the API's).
var (
	//go:embed linkpage/page.html
	linkPageTemplate string
	//go:embed linkpage/page.css
	linkStyle string
	//go:embed linkpage/page.js
	linkScript string
)

// linkOptions marks where the page lists the datasources.
const linkOptions = "<!--options-->"

// linkPageHTML is the page with its style and script; linkOptions stands
// for the datasources' <option>s.
var linkPageHTML = strings.NewReplacer("/*style*/", linkStyle, "/*script*/", linkScript).Replace(linkPageTemplate)

// linkPageCSP allows exactly the inline stylesheet and script of the page,
// and requests to this origin: no third-party resource ever sees the page
// (or its token).
var linkPageCSP = strings.Join([]string{
	"default-src 'none'",
	"script-src " + cspHash(linkScript),
	"style-src " + cspHash(linkStyle),
	"connect-src 'self'",
	"form-action 'none'",
	"frame-ancestors 'none'",
	"base-uri 'none'",
}, "; ")

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// linkPage serves the page a link opens: a credential update, or a new
// connection when the link is a company's. The page asks POST
// /v1/link/info which it is.
func (s *Server) linkPage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", linkPageCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	var opts strings.Builder
	for _, ds := range s.cfg.Datasources() {
		opts.WriteString(`<option value="` + html.EscapeString(ds) + `">` + html.EscapeString(ds) + `</option>`)
	}
	_, _ = w.Write([]byte(strings.Replace(linkPageHTML, linkOptions, opts.String(), 1)))
}

// Link kinds (LinkInfo.Kind).
const (
	// LinkKindCredentials is a connection's link: it updates the login.
	LinkKindCredentials = "credentials"
	// LinkKindConnection is a company's link: it adds a connection.
	LinkKindConnection = "connection"
)

// Link states (LinkInfo.State): whether the link's action would be taken now.
const (
	LinkValid      = "valid"      // the action would be taken
	LinkUsed       = "used"       // the link was used (each works once)
	LinkExpired    = "expired"    // past its expiry
	LinkSuperseded = "superseded" // a credential link older than the connection's last credential update
	LinkInactive   = "inactive"   // a new-connection link of an inactive company (until it is reactivated)
)

// LinkInfoRequest is the body of POST /v1/link/info.
type LinkInfoRequest struct {
	Token string `json:"token"`
}

// LinkInfo is the answer of POST /v1/link/info: what a link is for and
// whether it can be used, read without spending it. The link page shows it
// before any form.
type LinkInfo struct {
	// State is LinkValid, LinkUsed, LinkExpired, LinkSuperseded or
	// LinkInactive.
	State string `json:"state"`
	// Kind is LinkKindCredentials or LinkKindConnection.
	Kind string `json:"kind"`
	// Message tells the link's user what State means for them (empty
	// when valid).
	Message string `json:"message,omitempty"`
	// CompanyName is the company the link acts for.
	CompanyName string `json:"companyName"`
	// Connection is the connection a credential link updates.
	Connection *LinkConnection `json:"connection,omitempty"`
	// ExpiresAt is when the link stops working (or stopped).
	ExpiresAt time.Time `json:"expiresAt"`
}

// LinkConnection is what a credential link's page shows of its connection.
type LinkConnection struct {
	Datasource store.Datasource `json:"datasource"`
	Name       string           `json:"name"`
}

// linkInfo answers POST /v1/link/info. The token rides in the body, as on
// the link routes that act, so it never reaches a URL or an access log.
func (s *Server) linkInfo(w http.ResponseWriter, r *http.Request) {
	var in LinkInfoRequest
	if !s.decode(w, r, &in) {
		return
	}
	if s.cfg.Links == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, linksUnavailable)
		return
	}
	claims, err := s.cfg.Links.Verify(in.Token)
	expired := errors.Is(err, link.ErrExpired)
	var out LinkInfo
	switch {
	case in.Token == "":
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, `token is required: send the token of the link you were given in {"token": "..."}`)
		return
	case err != nil && !expired:
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, linkNotValid)
		return
	case store.ValidID(store.ConnectionIDPrefix, claims.Subject):
		out.Kind = LinkKindCredentials
	case store.ValidID(store.CompanyIDPrefix, claims.Subject):
		out.Kind = LinkKindConnection
	default:
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, linkNotValid)
		return
	}
	out.ExpiresAt = claims.Expires
	var credUpdated *time.Time
	companyID := claims.Subject
	if out.Kind == LinkKindCredentials {
		c, err := s.st.GetConnection(r.Context(), claims.Subject)
		if err != nil {
			s.storeError(w, r, err, "the connection of this link no longer exists")
			return
		}
		out.Connection = &LinkConnection{Datasource: c.Datasource, Name: c.Name}
		companyID, credUpdated = c.CompanyID, c.CredentialsUpdatedAt
	}
	co, err := s.st.GetCompany(r.Context(), companyID)
	if err != nil {
		s.storeError(w, r, err, "the company of this link no longer exists")
		return
	}
	out.CompanyName = co.Name
	// Spent is read only for a link within its time: the mark expires with
	// the link, so an expired link reads as expired, used or not. A used
	// credential link is older than the update it made: used is decided
	// before superseded.
	spent := false
	if !expired {
		if spent, err = s.st.Spent(r.Context(), linkOnce(claims)); err != nil {
			s.storeError(w, r, err, "")
			return
		}
	}
	switch {
	case expired:
		out.State, out.Message = LinkExpired, linkExpiredMessage(claims)
	case spent:
		out.State, out.Message = LinkUsed, linkUsed
	case credUpdated != nil && credUpdated.After(claims.IssuedAt):
		out.State, out.Message = LinkSuperseded, linkSuperseded
	case out.Kind == LinkKindConnection && !co.IsActive:
		out.State, out.Message = LinkInactive, linkCompanyInactive
	default:
		out.State = LinkValid
	}
	writeJSON(w, http.StatusOK, out)
}

// What the link routes tell the link's user (the page shows them as they are).
const (
	linkNotValid = "this link is not valid: open it exactly as you received it, or ask for a new one"
	linkUsed     = "this link was already used (each link works once); ask for a new one"
	// linkSuperseded refuses a credential link issued before the
	// credentials were last replaced (by an operator, or through a newer
	// link), so a forwarded or leaked old link cannot overwrite newer
	// credentials.
	linkSuperseded      = "this link was replaced: the connection's credentials were updated after it was issued; ask for a new one"
	linkCompanyInactive = "the company of this link is inactive: connections cannot be added to it until it is reactivated"
)

func linkExpiredMessage(c link.Claims) string {
	return fmt.Sprintf("this link expired at %s; ask for a new one", c.Expires.Format(time.RFC3339))
}

// linkOnce is the single-use name a link's token spends.
func linkOnce(c link.Claims) string { return "link:" + c.Nonce }
