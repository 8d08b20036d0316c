"""End-to-end harness: real `pricing` processes, real stores, loopback HTTP.

- Stores: a temporary directory with fresh SQLite stores, or the external stores
  named by PX_E2E_PRICE_DB / PX_E2E_AUDIT_STORE (store specs as in CONTRACT §6),
  seeded with `pricing db seed`.
- Server: `pricing serve` on a free loopback port; stdout and stderr are drained
  by threads into files (and memory) so logs can be checked; stopped with
  SIGTERM (exit 0 expected) or SIGKILL. Only the PIDs started here are signalled.
  However it ends, its stderr is scanned for ASan/UBSan/LSan reports and the
  test that stopped it fails on one (run.py sweeps what no test stopped).
- Every HTTP response and every `invoke` response goes through check_response():
  it must match api/openapi.yaml and the invariants every answer shares.
- Audit records are read back with `pricing audit query` (JSON lines), or with
  the command in PX_E2E_AUDIT_READER (given `--user U` / `--product P`, printing
  JSON lines), or with a function assigned to harness.audit_reader.

Environment: PX_E2E_BINARY (set by run.py --binary), PX_TESTDATA,
PX_E2E_PRICE_DB, PX_E2E_AUDIT_STORE, PX_E2E_AUDIT_READER, PX_E2E_KEEP (keep temp dirs).
"""

import atexit
import datetime
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import uuid
from pathlib import Path

import openapi

REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO / "api" / "openapi.yaml"

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

# Settings the suite controls itself; inherited values would change what it checks.
CONFIG_ENV = (
    "PRICE_DB",
    "AUDIT_STORE",
    "TABLE_AUDIT",
    "PRODUCT_STORE",
    "AUDIT_RETENTION_DAYS",
    "LOG_LEVEL",
    "AUDIT_TIMEOUT_MS",
    "AUDIT_CREATE",
    "AUDIT_SIGNING_KEY_FILE",
    "PRICE_TIMEOUT_MS",
    "MAX_CONNECTIONS",
    "CONNECTION_TIMEOUT",
    "SERVER_THREADS",
    "_HANDLER",
    "AWS_LAMBDA_RUNTIME_API",
    "AUTH_MODE",
    "AUTH_JWT_SECRET_FILE",
    "AUTH_JWKS_FILE",
    "AUTH_ISSUER",
    "AUTH_AUDIENCE",
    "AUTH_CLOCK_SKEW_S",
    "RATE_LIMIT_RPS",
    "RATE_LIMIT_BURST",
    "MAX_CONNECTIONS_PER_IP",
    "CORS_ALLOW_ORIGINS",
)

_spec = None
_spec_lock = threading.Lock()


def spec():
    global _spec
    with _spec_lock:
        if _spec is None:
            _spec = openapi.Spec(SPEC_PATH)
        return _spec


def binary():
    b = os.environ.get("PX_E2E_BINARY")
    if b:
        return str(Path(b).resolve())
    for cand in ("build", "build-e2e", "build-asan"):
        p = REPO / cand / "pricing"
        if p.exists():
            return str(p)
    raise RuntimeError("no pricing binary: pass --binary or set PX_E2E_BINARY")


_sanitized = None


def sanitized():
    """True when the binary under test is built with AddressSanitizer: its
    allocator keeps freed memory in quarantine, so RSS says nothing of leaks
    there (LeakSanitizer checks them at exit instead)."""
    global _sanitized
    if _sanitized is None:
        with open(binary(), "rb") as fp:
            _sanitized = b"__asan_init" in fp.read()
    return _sanitized


def testdata_dir():
    d = os.environ.get("PX_TESTDATA")
    return Path(d) if d else (REPO / "tests" / "data")


def new_user():
    return str(uuid.uuid4())


def parse_ts(ts):
    """RFC 3339 with milliseconds and Z -> aware datetime."""
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc
    )


def now_ts(offset_s=0.0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def base_env(extra=None):
    env = dict(os.environ)
    for k in CONFIG_ENV:
        env.pop(k, None)
    if extra:
        env.update(extra)
    return env


# ---------------------------------------------------------------- processes

_live = {}  # pid -> Popen, only processes this module started
_live_lock = threading.Lock()
_servers = []  # Servers whose current run is not yet scanned, for sweep_servers()


def _track(p):
    with _live_lock:
        _live[p.pid] = p


def _untrack(p):
    with _live_lock:
        _live.pop(p.pid, None)


def sweep_servers(servers=None):
    """After the run: kills the servers still running and scans every run not
    yet scanned (a test that signalled the process itself and never called
    stop or kill). Returns one report string per server with a sanitizer report."""
    reports = []
    for srv in list(_servers if servers is None else servers):
        try:
            srv.kill()
        except AssertionError as e:
            reports.append(str(e))
    return reports


@atexit.register
def _kill_leftovers():
    with _live_lock:
        procs = list(_live.values())
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


class Result:
    def __init__(self, rc, stdout, stderr):
        self.rc = rc
        self.returncode = rc
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self):
        return "rc=%r stdout=%r stderr=%r" % (self.rc, self.stdout[-600:], self.stderr[-600:])


SANITIZER_RE = re.compile(r"(ERROR: \w+Sanitizer|runtime error:|LeakSanitizer)")


_scratch = None


def scratch_dir():
    """A per-process working directory, so nothing lands in the source tree."""
    global _scratch
    if _scratch is None:
        _scratch = tempfile.mkdtemp(prefix="px-e2e-cwd-")
        if not os.environ.get("PX_E2E_KEEP"):
            atexit.register(shutil.rmtree, _scratch, True)
    return _scratch


def run_cli(args, env=None, stdin=None, timeout=60):
    """Runs the binary with args; returns Result (text). stdin: str or bytes."""
    if isinstance(stdin, str):
        stdin = stdin.encode()
    p = subprocess.Popen(
        [binary()] + list(args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=base_env(env),
        cwd=scratch_dir(),
    )
    _track(p)
    try:
        out, err = p.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        _untrack(p)
        raise AssertionError("pricing %s: no exit within %ss" % (" ".join(args), timeout))
    _untrack(p)
    r = Result(p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    if SANITIZER_RE.search(r.stderr):
        raise AssertionError("sanitizer report from pricing %s:\n%s" % (" ".join(args), r.stderr))
    return r


# ---------------------------------------------------------------- stores

_seeded_external = set()
_run_tmp = None


def _run_dir():
    """A directory for the whole run (the product store beside external stores)."""
    global _run_tmp
    if _run_tmp is None:
        _run_tmp = Path(tempfile.mkdtemp(prefix="px-e2e-run-"))
        if not os.environ.get("PX_E2E_KEEP"):
            atexit.register(shutil.rmtree, str(_run_tmp), True)
    return _run_tmp


def _sqlite_path(spec_s):
    if spec_s.startswith("sqlite:"):
        return Path(spec_s[len("sqlite:"):])
    return None


def _default_audit_reader(stores, user=None, product=None, from_=None, to=None, limit=1000):
    cmd = os.environ.get("PX_E2E_AUDIT_READER")
    args = []
    if user is not None:
        args += ["--user", user]
    if product is not None:
        args += ["--product", product]
    if from_ is not None:
        args += ["--from", from_]
    if to is not None:
        args += ["--to", to]
    args += ["--limit", str(limit)]
    env = {"AUDIT_STORE": stores.audit_store, "PRICE_DB": stores.price_db}
    if cmd:
        p = subprocess.run(
            shlex.split(cmd) + args, capture_output=True, env=base_env(env), timeout=120
        )
        r = Result(p.returncode, p.stdout.decode(), p.stderr.decode())
    else:
        r = run_cli(["audit", "query"] + args, env=env, timeout=120)
    if r.rc != 0:
        raise AssertionError("audit query failed: %r" % r)
    records = []
    for line in r.stdout.splitlines():
        if line.strip():
            records.append(json.loads(line))
    return records


# Replaceable: f(stores, user=, product=, from_=, to=, limit=) -> list of records.
audit_reader = _default_audit_reader


class Stores:
    """A price store and an audit store, seeded."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="px-e2e-"))
        self.price_db = os.environ.get("PX_E2E_PRICE_DB") or "sqlite:%s" % (self.dir / "prices.db")
        self.audit_store = os.environ.get("PX_E2E_AUDIT_STORE") or "sqlite:%s" % (
            self.dir / "audit.db"
        )
        self.external = bool(os.environ.get("PX_E2E_PRICE_DB") or os.environ.get("PX_E2E_AUDIT_STORE"))
        # External stores are seeded once per run: the catalogue that matches
        # their prices is then one per run too.
        self.product_store = os.environ.get("PX_E2E_PRODUCT_STORE") or "sqlite:%s" % (
            (_run_dir() if self.external else self.dir) / "products.db"
        )
        self.config_store = os.environ.get("PX_E2E_CONFIG_STORE") or "sqlite:%s" % (
            (_run_dir() if self.external else self.dir) / "config.db"
        )

    @property
    def audit_sqlite(self):
        return _sqlite_path(self.audit_store)

    @property
    def price_sqlite(self):
        return _sqlite_path(self.price_db)

    def flags(self):
        return ["--price-db", self.price_db, "--audit-store", self.audit_store,
                "--product-store", self.product_store, "--config-store", self.config_store]

    def env(self):
        return {"PRICE_DB": self.price_db, "AUDIT_STORE": self.audit_store,
                "PRODUCT_STORE": self.product_store, "CONFIG_STORE": self.config_store}

    def seed(self):
        key = (self.price_db, self.audit_store, self.product_store, self.config_store)
        if self.external and key in _seeded_external:
            return
        r = run_cli(["db", "seed"] + self.flags(), timeout=300)
        if r.rc != 0:
            raise AssertionError("pricing db seed failed: %r" % r)
        if self.external:
            _seeded_external.add(key)

    def records(self, user=None, product=None, from_=None, to=None, limit=1000):
        return audit_reader(self, user=user, product=product, from_=from_, to=to, limit=limit)

    def all_records(self, user=None, product=None):
        """Every record, paging with --from (inclusive, so the boundary repeats)."""
        out, seen, since = [], set(), None
        for _ in range(10000):
            page = self.records(user=user, product=product, from_=since, limit=1000)
            fresh = [x for x in page if x["sk"] not in seen]
            for x in fresh:
                seen.add(x["sk"])
            out += fresh
            if len(page) < 1000 or not fresh:
                return out
            since = page[-1]["ts"]
        raise AssertionError("audit trail too long to read")

    def cleanup(self):
        if os.environ.get("PX_E2E_KEEP"):
            return
        shutil.rmtree(str(self.dir), ignore_errors=True)


# ---------------------------------------------------------------- responses


class Response:
    def __init__(self, method, target, status, reason, headers, body):
        self.method = method
        self.target = target
        self.status = status
        self.reason = reason
        self.header_list = headers
        self.headers = {}
        for k, v in headers:
            k = k.lower()
            self.headers[k] = v if k not in self.headers else self.headers[k] + ", " + v
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def text(self):
        return self.body.decode("utf-8")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def request_id(self):
        return self.header("x-request-id")

    def error_fields(self):
        d = self.json()["error"].get("details", [])
        return [x["field"] for x in d]

    def __repr__(self):
        return "<%s %s -> %s %r>" % (self.method, self.target, self.status, self.body[:300])


def check_response(method, path, status, headers, body):
    """The checks every answer gets, whatever the way in. headers: lower-case dict."""
    spec().validate(method, path, status, headers, body)
    ctype = headers.get("content-type", "")
    # OFREP's evaluation errors have the protocol's own shape (no "error" object).
    ofrep_shape = path.startswith("/ofrep/") and b'"error"' not in body[:10]
    if ctype.split(";")[0].strip() == "application/json" and status >= 400 and not ofrep_shape:
        doc = json.loads(body.decode("utf-8"))
        rid = doc["error"]["requestId"]
        if rid != headers.get("x-request-id"):
            raise openapi.SpecError(
                "%s %s -> %s: error.requestId %r != X-Request-Id %r"
                % (method, path, status, rid, headers.get("x-request-id"))
            )


def _path_of(target):
    return target.split("?", 1)[0]


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class _Drain(threading.Thread):
    """Copies a pipe into a file and memory (a pipe is immune to RLIMIT_FSIZE)."""

    def __init__(self, pipe, path):
        super().__init__(daemon=True)
        self.pipe = pipe
        self.path = path
        self.data = bytearray()
        self.lock = threading.Lock()

    def run(self):
        with open(self.path, "ab") as f:
            while True:
                chunk = self.pipe.read1(65536)
                if not chunk:
                    break
                f.write(chunk)
                f.flush()
                with self.lock:
                    self.data += chunk

    def text(self):
        with self.lock:
            return bytes(self.data).decode("utf-8", "replace")


class Server:
    """One `pricing serve` process on a free loopback port."""

    def __init__(self, stores, env=None, args=()):
        self.stores = stores
        self.env = dict(env or {})
        self.args = list(args)
        self.proc = None
        self.port = None
        self.runs = 0
        self._checked = True  # the current run's stderr was scanned for sanitizer reports

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=30):
        if not self._checked and self.proc is not None and self.proc.poll() is not None:
            self._join()
            self._check_sanitizers()  # the run before, stopped by the test itself
        if self not in _servers:
            _servers.append(self)
        last = None
        for _ in range(3):
            self.port = free_port()
            self.runs += 1
            d = self.stores.dir
            self.log_path = d / ("serve-%d.stdout.log" % self.runs)
            self.err_path = d / ("serve-%d.stderr.log" % self.runs)
            cmd = [binary(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
            cmd += self.stores.flags() + self.args
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=base_env(self.env),
                cwd=str(self.stores.dir),
            )
            _track(self.proc)
            self._checked = False
            self._out = _Drain(self.proc.stdout, self.log_path)
            self._err = _Drain(self.proc.stderr, self.err_path)
            self._out.start()
            self._err.start()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    r = self.request("GET", "/health", timeout=2, validate=False)
                    if r.status == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError("pricing serve: /health not 200 within %ss" % timeout)
            self._join()
            _untrack(self.proc)
            self._check_sanitizers()
            last = self.stderr()
            if "in use" not in last.lower():
                break
        raise AssertionError(
            "pricing serve exited at start-up (rc %s): %s" % (self.proc.returncode, last)
        )

    def _join(self):
        self._out.join(10)
        self._err.join(10)

    def _check_sanitizers(self):
        """Fails the calling test when the stopped server's stderr holds an
        ASan, UBSan or LSan report; once per run, so a stop followed by a kill
        in a finally block does not report it twice."""
        if self._checked:
            return
        self._checked = True
        if self in _servers:
            _servers.remove(self)
        err = self.stderr()
        m = SANITIZER_RE.search(err)
        if m:
            raise AssertionError(
                "sanitizer report from pricing serve (pid %d):\n%s"
                % (self.proc.pid, err[max(0, m.start() - 200):][:6000])
            )

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code. Raises AssertionError on a
        sanitizer report, also when the process had already exited."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self._join()
            _untrack(self.proc)
            self._check_sanitizers()
            return self.proc.returncode
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("pricing serve did not exit within %ss of SIGTERM" % timeout)
        self._join()
        _untrack(self.proc)
        self._check_sanitizers()
        return rc

    def stop_ok(self, timeout=30):
        rc = self.stop(timeout)
        if rc != 0:
            raise AssertionError(
                "pricing serve exit %r after SIGTERM; stderr: %s" % (rc, self.stderr()[-2000:])
            )

    def kill(self):
        """SIGKILL (when still running) and wait. Raises AssertionError on a
        sanitizer report printed before the kill, or at an exit of its own."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.proc is not None:
            self._join()
            _untrack(self.proc)
            self._check_sanitizers()

    def stdout(self):
        return self._out.text()

    def stderr(self):
        return self._err.text()

    def log_lines(self):
        return [l for l in self.stdout().splitlines() if l.strip()]

    # -------------------------------------------------------- HTTP

    def connection(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, target, headers=None, body=None, conn=None, timeout=30, validate=True):
        """One request; a new connection unless conn is given. Validates the answer."""
        own = conn is None
        c = self.connection(timeout) if own else conn
        try:
            c.request(method, target, body=body, headers=headers or {})
            return self.receive(c, method, target, validate)
        finally:
            if own:
                c.close()

    def receive(self, conn, method, target, validate=True):
        """Reads the answer to a request already sent on conn, and validates it."""
        r = conn.getresponse()
        data = r.read()
        resp = Response(method, target, r.status, r.reason, r.getheaders(), data)
        if validate:
            check_response(method, _path_of(target), resp.status, resp.headers, resp.body)
        return resp

    def get(self, target, **kw):
        return self.request("GET", target, **kw)

    def price(self, product, user, headers=None, **kw):
        q = "id=%s&userId=%s" % (_quote(product), _quote(user))
        return self.request("GET", "/price?" + q, headers=headers, **kw)


def _quote(s):
    from urllib.parse import quote

    return quote(s, safe="-")


def parse_invoke(out):
    """The one JSON line `pricing invoke` prints -> (doc, lower-case headers, body bytes)."""
    lines = [l for l in out.splitlines() if l.strip()]
    if len(lines) != 1:
        raise AssertionError("invoke printed %d lines, want 1: %r" % (len(lines), out[:500]))
    doc = json.loads(lines[0])
    headers = {}
    for k, v in (doc.get("headers") or {}).items():
        headers[k.lower()] = v
    for k, vs in (doc.get("multiValueHeaders") or {}).items():
        headers.setdefault(k.lower(), ", ".join(vs))
    body = doc.get("body") or ""
    if doc.get("isBase64Encoded"):
        import base64

        body = base64.b64decode(body)
    else:
        body = body.encode("utf-8")
    return doc, headers, body


def check_invoke(out, method, path):
    doc, headers, body = parse_invoke(out)
    if not isinstance(doc.get("statusCode"), int):
        raise AssertionError("statusCode missing or not an integer: %r" % doc)
    check_response(method, path, doc["statusCode"], headers, body)
    return doc, headers, body


def event_method_path(ev):
    """(method, path) of an API Gateway 1.0 or 2.0 event."""
    if ev.get("version") == "2.0":
        h = ev["requestContext"]["http"]
        return h["method"], ev.get("rawPath") or h["path"]
    return ev["httpMethod"], ev["path"]


# ---------------------------------------------------------------- test bases


class StoresCase(unittest.TestCase):
    """One seeded store pair for the whole class, no server."""

    @classmethod
    def setUpClass(cls):
        cls.stores = Stores()
        try:
            cls.stores.seed()
        except BaseException:
            cls.stores.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stores.cleanup()


class ServerCase(unittest.TestCase):
    """One seeded store pair and one server for the whole class."""

    server_env = None
    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.stores = Stores()
        try:
            cls.stores.seed()
            cls.server = Server(cls.stores, env=cls.server_env, args=cls.server_args)
            cls.server.start()
        except BaseException:
            cls.stores.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server.running():
                cls.server.stop_ok()
            else:
                cls.server.kill()  # exited already (or a test stopped it): still scan its stderr
        finally:
            cls.stores.cleanup()

    def assertStatus(self, resp, status):
        self.assertEqual(resp.status, status, "%r" % resp)
