"""Fail closed while serving: no price leaves when its audit record cannot be made durable."""

import sqlite3
import subprocess
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


if __name__ == "__main__":
    unittest.main()
