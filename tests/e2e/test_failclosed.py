"""Fail closed while serving: no price leaves when its audit record cannot be made durable."""

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

import harness
from harness import new_user


def prlimit_fsize(pid, soft):
    # The hard limit stays unlimited so the soft one can be raised again without privileges.
    subprocess.run(
        ["prlimit", "--pid", str(pid), "--fsize=%s:unlimited" % soft], check=True, timeout=10
    )


class FailClosedTest(harness.ServerCase):
    server_env = {"AUDIT_TIMEOUT_MS": "300"}

    def setUp(self):
        if self.stores.audit_sqlite is None:
            self.skipTest("needs the embedded (sqlite) audit store")

    def assert_unavailable(self, r):
        self.assertStatus(r, 503)
        self.assertEqual(r.json()["error"]["code"], "AUDIT_UNAVAILABLE")
        self.assertNotIn(b'"price"', r.body)
        self.assertNotIn(b"99.99", r.body)

    def recover(self, user):
        """First 200 within 5 s after the cause is removed."""
        deadline = time.monotonic() + 5
        while True:
            r = self.server.price("PROD-101", user)
            if r.status == 200 or time.monotonic() > deadline:
                return r
            time.sleep(0.1)

    def test_file_size_limit(self):
        user = new_user()
        ok = [self.server.price("PROD-101", user) for _ in range(3)]
        for r in ok:
            self.assertStatus(r, 200)
        # A limit of one byte: every write past offset 1 fails with EFBIG. (A limit at the
        # current size would not do: SQLite rewrites a reset WAL from its start.) The
        # server's stdout and stderr are pipes, which the limit does not touch.
        prlimit_fsize(self.server.pid, 1)
        try:
            for product in ("PROD-101", "PROD-102", "NOPE-FC"):
                r = self.server.price(product, user)
                self.assert_unavailable(r)
            self.assertTrue(self.server.running(), "server died under RLIMIT_FSIZE")
            self.assertStatus(self.server.get("/health"), 200)
        finally:
            prlimit_fsize(self.server.pid, "unlimited")
        r = self.recover(user)
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b'{"productId":"PROD-101","price":99.99,"currency":"USD"}')
        rids = {x["requestId"] for x in self.stores.records(user=user)}
        for answered in ok + [r]:
            self.assertIn(answered.request_id, rids)

    def test_exclusive_lock(self):
        user = new_user()
        self.assertStatus(self.server.price("PROD-101", user), 200)
        con = sqlite3.connect(str(self.stores.audit_sqlite), timeout=10, isolation_level=None)
        try:
            con.execute("BEGIN EXCLUSIVE")
            t0 = time.monotonic()
            r = self.server.price("PROD-101", user)
            elapsed = time.monotonic() - t0
            self.assert_unavailable(r)
            # Bounded by AUDIT_TIMEOUT_MS=300 (generous slack for sanitizer builds).
            self.assertLess(elapsed, 5.0)
            time.sleep(0.4)
            self.assert_unavailable(self.server.price("PROD-102", user))
            self.assertTrue(self.server.running())
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
            con.close()
        r = self.recover(user)
        self.assertStatus(r, 200)
        self.assertIn(r.request_id, {x["requestId"] for x in self.stores.records(user=user)})

    def test_exclusive_lock_not_ready(self):
        """Readiness says whether a record can be written now, within a short wait."""
        self.assertStatus(self.server.get("/ready"), 200)
        con = sqlite3.connect(str(self.stores.audit_sqlite), timeout=10, isolation_level=None)
        try:
            con.execute("BEGIN EXCLUSIVE")
            t0 = time.monotonic()
            r = self.server.get("/ready")
            elapsed = time.monotonic() - t0
            self.assertStatus(r, 503)
            self.assertIn("auditStore", r.error_fields())
            self.assertLess(elapsed, 3.0)
            # The failed write is logged, naming its cause.
            self.assert_unavailable(self.server.price("PROD-101", new_user()))
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
            con.close()
        self.assertStatus(self.server.get("/ready"), 200)
        busy = [l for l in log_records(self.server) if l.get("cause") == "SQLITE_BUSY"]
        self.assertGreaterEqual(len(busy), 1)
        self.assertTrue(all(l["level"] == "error" for l in busy), busy)


def log_records(server):
    out = []
    for line in server.log_lines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def gone_lines(server, want=1, wait_s=5.0):
    """The server's "deleted or replaced" log lines; waits (bounded) until at
    least want of them were read from its stdout pipe, which may lag behind."""
    t_end = time.monotonic() + wait_s
    while True:
        lines = [l for l in log_records(server) if "deleted or replaced" in l.get("msg", "")]
        if len(lines) >= want or time.monotonic() > t_end:
            return lines
        time.sleep(0.05)


class DeletedTrailTest(unittest.TestCase):
    """The audit file (or its WAL) deleted under a running server."""

    def setUp(self):
        self.stores = harness.Stores()
        if self.stores.audit_sqlite is None:
            self.stores.cleanup()
            self.skipTest("needs the embedded (sqlite) audit store")
        self.stores.seed()
        self.server = harness.Server(self.stores, env={"AUDIT_TIMEOUT_MS": "500"})
        self.server.start()

    def tearDown(self):
        try:
            self.server.kill()
        finally:
            self.stores.cleanup()

    def assert_closed(self, user):
        r = self.server.price("PROD-101", user)
        self.assertStatus(r, 503)
        self.assertEqual(r.json()["error"]["code"], "AUDIT_UNAVAILABLE")
        self.assertNotIn(b"99.99", r.body)
        r = self.server.get("/ready")
        self.assertStatus(r, 503)
        self.assertIn("auditStore", r.error_fields())

    def assertStatus(self, resp, status):
        self.assertEqual(resp.status, status, "%r" % resp)

    def test_deleted_database(self):
        user = new_user()
        for _ in range(2):
            self.assertStatus(self.server.price("PROD-101", user), 200)
        self.assertStatus(self.server.get("/ready"), 200)
        os.unlink(str(self.stores.audit_sqlite))
        for _ in range(3):
            self.assert_closed(user)
        self.assertTrue(self.server.running())
        self.assertEqual(len(gone_lines(self.server)), 1, self.server.stdout()[-3000:])
        self.assertEqual(gone_lines(self.server)[0]["level"], "error")
        self.server.stop_ok()
        # No quiet new trail at the next start: one line naming the setting, exit 2.
        port = str(harness.free_port())
        r = harness.run_cli(["serve", "--port", port] + self.stores.flags(), timeout=20)
        self.assertEqual(r.rc, 2, r)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r)
        self.assertIn("AUDIT_STORE", r.stderr)
        self.assertFalse(self.stores.audit_sqlite.exists())
        # Asked for out loud, a new trail is started.
        self.server = harness.Server(self.stores, env={"AUDIT_CREATE": "1"})
        self.server.start()
        self.assertStatus(self.server.price("PROD-101", user), 200)
        self.server.stop_ok()

    def test_deleted_wal(self):
        user = new_user()
        ok = [self.server.price("PROD-101", user) for _ in range(3)]
        for r in ok:
            self.assertStatus(r, 200)
        wal = str(self.stores.audit_sqlite) + "-wal"
        self.assertTrue(os.path.exists(wal))
        os.unlink(wal)
        for _ in range(3):
            self.assert_closed(user)
        self.assertEqual(len(gone_lines(self.server)), 1, self.server.stdout()[-3000:])
        self.server.stop_ok()
        # Every answered look-up kept its record (closing checkpointed the open WAL).
        rids = {x["requestId"] for x in self.stores.records(user=user)}
        for r in ok:
            self.assertIn(r.request_id, rids)
        self.server.start()
        self.assertStatus(self.server.price("PROD-101", user), 200)
        self.server.stop_ok()


class StartUpTest(unittest.TestCase):
    """A trail the server could only refuse records to is refused at start-up."""

    def setUp(self):
        if harness.Stores().audit_sqlite is None:
            self.skipTest("needs the embedded (sqlite) audit store")
        self.dir = tempfile.mkdtemp(prefix="px-e2e-ro-")
        os.chmod(self.dir, 0o777)
        self.price = "sqlite:%s/prices.db" % self.dir
        self.audit_path = os.path.join(self.dir, "audit.db")
        self.audit = "sqlite:" + self.audit_path
        r = harness.run_cli(["db", "seed", "--price-db", self.price, "--audit-store", self.audit])
        self.assertEqual(r.rc, 0, r)
        for name in os.listdir(self.dir):
            os.chmod(os.path.join(self.dir, name), 0o644)

    def tearDown(self):
        os.chmod(self.dir, 0o755)
        shutil.rmtree(self.dir, ignore_errors=True)

    def serve_unprivileged(self):
        """`pricing serve` as a user the file's permissions apply to: nobody when root."""
        cmd = [harness.binary(), "serve", "--port", str(harness.free_port()),
               "--price-db", self.price, "--audit-store", self.audit]
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if not setpriv:
                self.skipTest("root without setpriv: permissions cannot be tested")
            cmd = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + cmd
        p = subprocess.run(cmd, env=harness.base_env(), cwd=self.dir, capture_output=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        return p.returncode, p.stderr.decode("utf-8", "replace")

    def check_refused(self):
        try:
            rc, err = self.serve_unprivileged()
        except subprocess.TimeoutExpired:
            self.fail("pricing serve started on an audit trail it cannot write")
        self.assertEqual(rc, 2, err)
        # A coverage build run as another user cannot write its .gcda counters and
        # says so ("profiling: ... Cannot open"): not the program's output.
        lines = [l for l in err.strip().splitlines() if not l.startswith("profiling:")]
        self.assertEqual(len(lines), 1, err)
        self.assertIn("AUDIT_STORE", err)
        self.assertIn(self.audit_path, err)

    def test_read_only_file(self):
        if os.geteuid() != 0:
            os.chmod(self.audit_path, 0o444)
        self.check_refused()

    def test_read_only_directory(self):
        if os.geteuid() == 0:
            os.chown(self.audit_path, 65534, 65534)
        os.chmod(self.dir, 0o755 if os.geteuid() == 0 else 0o555)
        self.check_refused()

    def test_missing_parents_created_on_request(self):
        """AUDIT_CREATE=1 with a nested relative path: every parent is made."""
        stores = harness.Stores()
        try:
            stores.seed()
            stores.audit_store = "sqlite:a/b/c/audit.db"  # relative to the server's directory
            server = harness.Server(stores, env={"AUDIT_CREATE": "1"})
            server.start()
            try:
                self.assertEqual(server.price("PROD-101", new_user()).status, 200)
            finally:
                server.stop_ok()
            self.assertTrue((stores.dir / "a" / "b" / "c" / "audit.db").exists())
        finally:
            stores.cleanup()


class LsmFailClosedTest(unittest.TestCase):
    """The write-optimized store (lsm:DIR) fails closed too, whatever stores the
    run uses: its own temporary SQLite prices and lsm audit directory."""

    def setUp(self):
        self.stores = harness.Stores()
        self.stores.price_db = "sqlite:%s" % (self.stores.dir / "prices.db")
        self.stores.product_store = "sqlite:%s" % (self.stores.dir / "products.db")
        self.lsm_dir = self.stores.dir / "audit-lsm"
        self.stores.audit_store = "lsm:%s" % self.lsm_dir
        self.stores.external = False
        self.stores.seed()
        self.server = harness.Server(self.stores, env={"AUDIT_TIMEOUT_MS": "300"})
        self.server.start()

    def tearDown(self):
        try:
            if self.server.running():
                self.server.stop_ok()
            else:
                self.server.kill()
        finally:
            self.stores.cleanup()

    def request_ids(self, user):
        r = harness.run_cli(["audit", "query", "--user", user, "--limit", "1000"],
                            env=self.stores.env(), timeout=60)
        self.assertEqual(r.rc, 0, r)
        return {json.loads(l)["requestId"] for l in r.stdout.splitlines() if l.strip()}

    def assert_unavailable(self, r):
        self.assertEqual(r.status, 503, "%r" % r)
        self.assertEqual(r.json()["error"]["code"], "AUDIT_UNAVAILABLE")
        self.assertNotIn(b"99.99", r.body)

    def test_file_size_limit(self):
        user = new_user()
        ok = [self.server.price("PROD-101", user) for _ in range(3)]
        for r in ok:
            self.assertEqual(r.status, 200, "%r" % r)
        prlimit_fsize(self.server.pid, 1)
        try:
            for product in ("PROD-101", "PROD-102", "NOPE-FC"):
                self.assert_unavailable(self.server.price(product, user))
            self.assertTrue(self.server.running(), "server died under RLIMIT_FSIZE")
        finally:
            prlimit_fsize(self.server.pid, "unlimited")
        deadline = time.monotonic() + 5
        while True:
            r = self.server.price("PROD-101", user)
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(r.status, 200, "%r" % r)
        self.server.stop_ok()
        rids = self.request_ids(user)
        for answered in ok + [r]:
            self.assertIn(answered.request_id, rids)

    def test_deleted_directory(self):
        user = new_user()
        self.assertEqual(self.server.price("PROD-101", user).status, 200)
        self.assertEqual(self.server.get("/ready").status, 200)
        shutil.rmtree(str(self.lsm_dir))
        for _ in range(3):
            self.assert_unavailable(self.server.price("PROD-101", user))
        r = self.server.get("/ready")
        self.assertEqual(r.status, 503, "%r" % r)
        self.assertIn("auditStore", r.error_fields())
        self.assertTrue(self.server.running())
        self.server.stop_ok()
        # No quiet new trail at the next start: one line naming the setting, exit 2.
        port = str(harness.free_port())
        r = harness.run_cli(["serve", "--port", port] + self.stores.flags(), timeout=20)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("AUDIT_STORE", r.stderr)
        self.assertFalse(self.lsm_dir.exists())


if __name__ == "__main__":
    unittest.main()
