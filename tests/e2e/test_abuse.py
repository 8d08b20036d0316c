"""Abuse and hostile input: throttling, security headers, CORS, request smuggling,
malformed requests, slow clients, connection caps, and a well-behaved client that
keeps being answered while misbehaving clients run (docs/security.md).

Everything is on loopback. Clients that must look like different hosts bind other
127.0.0.0/8 source addresses (Linux routes the whole block to lo). Every loop is
bounded in count and time; the attack runs in a child process of this test, which
is waited for (and killed by its PID only if it overruns).
"""

import base64
import hashlib
import hmac
import http.client
import io
import json
import os
import re
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import harness
from harness import new_user

CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000; includeSubDomains"
ORIGIN_OK = "https://app.example.com"
ORIGINS = ORIGIN_OK + ",http://localhost:5173"
USER_RE_BODY = b'{"productId":"PROD-101","price":99.99,"currency":"USD"}'


def raise_nofile(want):
    """Soft RLIMIT_NOFILE up to `want` (bounded by the hard limit); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connect(port, source=None, timeout=10):
    return socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0) if source else None
    )


def read_response(f):
    """One response from a buffered reader (every answer of ours has Content-Length)."""
    line = f.readline(65537)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    status = int(parts[1])
    headers = []
    for _ in range(200):
        h = f.readline(65537)
        if h in (b"\r\n", b"\n", b""):
            break
        k, v = h.decode("latin-1").split(":", 1)
        headers.append((k.strip(), v.strip()))
    n = int(dict((k.lower(), v) for k, v in headers).get("content-length", "0"))
    body = f.read(n) if n else b""
    return harness.Response("RAW", "", status, parts[2] if len(parts) > 2 else "", headers, body)


def exchange(port, data, source=None, timeout=10, count=1):
    """Writes data in one go, returns `count` responses (None for each missing one)."""
    s = connect(port, source, timeout)
    try:
        s.sendall(data)
        f = s.makefile("rb")
        out = []
        for _ in range(count):
            try:
                out.append(read_response(f))
            except (ConnectionResetError, socket.timeout):
                out.append(None)
        return out if count > 1 else out[0]
    finally:
        s.close()


def closed_by_peer(sock, timeout):
    """Seconds until the server closes sock (reading and discarding), or None."""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < timeout:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
    return None


def trickle(s, byte):
    """Sends byte every 0.3 s, 40 times at most; seconds until the peer closed, or None."""
    t0 = time.monotonic()
    for _ in range(40):
        try:
            s.sendall(byte)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0
        s.settimeout(0.3)
        try:
            if s.recv(4096) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            pass
        except ConnectionResetError:
            return time.monotonic() - t0
    return None


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(secret, sub, scope="price:read"):
    now = int(time.time())
    header = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64u(json.dumps({"sub": sub, "scope": scope, "iat": now, "exp": now + 600}).encode())
    signing = (header + "." + claims).encode()
    return signing.decode() + "." + b64u(hmac.new(secret, signing, hashlib.sha256).digest())


class Checks:
    def assert_security_headers(self, r, hsts=False):
        self.assertEqual(r.header("content-security-policy"), CSP, r)
        self.assertEqual(r.header("referrer-policy"), "no-referrer", r)
        self.assertEqual(r.header("x-content-type-options"), "nosniff", r)
        if hsts:
            self.assertEqual(r.header("strict-transport-security"), HSTS, r)
        else:
            self.assertIsNone(r.header("strict-transport-security"), r)

    def assert_no_cors(self, r):
        names = [k.lower() for k, _ in r.header_list]
        self.assertEqual([k for k in names if k.startswith("access-control-")], [], r)

    def assert_400(self, r, path="/price", method="POST"):
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 400, r)
        harness.check_response(method, path, r.status, r.headers, r.body)
        self.assertEqual(r.json()["error"]["code"], "VALIDATION_FAILED")


# ----------------------------------------------------------------- defaults


class DefaultsTest(harness.ServerCase, Checks):
    """No options: no throttling, no CORS, headers everywhere."""

    def test_no_throttling_by_default(self):
        user = new_user()
        conn = self.server.connection()
        try:
            for _ in range(40):
                self.assertStatus(self.server.price("PROD-101", user, conn=conn), 200)
        finally:
            conn.close()

    def test_no_cors_by_default(self):
        r = self.server.get("/price?id=PROD-101&userId=%s" % new_user(), headers={"Origin": ORIGIN_OK})
        self.assertStatus(r, 200)
        self.assert_no_cors(r)
        self.assertIsNone(r.header("vary"))
        r = self.server.request(
            "OPTIONS", "/price", headers={"Origin": ORIGIN_OK, "Access-Control-Request-Method": "GET"}
        )
        self.assertStatus(r, 405)
        self.assertEqual(r.header("allow"), "GET")
        self.assert_no_cors(r)

    def test_bad_settings_stop_start_up(self):
        cases = [
            (["--cors-origins", "*"], {}, "CORS_ALLOW_ORIGINS"),
            (["--cors-origins", "https://app.example.com/"], {}, "CORS_ALLOW_ORIGINS"),
            ([], {"CORS_ALLOW_ORIGINS": "app.example.com"}, "CORS_ALLOW_ORIGINS"),
            (["--rate-limit", "-1"], {}, "--rate-limit"),
            ([], {"RATE_LIMIT_BURST": "x"}, "RATE_LIMIT_BURST"),
            (["--max-connections-per-ip", "100001"], {}, "--max-connections-per-ip"),
        ]
        for args, env, name in cases:
            with self.subTest(args=args, env=env):
                r = harness.run_cli(["serve", "--port", "0"] + self.stores.flags() + args, env=env)
                self.assertEqual(r.rc, 2, r)
                self.assertIn(name, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_security_headers_on_every_status(self):
        user = new_user()
        cases = [
            ("GET", "/price?id=PROD-101&userId=%s" % user, None, 200),
            ("GET", "/price?id=NOPE-SEC&userId=%s" % user, None, 404),
            ("GET", "/price?id=PROD-101", None, 400),
            ("GET", "/nope", None, 404),
            ("POST", "/price", b"{}", 405),
            ("DELETE", "/health", None, 405),
            ("GET", "/health", None, 200),
            ("GET", "/ready", None, 200),
            ("GET", "/metrics", None, 200),
            ("GET", "/audit?userId=%s" % user, None, 200),
        ]
        for method, target, body, status in cases:
            with self.subTest(target=target, method=method):
                r = self.server.request(method, target, body=body)
                self.assertStatus(r, status)
                self.assert_security_headers(r)
        # Behind a TLS-terminating proxy: HSTS too.
        r = self.server.get("/health", headers={"X-Forwarded-Proto": "https"})
        self.assert_security_headers(r, hsts=True)
        r = self.server.get("/nope", headers={"Forwarded": "for=192.0.2.1;proto=https"})
        self.assert_security_headers(r, hsts=True)
        r = self.server.get("/health", headers={"X-Forwarded-Proto": "http"})
        self.assert_security_headers(r)
        # The transport's own refusals (413, 431) carry them as well.
        head = (
            "POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (300 * 1024)
        ).encode()
        r = exchange(self.server.port, head)
        self.assertEqual(r.status, 413, r)
        self.assert_security_headers(r)
        r = exchange(
            self.server.port,
            ("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % ("a" * 33 * 1024)).encode(),
        )
        self.assertEqual(r.status, 431, r)
        self.assert_security_headers(r)

    def test_security_headers_on_5xx(self):
        if self.stores.audit_sqlite is None:
            self.skipTest("holds the embedded audit store's write lock")
        # A locked audit store: 503 AUDIT_UNAVAILABLE after AUDIT_TIMEOUT_MS (2 s default).
        con = sqlite3.connect(str(self.stores.audit_sqlite), timeout=10, isolation_level=None)
        try:
            con.execute("BEGIN EXCLUSIVE")
            r = self.server.price("PROD-101", new_user())
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
            con.close()
        self.assertStatus(r, 503)
        self.assert_security_headers(r)

    def test_security_headers_through_invoke(self):
        user = new_user()
        for kind in ("aws-proxy", "http-api"):
            with self.subTest(kind=kind):
                ev = harness.run_cli(
                    ["generate-event", "apigateway", kind, "--query", "id=PROD-101&userId=" + user]
                )
                self.assertEqual(ev.rc, 0, ev)
                r = harness.run_cli(
                    ["invoke", "price-fetcher", "--event", "-"] + self.stores.flags(),
                    stdin=ev.stdout,
                    env={"AUTH_MODE": "none"},
                )
                self.assertEqual(r.rc, 0, r)
                doc, headers, _ = harness.check_invoke(r.stdout, "GET", "/price")
                self.assertEqual(doc["statusCode"], 200)
                # API Gateway endpoints are HTTPS only.
                self.assertEqual(headers.get("strict-transport-security"), HSTS)
                self.assertEqual(headers.get("content-security-policy"), CSP)
                self.assertEqual(headers.get("referrer-policy"), "no-referrer")


# ----------------------------------------------------------------- hostile input


class HostileInputTest(harness.ServerCase, Checks):
    server_args = ("--cors-origins", ORIGINS)

    def test_smuggling_shapes(self):
        user = new_user()
        inner = ("GET /price?id=PROD-101&userId=%s HTTP/1.1\r\nHost: x\r\n\r\n" % user).encode()
        # Answered by us: JSON error shape, security headers.
        ours = {
            "cl+te": b"POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % (5 + len(inner)),
            "te gzip": b"POST /price HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            "te chunked, gzip": b"POST /price HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked, gzip\r\n\r\n",
            # libmicrohttpd keeps trailing blanks: to it these are unknown codings, read
            # to end of stream, so the request would never be answered.
            "te trailing space": b"POST /price HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked \r\n\r\n0\r\n\r\n",
            "te trailing tab": b"POST /price HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",
            # obs-fold: libmicrohttpd joins the lines with no blank ("chunkedgzip").
            "te folded": b"POST /price HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n gzip\r\n\r\n0\r\n\r\n",
            "two te": b"POST /price HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            "two cl": b"POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
            b"Content-Length: %d\r\n\r\n" % len(inner),
            "te in 1.0": b"POST /price HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "space before colon": b"POST /price HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            "bare cr in value": b"POST /price HTTP/1.1\r\nHost: x\r\nX-A: a\rTransfer-Encoding: chunked"
            b"\r\n\r\n0\r\n\r\n",
            "two hosts": b"GET /price HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "no host": b"GET /price HTTP/1.1\r\n\r\n",
        }
        # A Content-Length that is not a number: MHD 0.9.75 answers 400 itself
        # (HTML, before any of our code runs; docs/internals/transports.md).
        mhd = {
            "cl junk": b"POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n",
            "cl list": b"POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 0\r\n\r\n",
            "cl sign": b"POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n",
            "cl trailing space": b"POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: 0 \r\n\r\n",
            "cl trailing tab": b"POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: 0\t\r\n\r\n",
        }
        for name, head in list(ours.items()) + list(mhd.items()):
            with self.subTest(shape=name):
                # The smuggled request follows in the same write: it must never run.
                s = connect(self.server.port)
                try:
                    s.sendall(head + inner)
                    s.shutdown(socket.SHUT_WR)
                    data = b""
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                finally:
                    s.close()
                statuses = re.findall(rb"HTTP/1\.[01] (\d{3}) ", data)
                self.assertTrue(statuses, data[:300])
                self.assertEqual(set(statuses), {b"400"}, data[:600])
                if name in ours:
                    self.assertEqual(len(statuses), 1, data[:600])
                    r = read_response(io.BytesIO(data))
                    method = head.split(b" ", 1)[0].decode()
                    self.assert_400(r, method=method)
                    self.assertEqual(r.header("connection"), "close", r)
                    self.assert_security_headers(r)
        self.assertEqual(self.stores.records(user=user), [])
        self.assertStatus(self.server.get("/health"), 200)

    def test_bad_encoding_and_control_characters(self):
        user = new_user()
        q = "id=PROD-101&userId=%s" % user
        cases = [
            ("/pr%ZZice", "GET /pr%ZZice HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("/price%0a", "GET /price%0a HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("/%00", "GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("/price", "GET /price?id=%%zz&userId=%s HTTP/1.1\r\nHost: x\r\n\r\n" % user),
            ("/price", "GET /price?%s&x=%%0 HTTP/1.1\r\nHost: x\r\n\r\n" % q),
            ("/price", "GET /price?id=PROD-101%%00&userId=%s HTTP/1.1\r\nHost: x\r\n\r\n" % user),
            ("/price", "GET /price?id=PROD\x01101&userId=%s HTTP/1.1\r\nHost: x\r\n\r\n" % user),
            ("/price", "GET /pri\x7fce?%s HTTP/1.1\r\nHost: x\r\n\r\n" % q),
            ("/health", "GET /health?a=\x01 HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("/price", "GET /price?%s HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n" % q),
            ("/price", "GET /price?%s HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n" % q),
            ("/price", "GET /price?%s HTTP/1.1\r\nHost: x\r\nX\x01A: b\r\n\r\n" % q),
            ("/price", "G\x01T /price?%s HTTP/1.1\r\nHost: x\r\n\r\n" % q),
        ]
        for path, raw in cases:
            with self.subTest(raw=raw[:50]):
                r = exchange(self.server.port, raw.encode("latin-1"))
                self.assert_400(r, path=path, method="GET")
                self.assertIn(r.error_fields()[0], ("target", "headers", "method", "id", "userId",
                                                    "query"), r)
                self.assert_security_headers(r)
        self.assertEqual(self.stores.records(user=user), [])

    def test_oversized_header_and_body(self):
        user = new_user()
        target = "/price?id=PROD-101&userId=%s" % user
        r = exchange(
            self.server.port,
            ("GET %s HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % (target, "b" * 33 * 1024)).encode(),
        )
        self.assertEqual(r.status, 431, r)
        harness.check_response("GET", "/price", r.status, r.headers, r.body)
        self.assertEqual(r.json()["error"]["code"], "HEADERS_TOO_LARGE")
        # An oversized request line is counted the same way.
        r = exchange(
            self.server.port,
            ("GET %s&pad=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (target, "p" * 33 * 1024)).encode(),
        )
        self.assertEqual(r.status, 431, r)
        harness.check_response("GET", "/price", r.status, r.headers, r.body)
        self.assertEqual(r.json()["error"]["code"], "HEADERS_TOO_LARGE")
        # Over the cap by Content-Length: refused before any body byte is read.
        r = exchange(
            self.server.port,
            ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (target, 256 * 1024 + 1)).encode(),
        )
        self.assertEqual(r.status, 413, r)
        harness.check_response("POST", "/price", r.status, r.headers, r.body)
        self.assertEqual(r.json()["error"]["code"], "PAYLOAD_TOO_LARGE")
        # Over the cap while chunked: read, dropped, then 413.
        chunk = b"8000\r\n" + b"x" * 0x8000 + b"\r\n"
        r = exchange(
            self.server.port,
            ("POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % target).encode()
            + chunk * 9
            + b"0\r\n\r\n",
        )
        self.assertEqual(r.status, 413, r)
        self.assertEqual(self.stores.records(user=user), [])

    def test_transfer_coding_as_libmicrohttpd_reads_it(self):
        """A chunked body whose coding is spelled differently is read the same way by
        libmicrohttpd and by our check, and the request behind it is answered."""
        user = new_user()
        inner = ("GET /price?id=PROD-101&userId=%s HTTP/1.1\r\nHost: x\r\n\r\n" % user).encode()
        for name, te in (("Chunked", b"Chunked"), ("CHUNKED", b"CHUNKED"),
                         ("leading blanks", b" \t chunked")):
            with self.subTest(coding=name):
                head = (b"POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te
                        + b"\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
                rs = exchange(self.server.port, head + inner, count=2, timeout=5)
                self.assertEqual([r.status if r else None for r in rs], [404, 200], rs)
        # Blanks after the coding: refused at once, nothing behind it read, nothing hangs.
        for te in (b"chunked ", b"chunked\t", b"Chunked  "):
            with self.subTest(coding=te):
                t0 = time.monotonic()
                rs = exchange(self.server.port, b"POST /price HTTP/1.1\r\nHost: x\r\n"
                              b"Transfer-Encoding: " + te + b"\r\n\r\n0\r\n\r\n" + inner,
                              count=2, timeout=5)
                self.assertLess(time.monotonic() - t0, 4)
                self.assert_400(rs[0])
                self.assertEqual(rs[0].header("connection"), "close", rs[0])
                self.assertIsNone(rs[1], rs)
        self.assertEqual(len(self.stores.records(user=user)), 3)

    def test_pipelined_requests_in_order(self):
        user = new_user()
        reqs = [
            "GET /price?id=PROD-101&userId=%s HTTP/1.1\r\nHost: x\r\nX-Correlation-Id: pipe-1\r\n\r\n" % user,
            "GET /nope HTTP/1.1\r\nHost: x\r\nX-Correlation-Id: pipe-2\r\n\r\n",
            "GET /price?id=NOPE-PIPE&userId=%s HTTP/1.1\r\nHost: x\r\nX-Correlation-Id: pipe-3\r\n\r\n" % user,
        ]
        rs = exchange(self.server.port, "".join(reqs).encode(), count=3)
        self.assertEqual([r.status if r else None for r in rs], [200, 404, 404])
        self.assertEqual([r.header("x-correlation-id") for r in rs], ["pipe-1", "pipe-2", "pipe-3"])
        self.assertEqual(rs[0].body, USER_RE_BODY)
        self.assertEqual(rs[1].json()["error"]["code"], "ROUTE_NOT_FOUND")
        self.assertEqual(rs[2].json()["error"]["code"], "NOT_FOUND")
        for r, path in zip(rs, ("/price", "/nope", "/price")):
            harness.check_response("GET", path, r.status, r.headers, r.body)
        records = self.stores.records(user=user)
        self.assertEqual(sorted(x["requestId"] for x in records),
                         sorted([rs[0].request_id, rs[2].request_id]))

    def test_cors_allowed_origin(self):
        user = new_user()
        r = self.server.get("/price?id=PROD-101&userId=%s" % user, headers={"Origin": ORIGIN_OK})
        self.assertStatus(r, 200)
        self.assertEqual(r.header("access-control-allow-origin"), ORIGIN_OK)
        self.assertIn("X-Request-Id", r.header("access-control-expose-headers"))
        self.assertEqual(r.header("vary"), "Origin")
        self.assertIsNone(r.header("access-control-allow-credentials"))
        r = self.server.get("/nope", headers={"Origin": "http://localhost:5173"})
        self.assertStatus(r, 404)
        self.assertEqual(r.header("access-control-allow-origin"), "http://localhost:5173")

    def test_cors_denied_origin(self):
        for origin in ("https://evil.example.com", "https://app.example.com.evil.com", "null",
                       "http://app.example.com", "*"):
            with self.subTest(origin=origin):
                r = self.server.get("/health", headers={"Origin": origin})
                self.assertStatus(r, 200)
                self.assert_no_cors(r)
                self.assertEqual(r.header("vary"), "Origin")
        r = self.server.get("/health")
        self.assert_no_cors(r)
        self.assertEqual(r.header("vary"), "Origin")

    def test_cors_preflight(self):
        h = {"Origin": ORIGIN_OK, "Access-Control-Request-Method": "GET",
             "Access-Control-Request-Headers": "authorization, x-correlation-id"}
        for path in ("/price", "/audit"):
            with self.subTest(path=path):
                r = self.server.request("OPTIONS", path, headers=h)
                self.assertStatus(r, 204)
                self.assertEqual(r.body, b"")
                self.assertEqual(r.header("access-control-allow-origin"), ORIGIN_OK)
                self.assertEqual(r.header("access-control-allow-methods"), "GET")
                self.assertIn("Authorization", r.header("access-control-allow-headers"))
                self.assertEqual(r.header("access-control-max-age"), "600")
                self.assertIsNone(r.header("access-control-allow-credentials"))
                self.assert_security_headers(r)
        # Denied origin, no request method, unknown path, server-only route: routed as usual.
        denied = [
            ("/price", {"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"}, 405),
            ("/price", {"Origin": ORIGIN_OK}, 405),
            ("/nope", h, 404),
            ("/health", h, 405),
        ]
        for path, headers, status in denied:
            with self.subTest(path=path, headers=headers):
                r = self.server.request("OPTIONS", path, headers=headers)
                self.assertStatus(r, status)
                if headers.get("Origin") != ORIGIN_OK:
                    self.assert_no_cors(r)
                else:
                    self.assertIsNone(r.header("access-control-allow-methods"))


# ----------------------------------------------------------------- throttling


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def prom_value(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


class ManyQueryArgumentsTest(harness.ServerCase, Checks):
    """Targets with hundreds or thousands of query arguments, far under the header cap.
    libmicrohttpd 0.9.75 cannot store that many in its connection memory and then
    drops the request without answering or completing it (docs/internals/transports.md)."""

    def many(self, n, user):
        return "/price?id=PROD-101&userId=%s&%s" % (user, "&".join("a%d=1" % i for i in range(n)))

    def test_answered_freed_and_stop_is_prompt(self):
        user = new_user()
        for n in (650, 1000, 3000):
            with self.subTest(arguments=n):
                target = self.many(n, user)
                self.assertLess(len(target), 32 * 1024)
                r = exchange(self.server.port,
                             ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target).encode(), timeout=5)
                self.assert_400(r, method="GET")
                self.assertEqual(r.error_fields(), ["query"], r)
        # Empty arguments ("&&&") cost libmicrohttpd a record each as well.
        r = exchange(self.server.port,
                     ("GET /price?%sid=PROD-101&userId=%s HTTP/1.1\r\nHost: x\r\n\r\n"
                      % ("&" * 20000, user)).encode(), timeout=5)
        self.assertEqual(r.status, 200, r)
        # Many such requests: memory does not grow, nothing stays in flight.
        req = ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
               % self.many(1000, user)).encode()
        pid = self.server.pid
        for _ in range(300):
            self.assertEqual(exchange(self.server.port, req, timeout=5).status, 400)
        before = rss_kb(pid)
        done, t_end = 0, time.monotonic() + 120
        while done < 2000 and time.monotonic() < t_end:
            r = exchange(self.server.port, req, timeout=5)
            self.assertIsNotNone(r, "request %d not answered" % done)
            self.assertEqual(r.status, 400, r)
            done += 1
        self.assertEqual(done, 2000, "only %d requests within the time bound" % done)
        grown = rss_kb(pid) - before
        if not harness.sanitized():  # ASan's quarantine holds freed memory; LSan checks at exit
            self.assertLess(grown, 4096, "RSS grew by %d KB over 2000 requests" % grown)
        # The last answers may still be finishing on the server when the client has read
        # them: wait (bounded) for every request but this /metrics one to be done.
        t_end = time.monotonic() + 5
        while True:
            metrics = self.server.get("/metrics").text
            if prom_value(metrics, "pricing_http_requests_in_flight") == 1 or time.monotonic() > t_end:
                break
            time.sleep(0.05)
        self.assertEqual(prom_value(metrics, "pricing_http_requests_in_flight"), 1, metrics[-800:])
        self.assertEqual(prom_value(metrics, "pricing_http_requests_reclaimed_total"), 0)
        self.assertEqual(len(self.stores.records(user=user)), 1)
        # Nothing in flight: SIGTERM stops at once (it waits up to 10 s for requests).
        t0 = time.monotonic()
        self.assertEqual(self.server.stop(), 0)
        self.assertLess(time.monotonic() - t0, 8)
        log = [json.loads(l) for l in self.server.log_lines() if l.startswith("{")]
        marks = {x["msg"]: harness.parse_ts(x["ts"]) for x in log if x["msg"] in ("stopping", "stopped")}
        self.assertLess((marks["stopped"] - marks["stopping"]).total_seconds(), 1.0, marks)
        stopped = [json.loads(l) for l in self.server.log_lines() if '"stopped"' in l]
        self.assertEqual(stopped[-1]["reclaimedRequests"], "0", stopped)


class ThrottleTest(harness.ServerCase, Checks):
    server_args = ("--rate-limit", "2", "--rate-burst", "5")

    def burst(self, user, source, limit=30):
        """Look-ups from `source` until the first 429; returns (answers, the 429)."""
        ok = []
        for _ in range(limit):
            conn = http.client.HTTPConnection(
                "127.0.0.1", self.server.port, timeout=10, source_address=(source, 0)
            )
            try:
                r = self.server.price("PROD-101", user, conn=conn)
            finally:
                conn.close()
            if r.status == 429:
                return ok, r
            self.assertStatus(r, 200)
            ok.append(r)
        self.fail("no 429 after %d look-ups from %s" % (limit, source))

    def test_429_after_burst(self):
        user = new_user()
        ok, r = self.burst(user, "127.0.0.11")
        # A burst of 5, plus what 2 rps refilled meanwhile.
        self.assertGreaterEqual(len(ok), 5)
        self.assertLessEqual(len(ok), 8)
        self.assertEqual(r.json()["error"]["code"], "TOO_MANY_REQUESTS")
        self.assertEqual(r.header("retry-after"), "1")
        self.assert_security_headers(r)
        # Throttled look-ups are not validated look-ups: no audit record.
        self.assertEqual(
            sorted(x["requestId"] for x in self.stores.records(user=user)),
            sorted(x.request_id for x in ok),
        )
        time.sleep(int(r.header("retry-after")) + 0.1)
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.server.port, timeout=10, source_address=("127.0.0.11", 0)
        )
        try:
            self.assertStatus(self.server.price("PROD-101", user, conn=conn), 200)
        finally:
            conn.close()
        # The server-only routes are never throttled.
        self.assertStatus(self.server.get("/health"), 200)

    def test_per_address_isolation(self):
        user = new_user()
        ok, _ = self.burst(user, "127.0.0.12")
        # Another address has its own bucket.
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.server.port, timeout=10, source_address=("127.0.0.13", 0)
        )
        try:
            for _ in range(5):
                self.assertStatus(self.server.price("PROD-101", user, conn=conn), 200)
        finally:
            conn.close()

    def test_throttle_log_and_metrics(self):
        _, r = self.burst(new_user(), "127.0.0.14")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if r.request_id in self.server.stdout():
                break
            time.sleep(0.1)
        line = [l for l in self.server.log_lines() if r.request_id in l][0]
        self.assertEqual(json.loads(line)["status"], 429)
        text = self.server.get("/metrics").text
        self.assertIn('code="429"', text)


class ThrottleJwtTest(harness.ServerCase, Checks):
    """Per-principal: the token's subject, whatever the address."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="px-e2e-abuse-")
        cls.secret = b"abuse-e2e-secret-abuse-e2e-secret-0123456789"
        path = os.path.join(cls.tmp, "secret")
        with open(path, "wb") as f:
            f.write(cls.secret)
        cls.server_env = {"AUTH_MODE": "jwt", "AUTH_JWT_SECRET_FILE": path}
        cls.server_args = ("--rate-limit", "1", "--rate-burst", "3")
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            import shutil

            shutil.rmtree(cls.tmp, ignore_errors=True)

    def look(self, token, source="127.0.0.1"):
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.server.port, timeout=10, source_address=(source, 0)
        )
        try:
            return self.server.price(
                "PROD-101", new_user(), headers={"Authorization": "Bearer " + token}, conn=conn
            )
        finally:
            conn.close()

    def test_per_subject_isolation(self):
        alice = hs256(self.secret, "alice-%s" % uuid.uuid4())
        bob = hs256(self.secret, "bob-%s" % uuid.uuid4())
        statuses = [self.look(alice, "127.0.0.21").status for _ in range(8)]
        self.assertIn(429, statuses)
        self.assertGreaterEqual(statuses.index(429), 3)
        # Alice from another address: still alice, still throttled.
        self.assertStatus(self.look(alice, "127.0.0.22"), 429)
        # Bob from alice's address: his own bucket.
        for _ in range(3):
            self.assertStatus(self.look(bob, "127.0.0.21"), 200)

    def test_refused_tokens_count_against_the_address(self):
        statuses = [self.look("not-a-token", "127.0.0.23").status for _ in range(8)]
        self.assertEqual(statuses[:3], [401, 401, 401])
        self.assertIn(429, statuses)


# ----------------------------------------------------------------- slow clients and caps


# Connections are cut CONNECTION_TIMEOUT (2 s) after a request began, checked by
# a watchdog every 200 ms; the bound leaves room for a loaded or sanitized run
# and still tells a cut from libmicrohttpd's own behaviour (a trickling client
# kept for over a minute).
CUT_BOUND_S = 6.0


class SlowClientTest(harness.ServerCase):
    server_args = ("--connection-timeout", "2")

    def test_slow_headers_are_cut(self):
        s = connect(self.server.port)
        try:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            # One byte every 0.3 s keeps MHD's idle timer alive; the request deadline does not move.
            closed = trickle(s, b"a")
            self.assertIsNotNone(closed, "a slowloris connection outlived 12 s")
            self.assertLess(closed, CUT_BOUND_S)
            self.assertGreater(closed, 1.0)
        finally:
            s.close()

    def test_slow_body_is_cut(self):
        user = new_user()
        s = connect(self.server.port)
        try:
            s.sendall(
                ("POST /price?id=PROD-101&userId=%s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 "application/json\r\nContent-Length: 200\r\n\r\n{" % user).encode()
            )
            closed = trickle(s, b" ")
            self.assertIsNotNone(closed)
            self.assertLess(closed, CUT_BOUND_S)
        finally:
            s.close()
        self.assertEqual(self.stores.records(user=user), [])

    def test_idle_and_keep_alive(self):
        s = connect(self.server.port)
        try:
            took = closed_by_peer(s, 10)
            self.assertIsNotNone(took)
            self.assertLess(took, CUT_BOUND_S)
        finally:
            s.close()
        # A client that keeps sending whole requests in time keeps its connection.
        conn = self.server.connection()
        try:
            sock = None
            for _ in range(6):
                self.assertStatus(self.server.get("/health", conn=conn), 200)
                sock = sock or conn.sock
                self.assertIs(conn.sock, sock)
                time.sleep(0.5)
        finally:
            conn.close()


class ConnectionCapTest(harness.ServerCase):
    server_args = ("--max-connections", "16", "--max-connections-per-ip", "6",
                   "--connection-timeout", "10")

    def assert_refused_at_once(self, src, msg):
        """A connection past a cap is closed by the server within a second.

        connect() returns once the kernel has queued the connection, before the
        server has accepted the ones held open just before; until it has, a
        probe may still get a slot. So probe until one is refused (each probe
        frees its slot again), within a bound: generous, since on a loaded machine
        (the sanitizer builds, CI) accepting the held ones has taken over 5 s."""
        deadline = time.monotonic() + 20
        while True:
            extra = connect(self.server.port, src)
            took = closed_by_peer(extra, 1.0)
            extra.close()
            if took is not None:
                self.assertLess(took, 1.0)
                return
            self.assertLess(time.monotonic(), deadline, msg)

    def test_caps_refuse_at_once(self):
        held = []
        try:
            # Per address: the 7th connection from one address is closed at once.
            for _ in range(6):
                held.append(connect(self.server.port, "127.0.0.50"))
            self.assert_refused_at_once("127.0.0.50", "the 7th connection from one address was kept")
            # Others are still served.
            self.assertStatus(self.server.get("/health"), 200)
            # Global: 16 open, the 17th is closed at once (not left in the backlog).
            for src in ("127.0.0.51",) * 6 + ("127.0.0.52",) * 4:
                held.append(connect(self.server.port, src))
            self.assert_refused_at_once("127.0.0.53", "the connection past the cap was kept waiting")
        finally:
            for s in held:
                s.close()
        # Slots come back as soon as the holders leave.
        deadline = time.monotonic() + 5
        while True:
            try:
                r = self.server.get("/health", timeout=2)
                if r.status == 200:
                    break
            except (ConnectionError, http.client.HTTPException, OSError):
                pass
            self.assertLess(time.monotonic(), deadline, "no slot came back")
            time.sleep(0.1)
        deadline = time.monotonic() + 5
        while "connection cap (16) reached" not in self.server.stdout():
            self.assertLess(time.monotonic(), deadline, "no log line about the cap")
            time.sleep(0.1)


# ----------------------------------------------------------------- under attack

ATTACK = r'''
import json, resource, select, socket, sys, threading, time

port, duration, timeout_s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 6000 if hard == resource.RLIM_INFINITY else min(6000, hard)
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
t_end = time.monotonic() + duration
stats = {"slow_opened": 0, "slow_cut": 0, "slow_longest": 0.0, "flood_opened": 0,
         "flood_closed_by_server": 0, "flood_connect_errors": 0, "smuggle_sent": 0,
         "smuggle_status": {}}
lock = threading.Lock()

def opener(src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((src, 0))
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    return s

def slowloris():
    # 4 addresses x 40 connections, one header byte per connection per second.
    live = {}
    srcs = ["127.0.0.%d" % i for i in range(20, 24)]
    for _ in range(100000):
        now = time.monotonic()
        if now >= t_end:
            break
        for src in srcs:
            n = sum(1 for v in live.values() if v[1] == src)
            while n < 40 and stats["slow_opened"] < 3000:
                s = opener(src)
                live[s] = [now, src, False]
                stats["slow_opened"] += 1
                n += 1
        for s, v in list(live.items()):
            dead = False
            try:
                if not v[2]:
                    s.send(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    v[2] = True
                else:
                    s.send(b"a")
                r, _, _ = select.select([s], [], [], 0)
                if r and s.recv(4096) == b"":
                    dead = True
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                dead = True
            if dead:
                with lock:
                    stats["slow_cut"] += 1
                    stats["slow_longest"] = max(stats["slow_longest"], now - v[0])
                s.close()
                del live[s]
        time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
    for s in live:
        s.close()

def flood():
    # 2000 connections from 8 addresses in about 4 s, held until the server drops them.
    held = []
    for i in range(2000):
        if time.monotonic() >= t_end:
            break
        try:
            held.append((opener("127.0.0.%d" % (30 + i % 8)), time.monotonic()))
            stats["flood_opened"] += 1
        except OSError:
            stats["flood_connect_errors"] += 1
        if i % 50 == 49:
            time.sleep(0.1)
    alive = {s.fileno(): s for s, _ in held}
    p = select.poll()
    for fd in alive:
        p.register(fd, select.POLLIN)
    while alive and time.monotonic() < t_end:
        for fd, _ in p.poll(200):
            s = alive.get(fd)
            if s is None:
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data == b"":
                stats["flood_closed_by_server"] += 1
                p.unregister(fd)
                del alive[fd]
                s.close()
    for s in alive.values():
        s.close()

SHAPES = [
    b"POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /price HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n",
    b"POST /price HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
]

def smuggle():
    for i in range(400):
        if time.monotonic() >= t_end:
            break
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=3,
                                         source_address=("127.0.0.40", 0))
            s.sendall(SHAPES[i % len(SHAPES)] + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
            status = data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "none"
        except OSError as e:
            status = type(e).__name__
        with lock:
            stats["smuggle_sent"] += 1
            stats["smuggle_status"][status] = stats["smuggle_status"].get(status, 0) + 1
        time.sleep(0.02)

threads = [threading.Thread(target=f, daemon=True) for f in (slowloris, flood, smuggle)]
for t in threads:
    t.start()
for t in threads:
    t.join(duration + 30)
print(json.dumps(stats), flush=True)
'''


class UnderAttackTest(harness.ServerCase):
    TIMEOUT = 3
    server_args = ("--connection-timeout", str(TIMEOUT), "--max-connections", "1000",
                   "--max-connections-per-ip", "50")

    @classmethod
    def setUpClass(cls):
        if raise_nofile(8192) < 4096:
            raise unittest.SkipTest("needs RLIMIT_NOFILE >= 4096 for the attack's sockets")
        super().setUpClass()

    def test_well_behaved_client_keeps_being_answered(self):
        user = new_user()
        duration = 12.0
        attack = subprocess.Popen(
            [sys.executable, "-c", ATTACK, str(self.server.port), str(duration), str(self.TIMEOUT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        harness._track(attack)
        latencies, bad = [], []
        try:
            time.sleep(1.0)  # let the attack ramp up
            t_end = time.monotonic() + 10.0
            for _ in range(400):
                if time.monotonic() >= t_end:
                    break
                t0 = time.monotonic()
                try:
                    conn = self.server.connection(timeout=5)
                    try:
                        r = self.server.price("PROD-101", user, conn=conn, validate=False)
                    finally:
                        conn.close()
                    took = time.monotonic() - t0
                    latencies.append(took)
                    if r.status != 200 or r.body != USER_RE_BODY:
                        bad.append(r)
                except (OSError, http.client.HTTPException) as exc:
                    bad.append(exc)
                time.sleep(0.05)
            out, err = attack.communicate(timeout=duration + 60)
        finally:
            if attack.poll() is None:
                attack.kill()
                attack.wait(10)
            harness._untrack(attack)
        self.assertEqual(attack.returncode, 0, err.decode()[-2000:])
        stats = json.loads(out.decode().strip().splitlines()[-1])
        self.assertEqual(bad, [])
        self.assertGreaterEqual(len(latencies), 50)
        self.assertLess(max(latencies), 1.0, "slowest well-behaved look-up %.3f s" % max(latencies))
        # The attack really ran and was contained.
        self.assertGreater(stats["slow_opened"], 100, stats)
        self.assertGreater(stats["slow_cut"], 50, stats)
        self.assertLess(stats["slow_longest"], self.TIMEOUT + 2.5, stats)
        self.assertGreaterEqual(stats["flood_opened"], 1500, stats)
        self.assertGreater(stats["flood_closed_by_server"], 1000, stats)
        self.assertGreater(stats["smuggle_sent"], 50, stats)
        self.assertEqual(set(stats["smuggle_status"]), {"400"}, stats)
        # Every look-up answered 200 has its record.
        self.assertEqual(len(self.stores.records(user=user)), len(latencies))
        self.assertStatus(self.server.get("/health"), 200)


if __name__ == "__main__":
    unittest.main()
