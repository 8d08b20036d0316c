#!/usr/bin/python3
"""PostgreSQL price store against the real binary and a throw-away cluster.

Starts PostgreSQL with scripts/pg.sh in a temporary directory, then:
- `pricing db seed` twice (idempotent), and two seeders racing on an empty database;
- `pricing db migrate` then `db seed` by a copy of the binary run from an empty
  directory (migrations and sample prices are built in), and `--seed-file`;
- `pricing invoke price-fetcher` -> 200 with 99.99;
- `pricing serve`: exact prices (100.00, 0.5), 404, injection strings -> 400;
- faults without restarting `pricing`: PostgreSQL stopped -> 503 DEPENDENCY_UNAVAILABLE
  within the bound, started again on the same port -> 200; PostgreSQL frozen with
  SIGSTOP -> bounded 503, SIGCONT -> 200.

Usage: tests/integration/test_pg.py [--binary build/pricing] [-k PATTERN ...]
(or PX_PRICING_BIN). Needs /usr/lib/postgresql/15/bin. Only processes started
here are signalled, by PID.
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, run_unittest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# Migrations built into the binary (infra/sql/NNN_name.sql): one schema_migrations row each.
MIGRATIONS = len(list((REPO / "infra" / "sql").glob("[0-9][0-9][0-9]_*.sql")))
PG_SH = REPO / "scripts" / "pg.sh"
PRICE_TIMEOUT_MS = 1000
BOUND_S = 3.0  # a look-up while PostgreSQL is away answers within this
RECOVER_S = 15.0  # and answers 200 again within this once it is back

BINARY = os.environ.get("PX_PRICING_BIN")
SANITIZER_RE = re.compile(r"(ERROR: \w+Sanitizer|runtime error:|LeakSanitizer)")


def binary():
    if BINARY:
        return str(Path(BINARY).resolve())
    for cand in ("build", "build-pg", "build-asan"):
        p = REPO / cand / "pricing"
        if p.exists():
            return str(p)
    raise RuntimeError("no pricing binary: pass --binary or set PX_PRICING_BIN")


def pg(*args, timeout=60):
    r = subprocess.run(
        [str(PG_SH)] + [str(a) for a in args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )
    if r.returncode != 0:
        raise AssertionError("pg.sh %s failed: %s" % (" ".join(map(str, args)), r.stderr))
    return r.stdout


def clean_env(extra):
    env = dict(os.environ)
    for k in ("PRICE_DB", "AUDIT_STORE", "TABLE_AUDIT", "PRODUCT_STORE", "TABLE_PRODUCTS", "PRICE_TIMEOUT_MS", "AUDIT_TIMEOUT_MS",
              "LOG_LEVEL", "SERVER_THREADS", "_HANDLER", "AWS_LAMBDA_RUNTIME_API"):
        env.pop(k, None)
    env.update(extra)
    return env


class PgTest(unittest.TestCase):
    serve = None

    @classmethod
    def setUpClass(cls):
        # mkdtemp gives a private directory; pg.sh hands it to the postgres user.
        cls.pgdir = tempfile.mkdtemp(prefix="pxpg-")
        cls.work = tempfile.mkdtemp(prefix="pxpg-work-")
        try:
            pg("start", cls.pgdir)
            cls.uri = Path(cls.pgdir, "uri").read_text().strip()
            cls.password = cls.uri.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
            cls.audit = "sqlite:%s/audit.db" % cls.work
            for _ in range(2):
                r = cls.cli(["db", "seed", "--price-db", cls.uri])
                if r.returncode != 0:
                    raise AssertionError("db seed failed: %s" % r.stderr)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.stop_serve()
            pg("destroy", cls.pgdir)
        finally:
            shutil.rmtree(cls.work, ignore_errors=True)
            shutil.rmtree(cls.pgdir, ignore_errors=True)

    @classmethod
    def cli(cls, args, env=None, timeout=60):
        r = subprocess.run(
            [binary()] + args + ["--audit-store", cls.audit],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
            cwd=cls.work,
            env=clean_env(env or {}),
        )
        if SANITIZER_RE.search(r.stderr):
            raise AssertionError("sanitizer report from pricing %s:\n%s" % (args, r.stderr))
        return r

    # ------------------------------------------------------------ serve

    @classmethod
    def start_serve(cls):
        cls.port = free_port()
        cls.serve_log = open(Path(cls.work, "serve.log"), "wb")
        cls.serve = subprocess.Popen(
            [binary(), "serve", "--host", "127.0.0.1", "--port", str(cls.port),
             "--price-db", cls.uri, "--audit-store", cls.audit],
            stdin=subprocess.DEVNULL,
            stdout=cls.serve_log,
            stderr=subprocess.STDOUT,
            cwd=cls.work,
            env=clean_env({"PRICE_TIMEOUT_MS": str(PRICE_TIMEOUT_MS), "SERVER_THREADS": "4"}),
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if cls.serve.poll() is not None:
                raise AssertionError("pricing serve exited: %s" % cls.serve_output())
            try:
                if cls.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("pricing serve did not come up: %s" % cls.serve_output())

    @classmethod
    def stop_serve(cls):
        """SIGTERM; returns the exit status (None when it had to be killed).
        Raises AssertionError when its output holds a sanitizer report, so the
        test (or class) that stopped it fails, whichever way it ended."""
        p = cls.serve
        if p is None:
            return None
        cls.serve = None
        rc = p.poll()
        if rc is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                rc = p.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
        cls.serve_log.close()
        out = cls.serve_output(tail=None)
        m = SANITIZER_RE.search(out)
        if m:
            raise AssertionError("sanitizer report from pricing serve:\n%s" % out[m.start():][:6000])
        return rc

    @classmethod
    def serve_output(cls, tail=3000):
        try:
            return Path(cls.work, "serve.log").read_text(errors="replace")[-tail if tail else 0:]
        except OSError:
            return ""

    @classmethod
    def get(cls, target, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=timeout)
        try:
            c.request("GET", target)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def price(self, product, timeout=10):
        t0 = time.monotonic()
        st, body = self.get(
            "/price?id=%s&userId=%s" % (quote(product, safe="-"), uuid.uuid4()), timeout
        )
        return st, body, time.monotonic() - t0

    def assert_unavailable_within_bound(self, what):
        for i in range(5):
            st, body, took = self.price("PROD-101")
            self.assertEqual(st, 503, "%s: look-up %d: %s %r" % (what, i, st, body))
            self.assertEqual(json.loads(body)["error"]["code"], "DEPENDENCY_UNAVAILABLE")
            self.assertLess(took, BOUND_S, "%s: look-up %d took %.2fs" % (what, i, took))

    def assert_concurrent_bound(self, what):
        """Eight look-ups at once (more than the pool): each within the bound."""
        results = []
        lock = threading.Lock()

        def one():
            try:
                r = self.price("PROD-102")
            except OSError as e:
                r = (0, repr(e).encode(), 99.0)
            with lock:
                results.append(r)

        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(len(results), 8)
        for st, body, took in results:
            self.assertEqual(st, 503, "%s: %s %r" % (what, st, body))
            self.assertLess(took, BOUND_S, "%s: a concurrent look-up took %.2fs" % (what, took))

    def wait_recovered(self, what):
        deadline = time.monotonic() + RECOVER_S
        last = None
        while time.monotonic() < deadline:
            st, body, _ = self.price("PROD-102")
            if st == 200:
                self.assertEqual(
                    body, b'{"productId":"PROD-102","price":100.00,"currency":"USD"}'
                )
                return
            last = (st, body)
            time.sleep(0.1)
        self.fail("%s: no 200 within %ss, last %r" % (what, RECOVER_S, last))

    # ------------------------------------------------------------ tests

    def test_1_seed_idempotent(self):
        out = pg("psql", self.pgdir, "-tAc",
                 "SELECT count(*) FROM schema_migrations; SELECT count(*) FROM product_prices")
        migrations, rows = out.split()
        self.assertEqual(migrations, str(MIGRATIONS))
        self.assertGreaterEqual(int(rows), 5)
        out = pg("psql", self.pgdir, "-tAc",
                 "SELECT price::text FROM product_prices WHERE product_id IN "
                 "('PROD-102', 'PROD-103') ORDER BY product_id")
        self.assertEqual(out.split(), ["100.00", "0.5"])

    def test_2_seeders_race(self):
        uri = pg("createdb", self.pgdir, "race").strip()
        procs = [
            subprocess.Popen(
                [binary(), "db", "seed", "--price-db", uri,
                 "--audit-store", "sqlite:%s/race-%d.db" % (self.work, i)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.work,
                env=clean_env({}),
            )
            for i in range(3)
        ]
        for p in procs:
            out, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0, err)
            self.assertIsNone(SANITIZER_RE.search(err), err)
        out = pg("psql", self.pgdir, "-d", "race", "-tAc",
                 "SELECT count(*) FROM schema_migrations")
        self.assertEqual(out.strip(), str(MIGRATIONS))

    def test_2b_migrate_and_seed_anywhere(self):
        """A copy of the binary in an empty directory, far from infra/: migrate
        creates the schema only, seed loads the built-in prices, both twice."""
        uri = pg("createdb", self.pgdir, "anywhere").strip()
        where = Path(tempfile.mkdtemp(prefix="pxpg-anywhere-"))
        self.addCleanup(shutil.rmtree, str(where), True)
        exe = where / "pricing"
        shutil.copy2(binary(), exe)
        run_dir = where / "run"
        run_dir.mkdir()

        def db(*args):
            r = subprocess.run(
                [str(exe), "db"] + list(args) + ["--price-db", uri,
                                                 "--audit-store", "sqlite:%s/audit.db" % where,
                                                 "--product-store", "sqlite:%s/products.db" % where,
                                                 "--config-store", "sqlite:%s/config.db" % where],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120,
                cwd=str(run_dir), env=clean_env({}))
            self.assertIsNone(SANITIZER_RE.search(r.stderr), r.stderr)
            self.assertNotIn(self.password, r.stdout + r.stderr)
            return r

        def counts():
            out = pg("psql", self.pgdir, "-d", "anywhere", "-tAc",
                     "SELECT count(*) FROM schema_migrations; SELECT count(*) FROM product_prices")
            return [int(x) for x in out.split()]

        for _ in range(2):
            r = db("migrate")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(counts(), [MIGRATIONS, 0])
        for _ in range(2):
            r = db("seed")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(counts(), [MIGRATIONS, 10005])
        out = pg("psql", self.pgdir, "-d", "anywhere", "-tAc",
                 "SELECT price::text FROM product_prices WHERE product_id = 'PROD-102'")
        self.assertEqual(out.strip(), "100.00")

        seed = where / "mine.sql"
        seed.write_text("INSERT INTO product_prices (product_id, price, currency) "
                        "VALUES ('FILE-1', '1.50', 'GBP');\n")
        r = db("seed", "--seed-file", str(seed))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(counts(), [MIGRATIONS, 10006])
        seed.write_text("INSERT INTO product_prices (product_id, price, currency) "
                        "VALUES ('FILE-2', '-1', 'GBP');\n")
        r = db("seed", "--seed-file", str(seed))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(str(seed), r.stderr)
        self.assertEqual(counts(), [MIGRATIONS, 10006], "a failing seed file changes nothing")
        self.assertEqual(sorted(p.name for p in run_dir.iterdir()), [])

    def test_3_open_errors(self):
        port = Path(self.pgdir, "port").read_text().strip()
        bad = "postgresql://pricing:wrong-%s@127.0.0.1:%s/pricing" % (self.password[:4], port)
        r = self.cli(["db", "seed", "--price-db", bad])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("PRICE_DB:", r.stderr)
        self.assertIn("pricing:***@127.0.0.1:%s/pricing" % port, r.stderr)
        self.assertNotIn("wrong-", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

        dead = "postgresql://pricing:%s@127.0.0.1:%d/pricing" % (self.password, free_port())
        t0 = time.monotonic()
        r = self.cli(["invoke", "price-fetcher", "--event",
                      str(REPO / "infra/events/price-event.json"), "--price-db", dead])
        self.assertLess(time.monotonic() - t0, 5)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot connect to postgresql://pricing:***@127.0.0.1:", r.stderr)
        self.assertNotIn(self.password, r.stderr + r.stdout)

    def test_4_invoke(self):
        r = self.cli(["invoke", "price-fetcher", "--event",
                      str(REPO / "infra/events/price-event.json"), "--price-db", self.uri])
        self.assertEqual(r.returncode, 0, r.stderr)
        resp = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual(resp["statusCode"], 200, resp)
        self.assertEqual(
            resp["body"], '{"productId":"PROD-101","price":99.99,"currency":"USD"}'
        )
        self.assertNotIn(self.password, r.stdout + r.stderr)

    def test_5_serve_and_faults(self):
        self.start_serve()
        pid = self.serve.pid
        cases = [
            ("PROD-101", b'{"productId":"PROD-101","price":99.99,"currency":"USD"}'),
            ("PROD-102", b'{"productId":"PROD-102","price":100.00,"currency":"USD"}'),
            ("PROD-103", b'{"productId":"PROD-103","price":0.5,"currency":"EUR"}'),
        ]
        for product, body in cases:
            st, got, _ = self.price(product)
            self.assertEqual((st, got), (200, body))
        st, body, _ = self.price("PROD-NOPE")
        self.assertEqual(st, 404, body)
        self.assertEqual(json.loads(body)["error"]["code"], "NOT_FOUND")
        for evil in ("PROD-101' OR '1'='1", "1;DROP TABLE product_prices",
                     "PROD-101\"--", "' UNION SELECT 1--"):
            st, body, _ = self.price(evil)
            self.assertEqual(st, 400, (evil, body))
            self.assertEqual(json.loads(body)["error"]["code"], "VALIDATION_FAILED")
        self.assertEqual(self.price("PROD-101")[0], 200)
        self.assertEqual(self.get("/ready")[0], 200)

        # PostgreSQL stopped: quick 503s; back on the same port: 200 by itself.
        pg("stop", self.pgdir)
        self.assert_unavailable_within_bound("stopped")
        self.assert_concurrent_bound("stopped")
        self.assertEqual(self.get("/ready")[0], 503)
        pg("start", self.pgdir)
        self.wait_recovered("restarted")
        for product, body in cases:
            self.assertEqual(self.price(product)[:2], (200, body))

        # PostgreSQL frozen (connections accepted, nothing answered): bounded 503s.
        pg("pause", self.pgdir)
        try:
            self.assert_unavailable_within_bound("frozen")
            self.assert_concurrent_bound("frozen")
        finally:
            pg("resume", self.pgdir)
        self.wait_recovered("resumed")

        self.assertIsNone(self.serve.poll(), "pricing serve died")
        self.assertEqual(self.serve.pid, pid)
        self.assertEqual(self.get("/ready")[0], 200)
        self.assertEqual(self.stop_serve(), 0, self.serve_output())
        out = self.serve_output(tail=None)
        self.assertNotIn(self.password, out)
        self.assertIsNone(SANITIZER_RE.search(out), out)


    def test_6_tenancy_row_level_security(self):
        """CONTRACT §12 on PostgreSQL: an application role that owns nothing,
        with no tenant set, reads zero rows from every tenant table; with
        pricing.tenant set for its transaction it reads that tenant's rows
        only; `pricing` connected as that role with TENANCY=on answers each
        tenant from its own rows."""
        app_pw = "app" + uuid.uuid4().hex
        pg("psql", self.pgdir, "-c",
           "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pricing_app') "
           "THEN CREATE ROLE pricing_app LOGIN; END IF; END $$;"
           "ALTER ROLE pricing_app PASSWORD '%s';"
           "GRANT USAGE ON SCHEMA public TO pricing_app;"
           "GRANT SELECT, INSERT, UPDATE, DELETE ON product_prices, tenant_prices, price_history,"
           " outbox TO pricing_app;"
           "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO pricing_app;"
           "INSERT INTO tenant_prices (tenant_id, product_id, price, currency)"
           " VALUES ('acme', 'PROD-101', 5.50, 'EUR') ON CONFLICT DO NOTHING;"
           "INSERT INTO price_history (product_id, amount, currency, effective_from, changed_by,"
           " request_id, tenant_id) VALUES ('PROD-101', 5.50, 'EUR', '2026-01-01T00:00:00.000Z',"
           " 'seed', 'r-acme', 'acme');" % app_pw)
        tables = ("product_prices", "tenant_prices", "price_history")
        counts = " ".join("SELECT count(*) FROM %s;" % t for t in tables)
        # no tenant set: nothing, from every tenant table
        out = pg("psql", self.pgdir, "-tAc", "SET ROLE pricing_app; " + counts)
        self.assertEqual(out.split(), ["0", "0", "0"])
        # the owner sees everything (owners bypass the policies)
        out = pg("psql", self.pgdir, "-tAc", "SET ROLE pricing; " + counts)
        self.assertTrue(all(int(n) > 0 for n in out.split()), out)
        # a tenant set for the transaction: that tenant's rows only, gone after it
        out = pg("psql", self.pgdir, "-tAc",
                 "BEGIN; SET LOCAL ROLE pricing_app; SET LOCAL pricing.tenant = 'acme'; "
                 + counts + " COMMIT; SET ROLE pricing_app; " + counts)
        self.assertEqual(out.split(), ["0", "1", "1", "0", "0", "0"])
        out = pg("psql", self.pgdir, "-tAc",
                 "BEGIN; SET LOCAL ROLE pricing_app; "
                 "SELECT set_config('pricing.tenant', 'default', true); " + counts + " COMMIT;")
        vals = out.split()  # set_config's answer, then the three counts
        self.assertEqual(vals[0], "default")
        self.assertGreater(int(vals[1]), 0)  # the default tenant's prices
        self.assertEqual(vals[2], "0")  # and none of another tenant's
        # rows of another tenant cannot be written under this one
        bad = subprocess.run(
            [str(PG_SH), "psql", self.pgdir, "-tAc",
             "BEGIN; SET LOCAL ROLE pricing_app; SET LOCAL pricing.tenant = 'acme'; "
             "INSERT INTO tenant_prices VALUES ('globex', 'PROD-101', 1, 'USD'); COMMIT;"],
            capture_output=True, text=True, timeout=60)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("row-level security", bad.stderr)

        # pricing itself, as the application role, with TENANCY=on
        rest = self.uri.split("://", 1)[1].split("@", 1)[1]
        app_uri = "postgresql://pricing_app:%s@%s" % (app_pw, rest)
        ev = json.loads((REPO / "infra/events/price-event.json").read_text())
        answers = {}
        for tenant in ("acme", "default", "globex"):
            ev["headers"] = {"X-Tenant-ID": tenant}
            r = subprocess.run(
                [binary(), "invoke", "price-fetcher", "--event", "-", "--price-db", app_uri,
                 "--audit-store", self.audit],
                input=json.dumps(ev), capture_output=True, text=True, timeout=60, cwd=self.work,
                env=clean_env({"TENANCY": "on", "AUTH_MODE": "none"}))
            self.assertEqual(r.returncode, 0, r.stderr)
            resp = json.loads(r.stdout.strip().splitlines()[-1])
            answers[tenant] = (resp["statusCode"], resp["body"])
            self.assertNotIn(app_pw, r.stdout + r.stderr)
        self.assertEqual(answers["acme"],
                         (200, '{"productId":"PROD-101","price":5.50,"currency":"EUR"}'))
        self.assertEqual(answers["default"],
                         (200, '{"productId":"PROD-101","price":99.99,"currency":"USD"}'))
        self.assertEqual(answers["globex"][0], 404)
        # TENANCY=off as the application role: no tenant, so no rows at all
        ev.pop("headers")
        r = subprocess.run(
            [binary(), "invoke", "price-fetcher", "--event", "-", "--price-db", app_uri,
             "--audit-store", self.audit],
            input=json.dumps(ev), capture_output=True, text=True, timeout=60, cwd=self.work,
            env=clean_env({"AUTH_MODE": "none"}))
        self.assertEqual(json.loads(r.stdout.strip().splitlines()[-1])["statusCode"], 404)

if __name__ == "__main__":
    argv = list(sys.argv[1:])
    if "--binary" in argv:
        i = argv.index("--binary")
        BINARY = argv[i + 1]
        del argv[i:i + 2]
    loader = unittest.TestLoader()
    if argv:  # test names or -k patterns, as with unittest.main
        loader.testNamePatterns = ["*%s*" % a for a in argv if a != "-k"]
    sys.exit(run_unittest(loader.loadTestsFromTestCase(PgTest), verbosity=2))
