"""The audit record (CONTRACT §5), GET /audit and `pricing audit query`."""

import calendar
import time
import unittest
import uuid
from urllib.parse import quote

import harness
from harness import new_user, parse_ts, TS_RE


def epoch(ts):
    return calendar.timegm(parse_ts(ts).timetuple()) + parse_ts(ts).microsecond / 1e6


def q(s):
    return quote(s, safe="")


class AuditTest(harness.ServerCase):
    def check_record(self, rec, resp, user, product, status, correlation, t0, t1, days=90):
        rid = resp.request_id
        self.assertEqual(rec["pk"], "USER#" + user)
        self.assertEqual(rec["sk"], "AUDIT#%s#%s" % (rec["ts"], rid))
        self.assertEqual(rec["gsi1pk"], "PRODUCT#" + product)
        self.assertEqual(rec["gsi1sk"], rec["sk"])
        self.assertEqual(rec["action"], "PRICE_FETCH")
        self.assertEqual(rec["status"], status)
        self.assertEqual(rec["userId"], user)
        self.assertEqual(rec["productId"], product)
        self.assertEqual(rec["requestId"], rid)
        self.assertEqual(rec["correlationId"], correlation)
        self.assertRegex(rec["ts"], TS_RE)
        ts = epoch(rec["ts"])
        # The record is written while the request is served (2 s allowance for clocks).
        self.assertGreaterEqual(ts, t0 - 2.0)
        self.assertLessEqual(ts, t1 + 2.0)
        self.assertIsInstance(rec["expiresAt"], int)
        self.assertLess(abs(rec["expiresAt"] - (ts + days * 86400)), 1.0, rec)
        self.assertIn(rec.get("principal"), (None, ""))
        # `pricing serve` is not API Gateway: no gateway request id to keep.
        self.assertNotIn("apiRequestId", rec)

    def test_record_fields(self):
        user = new_user()
        t0 = time.time()
        ok = self.server.price("PROD-101", user, headers={"X-Correlation-Id": "e2e-audit-1"})
        missing = self.server.price("NOPE-1", user)
        t1 = time.time()
        self.assertStatus(ok, 200)
        self.assertStatus(missing, 404)
        recs = self.stores.records(user=user)
        self.assertEqual(len(recs), 2, recs)
        by_rid = {r["requestId"]: r for r in recs}
        self.check_record(by_rid[ok.request_id], ok, user, "PROD-101", "SUCCESS", "e2e-audit-1", t0, t1)
        self.check_record(
            by_rid[missing.request_id], missing, user, "NOPE-1", "NOT_FOUND", missing.request_id, t0, t1
        )
        # GET /audit returns the same items (validated against AuditRecord by the harness).
        page = self.server.get("/audit?userId=%s" % user)
        self.assertStatus(page, 200)
        doc = page.json()
        self.assertIsNone(doc["nextCursor"])
        self.assertEqual(sorted(doc["items"], key=lambda r: r["sk"]), doc["items"])
        self.assertEqual({r["requestId"]: r for r in doc["items"]}, by_rid)

    def test_retention_days(self):
        stores = harness.Stores()
        server = harness.Server(stores, env={"AUDIT_RETENTION_DAYS": "7"})
        try:
            stores.seed()
            server.start()
            user = new_user()
            t0 = time.time()
            r = server.price("PROD-103", user)
            t1 = time.time()
            self.assertStatus(r, 200)
            recs = stores.records(user=user)
            self.assertEqual(len(recs), 1, recs)
            self.check_record(recs[0], r, user, "PROD-103", "SUCCESS", r.request_id, t0, t1, days=7)
            server.stop_ok()
        finally:
            server.kill()
            stores.cleanup()

    def pages(self, query, limit):
        items, cursors = [], []
        target = "/audit?%s&limit=%d" % (query, limit)
        for _ in range(100):
            r = self.server.get(target)
            self.assertStatus(r, 200)
            doc = r.json()
            self.assertLessEqual(len(doc["items"]), limit)
            items.append(doc["items"])
            if doc["nextCursor"] is None:
                return items, cursors
            cursors.append(doc["nextCursor"])
            target = "/audit?%s&limit=%d&cursor=%s" % (query, limit, q(doc["nextCursor"]))
        self.fail("more than 100 pages")

    def test_pagination(self):
        user = new_user()
        product = "E2E-" + uuid.uuid4().hex[:12].upper()
        rids = []
        for _ in range(25):
            r = self.server.price(product, user)
            self.assertStatus(r, 404)
            rids.append(r.request_id)
        for query in ("userId=%s" % user, "productId=%s" % product):
            with self.subTest(query=query):
                pages, cursors = self.pages(query, 10)
                self.assertEqual([len(p) for p in pages], [10, 10, 5])
                self.assertEqual(len(set(cursors)), 2)
                flat = [x for p in pages for x in p]
                self.assertEqual(sorted(x["requestId"] for x in flat), sorted(rids))
                sks = [x["sk"] for x in flat]
                self.assertEqual(sks, sorted(sks), "oldest first")
                self.assertEqual(len(set(sks)), 25)
                # One page of everything agrees with the pages.
                r = self.server.get("/audit?%s" % query)
                self.assertEqual(r.json()["items"], flat)
                self.assertIsNone(r.json()["nextCursor"])
        # A page that ends exactly at the end.
        pages, _ = self.pages("userId=%s" % user, 25)
        self.assertIn([len(p) for p in pages], ([25], [25, 0]))
        # The CLI prints the same records, as JSON lines.
        self.assertEqual(self.stores.records(user=user), flat)
        self.assertEqual(self.stores.records(product=product), flat)
        self.assertEqual(self.stores.records(user=user, limit=10), flat[:10])

    def test_from_to(self):
        user = new_user()
        for i in range(12):
            self.assertStatus(self.server.price("PROD-10%d" % (1 + i % 5), user), 200)
            time.sleep(0.003)
        full = self.server.get("/audit?userId=%s" % user).json()["items"]
        self.assertEqual(len(full), 12)
        lo, hi = full[3]["ts"], full[8]["ts"]
        want = [x for x in full if lo <= x["ts"] <= hi]
        r = self.server.get("/audit?userId=%s&from=%s&to=%s" % (user, q(lo), q(hi)))
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["items"], want)
        self.assertEqual(self.stores.records(user=user, from_=lo, to=hi), want)
        r = self.server.get("/audit?userId=%s&from=%s" % (user, q(hi)))
        self.assertEqual(r.json()["items"], [x for x in full if x["ts"] >= hi])
        r = self.server.get("/audit?userId=%s&to=%s" % (user, q(lo)))
        self.assertEqual(r.json()["items"], [x for x in full if x["ts"] <= lo])

    def test_by_product(self):
        product = "PROD-%05d" % (uuid.uuid4().int % 10000 + 1)
        since = harness.now_ts(-1)
        users = [new_user() for _ in range(3)]
        rids = set()
        for u in users:
            r = self.server.price(product, u)
            self.assertStatus(r, 200)
            rids.add(r.request_id)
        r = self.server.get("/audit?productId=%s&from=%s" % (product, q(since)))
        self.assertStatus(r, 200)
        items = [x for x in r.json()["items"] if x["requestId"] in rids]
        self.assertEqual(len(items), 3)
        self.assertEqual({x["userId"] for x in items}, set(users))
        self.assertTrue(all(x["gsi1pk"] == "PRODUCT#" + product for x in r.json()["items"]))

    def test_bad_queries(self):
        user = new_user()
        self.assertStatus(self.server.price("PROD-101", user), 200)
        cases = [
            "userId=%s&cursor=garbage" % user,
            "userId=%s&limit=0" % user,
            "userId=%s&limit=1001" % user,
            "userId=%s&limit=-1" % user,
            "userId=%s&limit=ten" % user,
            "userId=%s&limit=10&limit=20" % user,
            "userId=%s&productId=PROD-101" % user,
            "",
            "limit=10",
            "userId=not-a-uuid",
            "productId=%s" % q("PROD-101' OR '1'='1"),
            "userId=%s&from=yesterday" % user,
            "userId=%s&bogus=1" % user,
        ]
        for query in cases:
            with self.subTest(query=query):
                r = self.server.get("/audit?" + query if query else "/audit")
                self.assertStatus(r, 400)
                self.assertEqual(r.json()["error"]["code"], "VALIDATION_FAILED")
        for limit in (1, 1000):
            r = self.server.get("/audit?userId=%s&limit=%d" % (user, limit))
            self.assertStatus(r, 200)
            self.assertEqual(len(r.json()["items"]), 1)
        r = self.server.request("POST", "/audit?userId=%s" % user, body=b"")
        self.assertStatus(r, 405)
        # Reading the trail is not a price look-up: still one record.
        self.assertEqual(len(self.stores.records(user=user)), 1)

    def test_leap_second_bounds(self):
        """Second 60 is refused as the bound it is in, never as a bad cursor."""
        user = new_user()
        self.assertStatus(self.server.price("PROD-101", user), 200)
        leap = "2016-12-31T23:59:60Z"
        for field, query in (
            ("from", "from=%s" % leap),
            ("to", "to=%s" % leap),
            ("from", "from=%s&to=2017-01-01T00:00:00Z" % leap),
        ):
            with self.subTest(query=query):
                r = self.server.get("/audit?userId=%s&%s" % (user, query))
                self.assertStatus(r, 400)
                self.assertEqual(r.json()["error"]["code"], "VALIDATION_FAILED")
                self.assertEqual(r.error_fields(), [field])
        # Both bounds wrong: both named, and no cursor.
        r = self.server.get("/audit?userId=%s&from=%s&to=%s" % (user, leap, leap))
        self.assertStatus(r, 400)
        self.assertEqual(sorted(r.error_fields()), ["from", "to"])
        # A bad cursor is still the cursor.
        r = self.server.get("/audit?userId=%s&from=2016-12-31T23:59:59Z&cursor=garbage" % user)
        self.assertStatus(r, 400)
        self.assertEqual(r.error_fields(), ["cursor"])
        # The command line agrees: the bound is named, exit 2.
        env = {"AUDIT_STORE": self.stores.audit_store, "PRICE_DB": self.stores.price_db}
        for flag in ("--from", "--to"):
            with self.subTest(flag=flag):
                res = harness.run_cli(["audit", "query", "--user", user, flag, leap], env=env)
                self.assertEqual(res.rc, 2, res)
                self.assertIn(flag, res.stderr.splitlines()[0])
                self.assertNotIn("cursor", res.stderr.splitlines()[0])


if __name__ == "__main__":
    unittest.main()
