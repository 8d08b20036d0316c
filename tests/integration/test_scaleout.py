#!/usr/bin/python3
"""Scale-out: two `pricing serve` processes sharing their stores, under load on both.

1. PostgreSQL (prices) + dynalite (audit): a throw-away cluster (scripts/pg.sh) and
   dynalite (scripts/dynalite.sh), each in a temporary directory, shared by two
   `pricing serve` processes on different ports. The audit records are read back with
   the AWS CLI from Debian (`/usr/bin/aws dynamodb scan --consistent-read`).
2. One embedded SQLite price file and one SQLite audit file shared by two processes.
   After both stopped, the file is opened with Python's sqlite3 module:
   `PRAGMA integrity_check` must say ok.
3. One write-optimized audit directory (`lsm:`) shared by two processes: each claims
   its own sub-store; the records are read back per user with `pricing audit query`.

In each scenario CLIENTS threads per server send look-ups (keep-alive, a few known
products and one unknown, a small pool of fresh users) for SECONDS, all at once. The
X-Request-Id of every 200 and 404 is collected; then every one of them must have
exactly one audit record, with the user, product and status of the look-up, and the
number of records must equal the number of answers (no record without an answer).
Any other status, a client error, or a server that does not stop cleanly fails.

Usage: test_scaleout.py [--binary build/pricing] [--seconds 3] [--clients 8]
       [-k pg|sqlite|lsm]   (default: every scenario)
Prints one line per check and "N passed, N failed"; exits non-zero on failure.
Only processes started here are signalled, by PID.
"""
import argparse
import collections
import http.client
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Tally, free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
AWS = os.environ.get("PX_AWS_CLI", "/usr/bin/aws")  # Debian's AWS CLI v2, not PATH's
TABLE = "audit_scaleout"
PRODUCTS = ["PROD-101", "PROD-102", "PROD-103", "PROD-104", "PROD-105", "PROD-NOPE-SCALE"]
USERS = 12  # fresh per scenario
MAX_PER_THREAD = 20000  # look-ups per client thread, whatever the time says
SANITIZER_RE = re.compile(r"(ERROR: \w+Sanitizer|runtime error:|LeakSanitizer)")
CONFIG_ENV = ("PRICE_DB", "AUDIT_STORE", "TABLE_AUDIT", "AUDIT_RETENTION_DAYS", "LOG_LEVEL",
              "AUDIT_TIMEOUT_MS", "PRICE_TIMEOUT_MS", "MAX_CONNECTIONS", "CONNECTION_TIMEOUT",
              "SERVER_THREADS", "_HANDLER", "AWS_LAMBDA_RUNTIME_API", "AUTH_MODE",
              "RATE_LIMIT_RPS", "RATE_LIMIT_BURST", "MAX_CONNECTIONS_PER_IP")

TALLY = Tally(2000)
check = TALLY.check
started = []  # Popen objects of every `pricing serve` started here


def script(name, *args, timeout=90):
    r = subprocess.run([str(REPO / "scripts" / name)] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("%s %s: %s" % (name, " ".join(map(str, args)), r.stderr.strip()))
    return r.stdout.strip()


class Stores:
    """Store specs plus the environment both processes and the seeder get."""

    def __init__(self, work, price_db, audit_store, extra_env=None):
        self.work = work
        self.price_db = price_db
        self.audit_store = audit_store
        self.extra_env = dict(extra_env or {})

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if k not in CONFIG_ENV}
        if self.extra_env:  # DynamoDB: only our dummy AWS settings, nothing inherited
            env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
        env.update(self.extra_env)
        env.update(extra)
        return env

    def seed(self, binary):
        r = subprocess.run([binary, "db", "seed", "--price-db", self.price_db,
                            "--audit-store", self.audit_store],
                           capture_output=True, text=True, timeout=120, cwd=self.work,
                           env=self.env())
        if r.returncode != 0 or SANITIZER_RE.search(r.stderr):
            raise RuntimeError("pricing db seed: rc %d: %s" % (r.returncode, r.stderr[-2000:]))


class Serve:
    def __init__(self, binary, stores, name):
        self.binary = binary
        self.stores = stores
        self.name = name
        self.proc = None
        self.port = None

    def start(self):
        for _ in range(3):
            self.port = free_port()
            self.log_path = Path(self.stores.work, "%s.log" % self.name)
            self.log = open(self.log_path, "ab")
            # Generous audit bound: this test is about counting records, not latency on
            # a shared 2-core machine.
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--price-db", self.stores.price_db, "--audit-store", self.stores.audit_store],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                cwd=self.stores.work,
                env=self.stores.env(AUDIT_TIMEOUT_MS="10000", PRICE_TIMEOUT_MS="10000",
                                    LOG_LEVEL="warn"))
            started.append(self.proc)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if get(self.port, "/health", timeout=2)[0] == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.kill()
                raise RuntimeError("%s: /health not 200 within 30 s" % self.name)
            self.log.close()
            if "in use" not in self.output().lower():
                break
        raise RuntimeError("%s exited at start-up: %s" % (self.name, self.output()))

    def output(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        """SIGTERM, wait; returns the exit code (None when it had to be killed)."""
        p = self.proc
        if p is None:
            return None
        rc = p.poll()
        if rc is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                rc = p.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
                rc = None
        self.log.close()
        return rc

    def kill(self):
        p = self.proc
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)


def get(port, target, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", target)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def load(servers, users, seconds, clients):
    """CLIENTS threads per server for SECONDS; returns (answers, others, errors).

    answers: [(server, request id, user, product, status)] for every 200 and 404.
    """
    answers, others, errors = [], [], []
    lock = threading.Lock()
    barrier = threading.Barrier(len(servers) * clients, timeout=30)

    def client(si, port, seed):
        mine, odd, errs = [], [], []
        rnd = random.Random(seed)
        conn = None
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline and n < MAX_PER_THREAD:
            n += 1
            user, product = rnd.choice(users), rnd.choice(PRODUCTS)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/price?id=%s&userId=%s" % (product, user))
                r = conn.getresponse()
                body = r.read()
                rid = r.getheader("X-Request-Id")
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                errs.append((si, repr(e)))
                if conn is not None:
                    conn.close()
                    conn = None
                if len(errs) > 20:
                    break
                continue
            want = 404 if "NOPE" in product else 200
            if r.status == want and rid:
                if want == 200:
                    doc = json.loads(body)
                    if doc.get("productId") != product or doc.get("price") is None:
                        odd.append((si, r.status, body[:200]))
                        continue
                mine.append((si, rid, user, product, r.status))
            else:
                odd.append((si, r.status, body[:200]))
        if conn is not None:
            conn.close()
        with lock:
            answers.extend(mine)
            others.extend(odd)
            errors.extend(errs)

    threads = []
    for si, s in enumerate(servers):
        for k in range(clients):
            threads.append(threading.Thread(target=client, args=(si, s.port, si * 1000 + k),
                                            daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    alive = sum(t.is_alive() for t in threads)
    if alive:
        errors.append((-1, "%d client threads still running" % alive))
    return answers, others, errors


def verify(what, servers, answers, others, errors, records, seconds):
    """records: [dict with requestId, userId, productId, status]."""
    per = collections.Counter(a[0] for a in answers)
    print("# %s: %d answers in %.0f s (%s), %d audit records" % (
        what, len(answers), seconds,
        ", ".join("%s %d" % (s.name, per[i]) for i, s in enumerate(servers)), len(records)),
        flush=True)
    check("%s: both processes answered look-ups" % what,
          all(per[i] > 0 for i in range(len(servers))), dict(per))
    check("%s: every answer is 200 (known product, with its price) or 404 (unknown)" % what,
          not others, others[:5])
    check("%s: no client errors" % what, not errors, errors[:5])
    rids = [a[1] for a in answers]
    check("%s: request ids unique across both processes" % what, len(set(rids)) == len(rids),
          [r for r, n in collections.Counter(rids).items() if n > 1][:5])
    stored = collections.Counter(r["requestId"] for r in records)
    missing = [r for r in rids if stored[r] == 0]
    doubled = [r for r in rids if stored[r] > 1]
    check("%s: every answered look-up has its audit record" % what, not missing,
          "%d missing, e.g. %s" % (len(missing), missing[:5]))
    check("%s: no look-up has more than one record" % what, not doubled,
          "%d doubled, e.g. %s" % (len(doubled), doubled[:5]))
    answered = set(rids)
    extra = [r["requestId"] for r in records if r["requestId"] not in answered]
    check("%s: records (%d) = answers (%d), no record without an answer" % (
        what, len(records), len(answers)), len(records) == len(answers) and not extra,
        "extra: %s" % extra[:5])
    by_rid = {r["requestId"]: r for r in records}
    wrong = []
    for _, rid, user, product, status in answers:
        r = by_rid.get(rid)
        if r is None:
            continue
        want = "SUCCESS" if status == 200 else "NOT_FOUND"
        if (r["userId"], r["productId"], r["status"]) != (user, product, want):
            wrong.append((rid, r))
    check("%s: each record carries the user, product and status of its look-up" % what,
          not wrong, wrong[:3])


def stop_all(what, servers):
    for s in servers:
        rc = s.stop()
        out = s.output()
        s.scanned = True
        check("%s: %s stops cleanly on SIGTERM (exit %r)" % (what, s.name, rc),
              rc == 0 and not SANITIZER_RE.search(out), out[-2000:])


def kill_all(what, servers):
    """SIGKILL what a failed scenario left running; their output is still
    scanned for sanitizer reports (stop_all did it for the others)."""
    for s in servers:
        s.kill()
        if not getattr(s, "scanned", False):
            out = s.output()
            m = SANITIZER_RE.search(out)
            check("%s: %s: no sanitizer report" % (what, s.name), not m,
                  out[m.start():] if m else "")


# ------------------------------------------------------------------ scenarios


def scenario_pg_dynamodb(binary, seconds, clients):
    what = "pg+dynalite"
    pgdir = tempfile.mkdtemp(prefix="pxso-pg-")  # private; pg.sh hands it to postgres
    work = tempfile.mkdtemp(prefix="pxso-")
    ddir = os.path.join(work, "dynalite")
    servers = []
    ok = False
    try:
        script("pg.sh", "start", pgdir)
        uri = Path(pgdir, "uri").read_text().strip()
        endpoint = script("dynalite.sh", "start", ddir)
        aws_env = {
            "AWS_ACCESS_KEY_ID": "AKIDSCALEOUTTEST", "AWS_SECRET_ACCESS_KEY": "scaleout/secret",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_PAGER": "",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        stores = Stores(work, uri, "dynamodb:" + TABLE, aws_env)
        stores.seed(binary)
        servers = [Serve(binary, stores, "serve-a").start(), Serve(binary, stores, "serve-b").start()]
        users = [str(uuid.uuid4()) for _ in range(USERS)]
        t0 = time.monotonic()
        answers, others, errors = load(servers, users, seconds, clients)
        took = time.monotonic() - t0
        stop_all(what, servers)
        r = subprocess.run([AWS, "dynamodb", "scan", "--table-name", TABLE, "--consistent-read",
                            "--endpoint-url", endpoint, "--region", "us-east-1",
                            "--output", "json"],
                           capture_output=True, text=True, timeout=180, env=stores.env())
        if not check("%s: aws dynamodb scan" % what, r.returncode == 0, r.stderr):
            return
        items = json.loads(r.stdout)["Items"]
        records = [{k: (v["S"] if "S" in v else v.get("N")) for k, v in it.items()}
                   for it in items]
        bad = [x for x in records
               if x.get("pk") != "USER#" + x.get("userId", "")
               or x.get("sk") != "AUDIT#%s#%s" % (x.get("ts"), x.get("requestId"))]
        check("%s: keys of every record (pk, sk) as CONTRACT §5" % what, not bad, bad[:3])
        verify(what, servers, answers, others, errors, records, took)
        ok = True
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
        check("%s: scenario ran" % what, False, e)
    finally:
        kill_all(what, servers)
        for args in (("dynalite.sh", "stop", ddir), ("pg.sh", "destroy", pgdir)):
            try:
                script(*args)
            except (RuntimeError, subprocess.SubprocessError) as e:
                print("cleanup: %s" % e, file=sys.stderr)
        shutil.rmtree(pgdir, ignore_errors=True)
        keep(work, ok)


def scenario_sqlite(binary, seconds, clients):
    what = "shared sqlite"
    work = tempfile.mkdtemp(prefix="pxso-")
    audit = os.path.join(work, "audit.db")
    servers = []
    ok = False
    try:
        stores = Stores(work, "sqlite:" + os.path.join(work, "prices.db"), "sqlite:" + audit)
        stores.seed(binary)
        servers = [Serve(binary, stores, "serve-a").start(), Serve(binary, stores, "serve-b").start()]
        users = [str(uuid.uuid4()) for _ in range(USERS)]
        t0 = time.monotonic()
        answers, others, errors = load(servers, users, seconds, clients)
        took = time.monotonic() - t0
        stop_all(what, servers)
        db = sqlite3.connect("file:%s?mode=ro" % audit, uri=True, timeout=10)
        try:
            integrity = [r[0] for r in db.execute("PRAGMA integrity_check")]
            check("%s: PRAGMA integrity_check" % what, integrity == ["ok"], integrity[:10])
            rows = db.execute("SELECT request_id, user_id, product_id, status, pk, sk, ts "
                              "FROM audit").fetchall()
        finally:
            db.close()
        records = [{"requestId": r[0], "userId": r[1], "productId": r[2], "status": r[3],
                    "pk": r[4], "sk": r[5], "ts": r[6]} for r in rows]
        bad = [x for x in records if x["pk"] != "USER#" + x["userId"]
               or x["sk"] != "AUDIT#%s#%s" % (x["ts"], x["requestId"])]
        check("%s: keys of every record (pk, sk) as CONTRACT §5" % what, not bad, bad[:3])
        verify(what, servers, answers, others, errors, records, took)
        ok = True
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError, sqlite3.Error) as e:
        check("%s: scenario ran" % what, False, e)
    finally:
        kill_all(what, servers)
        keep(work, ok)


def audit_query_all(binary, audit_store, user):
    """Every record of one user through `pricing audit query`, following the cursor."""
    records, cursor = [], None
    for _ in range(1000):  # bound: 1,000 pages of 1,000
        args = [binary, "audit", "query", "--audit-store", audit_store, "--user", user,
                "--limit", "1000"]
        if cursor:
            args += ["--cursor", cursor]
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("audit query: %s" % p.stderr.strip())
        records += [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        m = re.search(r"^next cursor: (\S+)$", p.stderr, re.M)
        if not m:
            return records
        cursor = m.group(1)
    raise RuntimeError("audit query: more than 1,000 pages")


def scenario_lsm(binary, seconds, clients):
    """Two servers on one lsm: directory: each claims its own sub-store, and a
    query reads them all."""
    what = "shared lsm"
    work = tempfile.mkdtemp(prefix="pxso-")
    audit_store = "lsm:" + os.path.join(work, "audit-lsm")
    servers = []
    ok = False
    try:
        stores = Stores(work, "sqlite:" + os.path.join(work, "prices.db"), audit_store)
        stores.seed(binary)
        servers = [Serve(binary, stores, "serve-a").start(), Serve(binary, stores, "serve-b").start()]
        users = [str(uuid.uuid4()) for _ in range(USERS)]
        t0 = time.monotonic()
        answers, others, errors = load(servers, users, seconds, clients)
        took = time.monotonic() - t0
        stop_all(what, servers)
        subs = sorted(d for d in os.listdir(os.path.join(work, "audit-lsm")) if d.startswith("w-"))
        check("%s: one sub-store per writer process" % what, len(subs) >= 2, subs)
        records = []
        for u in users:
            records += audit_query_all(binary, audit_store, u)
        bad = [x for x in records if x["pk"] != "USER#" + x["userId"]
               or x["sk"] != "AUDIT#%s#%s" % (x["ts"], x["requestId"])]
        check("%s: keys of every record (pk, sk) as CONTRACT §5" % what, not bad, bad[:3])
        verify(what, servers, answers, others, errors, records, took)
        ok = True
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
        check("%s: scenario ran" % what, False, e)
    finally:
        kill_all(what, servers)
        keep(work, ok)


def keep(work, ok):
    if ok and TALLY.failed == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("# logs kept in %s" % work, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.environ.get("PX_PRICING_BIN",
                                                       str(REPO / "build" / "pricing")))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--clients", type=int, default=8, help="client threads per server")
    ap.add_argument("-k", action="append", choices=("pg", "sqlite", "lsm"), default=[])
    a = ap.parse_args()
    if not 0 < a.seconds <= 60 or not 1 <= a.clients <= 64:
        ap.error("--seconds 0..60, --clients 1..64")
    binary = str(Path(a.binary).resolve())
    if not os.access(binary, os.X_OK):
        print("test_scaleout: %s is not an executable (build first)" % binary, file=sys.stderr)
        print("0 passed, 1 failed")
        return 2
    which = a.k or ["pg", "sqlite", "lsm"]
    try:
        if "pg" in which:
            if not os.path.exists(REPO / "node_modules" / "dynalite" / "cli.js"):
                check("pg+dynalite: dynalite installed (npm ci)", False)
            elif not os.access(AWS, os.X_OK):
                check("pg+dynalite: %s installed" % AWS, False)
            else:
                scenario_pg_dynamodb(binary, a.seconds, a.clients)
        if "sqlite" in which:
            scenario_sqlite(binary, a.seconds, a.clients)
        if "lsm" in which:
            scenario_lsm(binary, a.seconds, a.clients)
    finally:
        for p in started:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
    print(TALLY.summary())
    return 1 if TALLY.failed else 0


if __name__ == "__main__":
    sys.exit(main())
