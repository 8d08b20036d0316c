"""The HTTP server: keep-alive, health, metrics, limits, graceful stop, logs."""

import http.client
import json
import re
import socket
import sqlite3
import threading
import time
import unittest

import harness
from harness import new_user

PROM_SAMPLE = re.compile(
    r"^(?P<series>[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?) (?P<value>\S+)( -?[0-9]+)?$"
)
REQUEST_KEYS = ("method", "route", "status", "latencyMs", "requestId")


def raw_exchange(port, head, body=b"", timeout=30):
    """Sends head (+ body, tolerating a server that stops reading) and parses the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        try:
            view = memoryview(body)
            while view:
                n = s.send(view[:65536])
                view = view[n:]
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = http.client.HTTPResponse(s)
        r.begin()
        data = r.read()
        return harness.Response("RAW", "", r.status, r.reason, r.getheaders(), data)
    finally:
        s.close()


def prom_samples(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = PROM_SAMPLE.match(line)
        if not m:
            raise AssertionError("not Prometheus text: %r" % line)
        out[m.group("series")] = float(m.group("value"))
    return out


def is_request_line(doc):
    return any(k in doc for k in ("method", "route", "latencyMs"))


class ServerTest(harness.ServerCase):
    def test_keep_alive(self):
        user = new_user()
        conn = self.server.connection()
        try:
            targets = [
                "/health",
                "/price?id=PROD-101&userId=%s" % user,
                "/price?id=PROD-101",
                "/nope",
                "/metrics",
                "/price?id=NOPE-KA&userId=%s" % user,
                "/ready",
            ]
            sock = None
            for t in targets:
                r = self.server.get(t, conn=conn)
                self.assertIn(r.status, (200, 400, 404))
                self.assertIsNotNone(conn.sock, "server closed the connection after %s" % t)
                if sock is None:
                    sock = conn.sock
                self.assertIs(conn.sock, sock, "a new connection was opened for %s" % t)
        finally:
            conn.close()
        self.assertEqual(len(self.stores.records(user=user)), 2)

    def test_health_ready(self):
        r = self.server.get("/health")
        self.assertStatus(r, 200)
        r = self.server.get("/ready")
        self.assertStatus(r, 200)
        r = self.server.request("POST", "/health", body=b"")
        self.assertStatus(r, 405)

    def test_metrics(self):
        r = self.server.get("/metrics")
        self.assertStatus(r, 200)
        self.assertTrue(r.header("content-type").startswith("text/plain"), r.header("content-type"))
        text = r.text
        counters = re.findall(r"^# TYPE (pricing_\w+) counter$", text, re.M)
        self.assertTrue(counters, text[:2000])
        before = prom_samples(text)
        self.assertTrue(all(k.startswith("pricing_") for k in before), list(before)[:20])
        user = new_user()
        for _ in range(3):
            self.assertStatus(self.server.price("PROD-101", user), 200)
        self.assertStatus(self.server.get("/price?id=bad%20id&userId=x"), 400)
        after = prom_samples(self.server.get("/metrics").text)

        def total(samples):
            return sum(v for k, v in samples.items() if k.split("{")[0] in counters)

        self.assertGreaterEqual(total(after) - total(before), 4)
        # The documented series move with the traffic.
        key = 'pricing_http_requests_total{function="price-fetcher",route="/price",code="200"}'
        self.assertEqual(after.get(key, 0) - before.get(key, 0), 3, key)
        key = 'pricing_audit_records_total{result="ok"}'
        self.assertIn(key, after)
        self.assertGreaterEqual(after[key] - before.get(key, 0), 3, key)

    def test_payload_too_large(self):
        body = b"x" * (300 * 1024)
        for path in ("/price", "/audit", "/nope"):
            with self.subTest(path=path):
                head = (
                    "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n\r\n" % (path, len(body))
                ).encode()
                r = raw_exchange(self.server.port, head, body)
                self.assertEqual(r.status, 413, r)
                harness.check_response("POST", path, r.status, r.headers, r.body)
                self.assertEqual(r.json()["error"]["code"], "PAYLOAD_TOO_LARGE")
        # The server is still fine.
        self.assertStatus(self.server.get("/health"), 200)

    def test_oversized_header(self):
        # docs/internals/transports.md: request line + headers past max_header_bytes
        # (32 KiB) get our JSON 431; past MHD's per-connection pool (32 KiB + 8448)
        # MHD answers by itself (431 for headers, 414 for the request line) with
        # an HTML body, before any of our code runs.
        user = new_user()
        target = "/price?id=PROD-101&userId=%s" % user
        head = (
            "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\n\r\n" % (target, "a" * (33 * 1024))
        ).encode()
        r = raw_exchange(self.server.port, head)
        self.assertEqual(r.status, 431, r)
        harness.check_response("GET", "/price", r.status, r.headers, r.body)
        self.assertEqual(r.json()["error"]["code"], "HEADERS_TOO_LARGE")
        head = (
            "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\n\r\n" % (target, "a" * (64 * 1024))
        ).encode()
        self.assertEqual(raw_exchange(self.server.port, head).status, 431)
        head = ("GET %s&pad=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (target, "a" * (48 * 1024))).encode()
        self.assertEqual(raw_exchange(self.server.port, head).status, 414)
        self.assertEqual(self.stores.records(user=user), [])
        self.assertStatus(self.server.get("/health"), 200)

    def test_too_many_headers(self):
        user = new_user()
        extra = "".join("X-H%d: v\r\n" % i for i in range(150))
        head = (
            "GET /price?id=PROD-101&userId=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % (user, extra)
        ).encode()
        r = raw_exchange(self.server.port, head)
        self.assertEqual(r.status, 431, r)
        harness.check_response("GET", "/price", r.status, r.headers, r.body)
        self.assertEqual(r.json()["error"]["code"], "HEADERS_TOO_LARGE")
        self.assertEqual(self.stores.records(user=user), [])

    def test_malformed_requests(self):
        user = new_user()
        q = "/price?id=PROD-101&userId=%s" % user
        cases = [
            ("/%00", "GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n", b"", 400),
            ("/pr%ZZice", "GET /pr%ZZice HTTP/1.1\r\nHost: x\r\n\r\n", b"", 400),
            (
                "/price",
                "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n" % q,
                b"{}",
                400,
            ),
            (
                "/price",
                "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % q,
                b"".join(b"10000\r\n" + b"x" * 0x10000 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n",
                413,
            ),
        ]
        for path, head, body, status in cases:
            with self.subTest(head=head[:40]):
                r = raw_exchange(self.server.port, head.encode(), body)
                self.assertEqual(r.status, status, r)
                harness.check_response(head.split()[0], path, r.status, r.headers, r.body)
        self.assertEqual(self.stores.records(user=user), [])
        self.assertStatus(self.server.get("/health"), 200)

    def test_logs(self):
        user = new_user()
        secret = "Bearer e2e-secret-token-5f1c2a"
        query = "id=PROD-101&userId=%s" % user
        r1 = self.server.get("/price?" + query, headers={"Authorization": secret})
        self.assertStatus(r1, 200)
        r2 = self.server.get("/price?id=NOPE-LOG&userId=%s" % user.upper())
        self.assertStatus(r2, 404)
        r3 = self.server.get("/price?id=PROD-101&userId=%s&extra=%s" % (user, user))
        self.assertStatus(r3, 400)
        r4 = self.server.get("/audit?userId=%s" % user, headers={"Authorization": secret})
        self.assertStatus(r4, 200)
        want = {r.request_id: r for r in (r1, r2, r3, r4)}
        deadline = time.monotonic() + 5
        while True:
            lines = self.server.log_lines()
            docs = [json.loads(l) for l in lines if l.startswith("{")]
            seen = {d.get("requestId") for d in docs if is_request_line(d)}
            if set(want) <= seen or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertTrue(lines)
        for line in lines:
            doc = json.loads(line)
            self.assertIsInstance(doc, dict, line)
            for key in ("ts", "level", "msg"):
                self.assertIn(key, doc, line)
            self.assertIn(doc["level"], ("debug", "info", "warn", "error"), line)
            if is_request_line(doc):
                for key in REQUEST_KEYS:
                    self.assertIn(key, doc, line)
            low = line.lower()
            self.assertNotIn(user, low, "user id in a log line")
            self.assertNotIn("e2e-secret-token-5f1c2a", low, "Authorization value in a log line")
            self.assertNotIn("userid=", low, "query string in a log line")
            self.assertNotIn("id=prod-101", low, "query string in a log line")
        by_rid = {d["requestId"]: d for d in docs if is_request_line(d) and d.get("requestId") in want}
        self.assertEqual(set(by_rid), set(want))
        for rid, resp in want.items():
            d = by_rid[rid]
            self.assertEqual(d["status"], resp.status)
            self.assertEqual(d["method"], "GET")
            self.assertIsInstance(d["latencyMs"], (int, float))
        self.assertEqual(by_rid[r1.request_id]["route"], "/price")
        self.assertEqual(by_rid[r4.request_id]["route"], "/audit")
        self.assertEqual(by_rid[r1.request_id].get("function"), "price-fetcher")


class ShutdownTest(unittest.TestCase):
    def setUp(self):
        self.stores = harness.Stores()
        self.server = None
        self.stores.seed()

    def tearDown(self):
        if self.server is not None:
            self.server.kill()
        self.stores.cleanup()

    def test_sigterm_waits_for_requests_in_flight(self):
        if self.stores.audit_sqlite is None:
            self.skipTest("holds the embedded audit store's write lock to keep requests in flight")
        self.server = harness.Server(self.stores, env={"AUDIT_TIMEOUT_MS": "8000"}).start()
        user = new_user()
        self.assertEqual(self.server.price("PROD-101", user).status, 200)
        con = sqlite3.connect(str(self.stores.audit_sqlite), timeout=10, isolation_level=None)
        results = []
        lock = threading.Lock()

        sent = threading.Semaphore(0)
        target = "/price?id=PROD-102&userId=%s" % user

        def work():
            conn = self.server.connection(timeout=60)
            try:
                conn.request("GET", target)
                sent.release()
                r = self.server.receive(conn, "GET", target)
            except Exception as exc:
                r = exc
            finally:
                conn.close()
            with lock:
                results.append(r)

        threads = [threading.Thread(target=work, daemon=True) for _ in range(5)]
        try:
            con.execute("BEGIN EXCLUSIVE")
            for t in threads:
                t.start()
            for _ in threads:
                self.assertTrue(sent.acquire(timeout=30))
            time.sleep(1.0)  # all five are now waiting for their audit records
            with lock:
                self.assertEqual(results, [], "answered while the audit store was locked")
            self.server.proc.send_signal(15)
            time.sleep(0.5)
            self.assertTrue(self.server.running(), "exited with requests in flight")
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
            con.close()
        for t in threads:
            t.join(60)
        self.assertEqual(len(results), 5)
        for r in results:
            self.assertIsInstance(r, harness.Response, r)
            self.assertEqual(r.status, 200, r)
        rc = self.server.proc.wait(30)
        self.server.stop()  # joins the log readers, checks for sanitizer reports
        self.assertEqual(rc, 0, self.server.stderr())
        rids = {x["requestId"] for x in self.stores.records(user=user)}
        for r in results:
            self.assertIn(r.request_id, rids)

    def test_sigterm_under_load(self):
        self.server = harness.Server(self.stores).start()
        user = new_user()
        stop = threading.Event()
        answers, bad = [], []
        lock = threading.Lock()

        def work():
            conn = None
            for _ in range(100000):
                if stop.is_set():
                    break
                try:
                    if conn is None:
                        conn = self.server.connection(timeout=30)
                    r = self.server.price("PROD-101", user, conn=conn)
                except (ConnectionError, http.client.RemoteDisconnected, OSError):
                    if conn is not None:
                        conn.close()
                    conn = None
                    if not self.server.running():
                        break
                    time.sleep(0.01)
                    continue
                except Exception as exc:
                    with lock:
                        bad.append(exc)
                    break
                with lock:
                    (answers if r.status == 200 else bad).append(r)
            if conn is not None:
                conn.close()

        threads = [threading.Thread(target=work, daemon=True) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        self.server.proc.send_signal(15)
        try:
            rc = self.server.proc.wait(30)
        finally:
            stop.set()
        for t in threads:
            t.join(30)
        self.server.stop()
        self.assertEqual(rc, 0, self.server.stderr())
        self.assertEqual(bad, [])
        self.assertGreater(len(answers), 20)
        rids = {x["requestId"] for x in self.stores.all_records(user=user)}
        self.assertEqual([r.request_id for r in answers if r.request_id not in rids], [])


if __name__ == "__main__":
    unittest.main()
