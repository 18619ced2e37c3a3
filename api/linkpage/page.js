"use strict";
// The token rides in the URL fragment, which browsers never send to a
// server; it is dropped from the address bar and history at once. The page
// asks POST v1/link/info what the link is for and whether it can still be
// used (without spending it), shows that, and only then the form, which it
// sends to PATCH v1/link/credentials or POST v1/link/connection.
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
history.replaceState(null, "", location.pathname + location.search);
const form = $("f"), out = $("out");
let info = null;

// What the page says when a link cannot be used, by LinkInfo.state; the
// API's message is the fallback.
const refusals = {
  used: ["This link was already used",
    "Each link works once, and this one was used already. If you still need to make a change, ask whoever sent you the link for a new one."],
  expired: ["This link has expired",
    "Links work for a limited time. Ask whoever sent you this one for a new link."],
  superseded: ["This link was replaced",
    "The login of this connection was changed after the link was sent, so the link no longer works. If you still need to change it, ask whoever sent you the link for a new one."],
  inactive: ["Connections cannot be added now",
    "This company does not take new connections at the moment. Ask whoever sent you the link."],
};
const notValid = "Open the link exactly as you received it (all of it), or ask whoever sent it for a new one.";

// sentence makes an API message (lower case, no full stop) a sentence.
function sentence(s) {
  s = String(s || "");
  return s.charAt(0).toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".");
}

function say(text, tone) {
  out.textContent = text;
  out.className = "note" + (tone ? " " + tone : "");
  out.hidden = !text;
}

function stop(title, text) {
  $("h").textContent = document.title = title;
  $("intro").hidden = true;
  form.hidden = true;
  say(text, "bad");
}

function when(s) {
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "short"});
}

async function send(path, method, body) {
  const r = await fetch(path, {method, headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  let j = {};
  try { j = await r.json(); } catch (e) { /* not JSON: a proxy's page */ }
  const message = sentence(j.error && j.error.message ? j.error.message : "the server answered " + r.status);
  return {ok: r.ok, status: r.status, j, message};
}

function showFacts() {
  $("company").textContent = info.companyName;
  if (info.connection) {
    $("connection").textContent = info.connection.name || "(no name)";
    $("provider").textContent = info.connection.datasource.name;
    $("connection-row").hidden = $("provider-row").hidden = false;
  }
  // The expiry matters while the link can be used, or as why it cannot.
  $("expires").textContent = when(info.expiresAt);
  $("expires-label").textContent = info.state === "expired" ? "Link expired" : "Link valid until";
  $("expires-row").hidden = info.state !== "valid" && info.state !== "expired";
  $("facts").hidden = false;
}

async function open() {
  if (!token) {
    stop("This link is incomplete", "This page needs the link you were sent: open that link again, exactly as you received it.");
    return;
  }
  let r;
  try {
    r = await send("v1/link/info", "POST", {token});
  } catch (e) {
    stop("The link could not be checked", "The service did not answer (" + e.message + "). Try again in a moment.");
    return;
  }
  if (!r.ok) {
    if (r.status === 401) stop("This link is not valid", notValid);
    else stop("The link could not be checked", r.message);
    return;
  }
  info = r.j;
  showFacts();
  if (info.state !== "valid") {
    const [title, text] = refusals[info.state] || ["This link cannot be used", sentence(info.message)];
    stop(title, text);
    return;
  }
  const adding = info.kind === "connection";
  $("add").hidden = $("add").disabled = !adding;
  $("h").textContent = document.title = adding ? "Add a connection" : "Update your login";
  $("intro").textContent = adding
    ? "Choose your utility provider and enter the login you use on its website. " + info.companyName + " will then receive your bills automatically."
    : "Enter the login you now use on " + info.connection.datasource.name + "'s website. The connection is checked again once you save.";
  $("intro").hidden = false;
  form.hidden = false;
  (adding ? form.datasource : form.username).focus();
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const adding = info.kind === "connection";
  const body = {token, credentials: {username: form.username.value, password: form.password.value}};
  if (adding) {
    body.datasource = form.datasource.value;
    if (form.connectionName.value) body.name = form.connectionName.value;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  say("Saving\u2026");
  let r;
  try {
    r = await send(adding ? "v1/link/connection" : "v1/link/credentials", adding ? "POST" : "PATCH", body);
  } catch (e) {
    button.disabled = false;
    say("Nothing was saved: the service did not answer (" + e.message + "). Try again in a moment.", "bad");
    return;
  }
  button.disabled = false;
  if (r.ok) {
    form.hidden = $("intro").hidden = $("expires-row").hidden = true;
    $("h").textContent = document.title = adding ? "Connection added" : "Login updated";
    say(adding ? "Saved. " + (body.name ? "\u201c" + body.name + "\u201d" : "The connection") + " will be checked shortly; you can close this page."
      : "Saved. The connection will be checked with the new login shortly; you can close this page.", "good");
    return;
  }
  if (r.status === 400) { // a mistake in the form: fix it and send again
    say(r.message, "bad");
    return;
  }
  if (r.status === 401) stop("This link is not valid", notValid);
  else stop(r.status === 410 ? "This link can no longer be used" : "Nothing was saved", r.message);
});

open();
