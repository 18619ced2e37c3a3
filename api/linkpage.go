package api

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// linkScript reads the token from the URL fragment (never sent to a server),
// drops it from the address bar and history, and sends the form to
// PATCH /v1/link/credentials.
const linkScript = `
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
history.replaceState(null, "", location.pathname);
const form = document.getElementById("f"), out = document.getElementById("out");
if (!token) { out.textContent = "This page needs the link you were sent; open it again."; form.hidden = true; }
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  out.textContent = "Saving...";
  const body = {token, credentials: {username: form.username.value, password: form.password.value}};
  try {
    const r = await fetch("v1/link/credentials", {method: "PATCH", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const j = await r.json();
    if (r.ok) { form.hidden = true; out.textContent = "Saved. The connection will be checked with the new credentials shortly."; }
    else { out.textContent = j.error ? j.error.message : "The update failed."; }
  } catch (e) { out.textContent = "The update failed: " + e.message; }
});
`

const linkPageHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Update credentials</title></head>
<body style="font-family: sans-serif; max-width: 28rem; margin: 3rem auto;">
<h1>Update credentials</h1>
<p>Enter the login for your utility provider's website.</p>
<form id="f">
<p><label>Username<br><input name="username" autocomplete="username" required></label></p>
<p><label>Password<br><input name="password" type="password" autocomplete="current-password"></label></p>
<p><button type="submit">Save</button></p>
</form>
<p id="out" role="status"></p>
<script>` + linkScript + `</script>
</body></html>
`

// linkPageCSP allows exactly the inline script above and requests to this
// origin: no third-party resource ever sees the page (or its token).
var linkPageCSP = func() string {
	sum := sha256.Sum256([]byte(linkScript))
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'",
		"style-src 'unsafe-inline'",
		"connect-src 'self'",
		"form-action 'none'",
		"frame-ancestors 'none'",
		"base-uri 'none'",
	}, "; ")
}()

// linkPage serves the page a credential-update link opens.
func (s *Server) linkPage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", linkPageCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(linkPageHTML))
}
