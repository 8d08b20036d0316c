"""Concurrent look-ups: every answer has exactly one record, keys never collide."""

import collections
import threading
import unittest

import harness
from harness import new_user

PRODUCTS = ["PROD-101", "PROD-102", "PROD-103", "PROD-104", "PROD-105", "NOPE-C"]


class ConcurrencyTest(harness.ServerCase):
    def burst(self, jobs):
        """Runs jobs [(product, user)] at once, one thread and one connection each."""
        barrier = threading.Barrier(len(jobs), timeout=60)
        results = [None] * len(jobs)

        def work(i, product, user):
            try:
                barrier.wait()
                results[i] = self.server.price(product, user, timeout=120)
            except Exception as exc:  # reported below, with the job
                results[i] = exc

        threads = [
            threading.Thread(target=work, args=(i, p, u), daemon=True)
            for i, (p, u) in enumerate(jobs)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        self.assertFalse(any(t.is_alive() for t in threads), "requests still running after 180 s")
        failures = [(jobs[i], r) for i, r in enumerate(results) if not isinstance(r, harness.Response)]
        self.assertEqual(failures, [], "%d of %d failed" % (len(failures), len(jobs)))
        for (product, _), r in zip(jobs, results):
            self.assertEqual(r.status, 404 if product.startswith("NOPE") else 200, r)
        return results

    def test_400_concurrent_lookups(self):
        users = [new_user() for _ in range(20)]
        jobs = [(PRODUCTS[i % len(PRODUCTS)], users[i % 20]) for i in range(400)]
        results = self.burst(jobs)
        rids = [r.request_id for r in results]
        self.assertEqual(len(set(rids)), 400)
        want = collections.defaultdict(set)
        for (product, user), r in zip(jobs, results):
            want[user].add((r.request_id, product))
        total = 0
        for user in users:
            recs = self.stores.records(user=user)
            total += len(recs)
            self.assertEqual({(x["requestId"], x["productId"]) for x in recs}, want[user])
            self.assertEqual(len(recs), len(want[user]))
        self.assertEqual(total, 400)

    def test_same_user_burst(self):
        user = new_user()
        results = self.burst([("PROD-101", user)] * 50)
        recs = self.stores.records(user=user)
        self.assertEqual(len(recs), 50)
        self.assertEqual(len({x["sk"] for x in recs}), 50)
        self.assertEqual({x["requestId"] for x in recs}, {r.request_id for r in results})


if __name__ == "__main__":
    unittest.main()
