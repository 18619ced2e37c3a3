package api

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"net/http"
	"strings"
)

// linkScript reads the token from the URL fragment (never sent to a server),
// drops it from the address bar and history, and sends the form: to
// PATCH /v1/link/credentials for a connection's link, to
// POST /v1/link/connection for a company's (the token's subject, after its
// 25-byte head, says which; the server checks it again).
const linkScript = `
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
history.replaceState(null, "", location.pathname);
const form = document.getElementById("f"), out = document.getElementById("out"), add = document.getElementById("add");
let subject = "";
try { subject = atob(token.split(".")[0].replace(/-/g, "+").replace(/_/g, "/")).slice(25); } catch (e) {}
const adding = subject.startsWith("co_");
add.disabled = add.hidden = !adding;
if (adding) { document.getElementById("h").textContent = document.title = "Add a connection"; }
if (!token) { out.textContent = "This page needs the link you were sent; open it again."; form.hidden = true; }
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  out.textContent = "Saving...";
  const body = {token, credentials: {username: form.username.value, password: form.password.value}};
  if (adding) { body.datasource = form.datasource.value; if (form.connectionName.value) body.name = form.connectionName.value; }
  try {
    const r = await fetch(adding ? "v1/link/connection" : "v1/link/credentials",
      {method: adding ? "POST" : "PATCH", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const j = await r.json();
    if (r.ok) { form.hidden = true; out.textContent = adding ? "Saved. The connection will be checked shortly." : "Saved. The connection will be checked with the new credentials shortly."; }
    else { out.textContent = j.error ? j.error.message : "The update failed."; }
  } catch (e) { out.textContent = "The update failed: " + e.message; }
});
`

// linkOptions marks where the page lists the datasources.
const linkOptions = "<!--options-->"

// linkPageHTML is the page; linkOptions stands for the datasources' <option>s.
const linkPageHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Update credentials</title></head>
<body style="font-family: sans-serif; max-width: 28rem; margin: 3rem auto;">
<h1 id="h">Update credentials</h1>
<p>Enter the login for your utility provider's website.</p>
<form id="f">
<fieldset id="add" hidden disabled style="border: 0; padding: 0; margin: 0;">
<p><label>Provider<br><select name="datasource" required>` + linkOptions + `</select></label></p>
<p><label>Name (optional)<br><input name="connectionName" maxlength="200"></label></p>
</fieldset>
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

// linkPage serves the page a link opens: a credential update, or a new
// connection when the link is a company's.
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
