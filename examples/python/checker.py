#!/usr/bin/env python3
"""A minimal checkd checker service, standard library only (docs/checkers.md).

    CHECKER_SECRET=whsec_... python3 checker.py [port]

It verifies each request's Standard Webhooks signature, then "logs in" where
a real checker would drive a browser: password "open-sesame" lists one
account (pulling its bill when asked), user "busy" answers 503 Retry-After,
anything else is PASSWORD_INCORRECT. Credentials are never logged.
"""
import base64, hashlib, hmac, json, os, sys, time, zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = base64.b64decode(os.environ["CHECKER_SECRET"].removeprefix("whsec_"))
TOLERANCE = 300  # seconds a request's timestamp may be off


def verified(headers, body):
    msg_id, ts = headers.get("webhook-id"), headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature", "").split()
    if not msg_id or not ts or not ts.isdigit() or abs(time.time() - int(ts)) > TOLERANCE:
        return False
    mac = hmac.new(SECRET, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(expected, s) for s in signatures)


def check(req):
    """Returns (HTTP status, answer) for one check request."""
    creds = req["credentials"]
    if creds["username"] == "busy":  # e.g. no free browser: come back later
        return 503, {"error": "all browsers busy"}
    if creds["password"] != "open-sesame":
        return 200, {"status": "PASSWORD_INCORRECT", "detail": "the website rejected the login"}
    number = "%010d" % zlib.crc32(req["connectionId"].encode())  # stable per connection
    account = {"number": number, "name": "Electric"}
    if any(a["number"] == account["number"] and a["pull"] for a in req["accounts"]):
        account["status"] = "PULL_COMPLETED"  # the bill was downloaded
    return 200, {"status": "CONNECTED", "accounts": [account]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: checkd reuses connections

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not verified(self.headers, body):
            return self.answer(401, {"error": "signature does not verify"})
        code, answer = check(json.loads(body))
        self.answer(code, answer, {"Retry-After": "30"} if code == 503 else {})

    def answer(self, code, obj, headers={}):
        data = json.dumps(obj).encode()
        self.send_response(code)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):  # the request line, never the body
        sys.stderr.write("checker: %s\n" % (fmt % args))


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8091
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/check", flush=True)
    server.serve_forever()
