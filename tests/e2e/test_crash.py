"""SIGKILL under load: every answer that left the server has its record after a restart."""

import sqlite3
import threading
import time
import unittest

import harness
from harness import new_user


class CrashTest(harness.ServerCase):
    def test_sigkill_under_load(self):
        users = [new_user() for _ in range(8)]
        answered = {u: [] for u in users}
        stop = threading.Event()
        unexpected = []

        def work(user, k):
            conn = None
            n = 0
            while not stop.is_set() and n < 100000:
                n += 1
                product = "NOPE-CRASH" if n % 7 == 0 else "PROD-10%d" % (1 + (n + k) % 5)
                try:
                    if conn is None:
                        conn = self.server.connection(timeout=10)
                    r = self.server.price(product, user, conn=conn)
                except Exception:  # the kill cuts connections: no answer, no promise
                    if conn is not None:
                        conn.close()
                    conn = None
                    if stop.is_set():
                        break
                    time.sleep(0.01)
                    continue
                if r.status in (200, 404):
                    answered[user].append(r.request_id)
                else:
                    unexpected.append(r)
            if conn is not None:
                conn.close()

        threads = [threading.Thread(target=work, args=(u, k), daemon=True) for k, u in enumerate(users)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        self.server.kill()
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(30)
        self.assertEqual(unexpected, [])
        total = sum(len(v) for v in answered.values())
        self.assertGreater(total, 50, "too little load before the kill")

        if self.stores.audit_sqlite is not None:
            con = sqlite3.connect(str(self.stores.audit_sqlite), timeout=10)
            try:
                self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            finally:
                con.close()

        self.server.start()
        missing = []
        for user in users:
            have = {x["requestId"] for x in self.stores.all_records(user=user)}
            missing += [rid for rid in answered[user] if rid not in have]
        self.assertEqual(missing, [], "%d of %d answered look-ups have no record" % (len(missing), total))
        r = self.server.price("PROD-101", users[0])
        self.assertStatus(r, 200)


if __name__ == "__main__":
    unittest.main()
