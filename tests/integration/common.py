"""Pieces shared by the integration scripts in this directory.

The scripts run as `python3 tests/integration/X.py` from the repository root;
each puts its own directory first on sys.path before importing this module.
"""

import socket
import threading
import unittest
import urllib.error
import urllib.request
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port():
    """A loopback TCP port nobody listened on a moment ago."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class DdbProxy:
    """A DynamoDB endpoint on a free loopback port in front of `upstream` (a
    real DynamoDB Local or dynalite), for fault tests. Each request goes to
    `self.hook(op, body, headers)` first: it returns (status, body) to answer,
    None to forward the request as it is, or DROP to close the connection
    without an answer; it may block. One request per connection (HTTP/1.0)."""

    DROP = "drop"

    def __init__(self, upstream):
        self.upstream = upstream
        proxy = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                op = self.headers.get("X-Amz-Target", "").split(".")[-1]
                got = proxy.hook(op, body, self.headers)
                if got is DdbProxy.DROP:
                    self.close_connection = True
                    return
                status, out = got if got is not None else proxy.forward(body, self.headers)
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("x-amz-crc32", str(zlib.crc32(out) & 0xFFFFFFFF))
                self.end_headers()
                self.wfile.write(out)

        class Server(ThreadingHTTPServer):
            # the store opens a connection per request in flight, many at
            # once: socketserver's backlog of 5 would drop their SYNs
            request_queue_size = 128

        self.srv = Server(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def hook(self, op, body, headers):
        return None

    def forward(self, body, headers, op=None):
        """Sends the request on to upstream (as operation `op` when given)."""
        keep = ("Content-Type", "X-Amz-Target", "Authorization", "X-Amz-Date",
                "X-Amz-Security-Token")
        h = {k: headers[k] for k in keep if headers.get(k)}
        if op:
            h["X-Amz-Target"] = "DynamoDB_20120810." + op
        req = urllib.request.Request(self.upstream, data=body, method="POST", headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class Tally:
    """Counts checks and prints one line each; `summary()` is the closing
    report the runners look for: one `skipped: NAME: REASON` line per skipped
    check, then "N passed, N failed, N skipped"."""

    def __init__(self, detail_cap=2000):
        self.passed = 0
        self.failed = 0
        self.skipped = []  # (name, reason)
        self.detail_cap = detail_cap

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok - %s" % name, flush=True)
        else:
            self.failed += 1
            shown = (": " + str(detail)[: self.detail_cap]) if detail else ""
            print("FAIL - %s%s" % (name, shown), flush=True)
        return cond

    def skip(self, name, reason):
        """A check that did not run; reason says why (a missing tool, a failed
        prerequisite), so the skip shows in the summary instead of vanishing."""
        self.skipped.append((name, reason))
        print("skip - %s: %s" % (name, reason), flush=True)

    def summary(self):
        lines = ["skipped: %s: %s" % s for s in self.skipped]
        lines.append("%d passed, %d failed, %d skipped" % (self.passed, self.failed, len(self.skipped)))
        return "\n".join(lines)


def run_unittest(suite, verbosity=1):
    """Runs a unittest suite and prints the same closing report as Tally:
    `skipped: TEST: REASON` lines, then "N passed, N failed, N skipped".
    Returns the exit status: 0 when something ran and nothing failed."""
    res = unittest.TextTestRunner(verbosity=verbosity).run(suite)
    failed_ids = {t.id() for t, _ in res.failures + res.errors}
    failed_ids |= {t.id() for t in res.unexpectedSuccesses}
    skipped = len(res.skipped)
    passed = max(0, res.testsRun - len(failed_ids) - skipped)  # setUpClass errors are not runs
    for t, reason in res.skipped:
        print("skipped: %s: %s" % (t.id(), reason or "no reason given"))
    print("%d passed, %d failed, %d skipped" % (passed, len(failed_ids), skipped), flush=True)
    return 0 if not failed_ids and res.testsRun > 0 else 1
