"""GET /price: bodies, validation battery, routing errors, request and correlation ids."""

import unittest
from urllib.parse import quote

import harness
from harness import new_user

SQLI_1 = "PROD-101' OR '1'='1"
SQLI_2 = "1;DROP TABLE product_prices"


def q(s):
    return quote(s, safe="-")


class PriceTest(harness.ServerCase):
    def test_prod101_exact_body(self):
        r = self.server.price("PROD-101", new_user())
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b'{"productId":"PROD-101","price":99.99,"currency":"USD"}')
        self.assertEqual(r.header("content-type").split(";")[0], "application/json")
        self.assertEqual(r.header("cache-control"), "no-store")

    def test_scale_as_stored(self):
        cases = [
            ("PROD-102", b'{"productId":"PROD-102","price":100.00,"currency":"USD"}'),
            ("PROD-103", b'{"productId":"PROD-103","price":0.5,"currency":"EUR"}'),
            ("PROD-104", b'{"productId":"PROD-104","price":1999,"currency":"JPY"}'),
            ("PROD-105", b'{"productId":"PROD-105","price":12.345,"currency":"KWD"}'),
        ]
        user = new_user()
        for product, body in cases:
            with self.subTest(product=product):
                r = self.server.price(product, user)
                self.assertStatus(r, 200)
                self.assertEqual(r.body, body)
        self.assertIn(b'"price":100.00,', self.server.price("PROD-102", user).body)

    def test_bulk_seed_products(self):
        user = new_user()
        for product in ("PROD-00001", "PROD-05000", "PROD-10000"):
            with self.subTest(product=product):
                r = self.server.price(product, user)
                self.assertStatus(r, 200)
                doc = r.json()
                self.assertEqual(doc["productId"], product)
        self.assertStatus(self.server.price("PROD-10001", user), 404)

    def test_parameter_order_free(self):
        user = new_user()
        r = self.server.get("/price?userId=%s&id=PROD-101" % user)
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b'{"productId":"PROD-101","price":99.99,"currency":"USD"}')

    def test_percent_encoded_valid(self):
        user = new_user()
        r = self.server.get("/price?id=PROD%%2D101&userId=%s" % user.replace("-", "%2d"))
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b'{"productId":"PROD-101","price":99.99,"currency":"USD"}')
        self.assertEqual([x["productId"] for x in self.stores.records(user=user)], ["PROD-101"])

    def test_unknown_product_404_and_audited(self):
        user = new_user()
        r = self.server.price("NOPE-404", user)
        self.assertStatus(r, 404)
        self.assertEqual(r.json()["error"]["code"], "NOT_FOUND")
        recs = self.stores.records(user=user)
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["status"], "NOT_FOUND")
        self.assertEqual(recs[0]["productId"], "NOPE-404")
        self.assertEqual(recs[0]["requestId"], r.request_id)

    def test_validation_battery(self):
        user = new_user()
        U = user
        long65 = "A" * 65
        # (name, raw query, fields that must be among details[].field; None = any details)
        cases = [
            ("missing id", "userId=%s" % U, {"id"}),
            ("missing userId", "id=PROD-101", {"userId"}),
            ("missing both", "", {"id", "userId"}),
            ("sqli quote", "id=%s&userId=%s" % (q(SQLI_1), U), {"id"}),
            ("sqli drop", "id=%s&userId=%s" % (q(SQLI_2), U), {"id"}),
            ("nul byte", "id=PROD%%00101&userId=%s" % U, None),
            ("overlong utf-8", "id=PROD-101%%C0%%AF&userId=%s" % U, None),
            ("bad escape", "id=PROD%%2&userId=%s" % U, None),
            ("65 chars", "id=%s&userId=%s" % (long65, U), {"id"}),
            ("empty id", "id=&userId=%s" % U, {"id"}),
            ("leading dash", "id=-PROD&userId=%s" % U, {"id"}),
            ("underscore", "id=PROD_101&userId=%s" % U, {"id"}),
            ("non-ascii letter", "id=PR%%C3%%96D&userId=%s" % U, {"id"}),
            ("repeated id", "id=PROD-101&id=PROD-102&userId=%s" % U, {"id"}),
            ("repeated same id", "id=PROD-101&id=PROD-101&userId=%s" % U, {"id"}),
            ("repeated userId", "id=PROD-101&userId=%s&userId=%s" % (U, U), {"userId"}),
            ("uuid no dashes", "id=PROD-101&userId=%s" % U.replace("-", ""), {"userId"}),
            ("uuid braces", "id=PROD-101&userId=%%7B%s%%7D" % U, {"userId"}),
            ("uuid trailing", "id=PROD-101&userId=%sx" % U, {"userId"}),
            ("uuid trailing space", "id=PROD-101&userId=%s%%20" % U, {"userId"}),
            ("plus is a space", "id=PROD+101&userId=%s" % U, {"id"}),
            ("uuid not hex", "id=PROD-101&userId=%s" % ("g" + U[1:]), {"userId"}),
            ("both bad", "id=a%20b&userId=nope", {"id", "userId"}),
            ("sqli + bad user", "id=%s&userId=%s" % (q(SQLI_1), U[:-1]), {"id", "userId"}),
        ]
        for name, query, fields in cases:
            with self.subTest(case=name):
                r = self.server.get("/price?" + query if query else "/price")
                self.assertStatus(r, 400)
                err = r.json()["error"]
                self.assertEqual(err["code"], "VALIDATION_FAILED")
                self.assertGreaterEqual(len(err["details"]), 1)
                if fields is not None:
                    got = {d["field"] for d in err["details"]}
                    self.assertTrue(fields <= got, "want %s among %s" % (fields, got))
                self.assertNotIn(b'"price"', r.body)
        # The unknown parameter is named.
        r = self.server.get("/price?id=PROD-101&userId=%s&foo=bar" % U)
        self.assertStatus(r, 400)
        details = r.json()["error"]["details"]
        self.assertTrue(
            any(d["field"] == "foo" or "foo" in d["reason"] for d in details), details
        )
        # No failed validation leaves an audit record.
        self.assertEqual(self.stores.records(user=user), [])

    def test_64_char_id_is_valid(self):
        user = new_user()
        pid = "P" + "1" * 63
        r = self.server.price(pid, user)
        self.assertStatus(r, 404)
        self.assertEqual(r.json()["error"]["code"], "NOT_FOUND")
        recs = self.stores.records(user=user)
        self.assertEqual([x["productId"] for x in recs], [pid])

    def test_upper_case_uuid_stored_lower(self):
        user = new_user()
        r = self.server.price("PROD-101", user.upper())
        self.assertStatus(r, 200)
        recs = self.stores.records(user=user)
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["userId"], user)
        self.assertEqual(recs[0]["pk"], "USER#" + user)

    def test_route_not_found(self):
        for target in ("/nope", "/", "/price/extra", "/prices?id=PROD-101", "/PRICE"):
            with self.subTest(target=target):
                r = self.server.get(target)
                self.assertStatus(r, 404)
                self.assertEqual(r.json()["error"]["code"], "ROUTE_NOT_FOUND")

    def test_method_not_allowed(self):
        user = new_user()
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            with self.subTest(method=method):
                r = self.server.request(
                    method,
                    "/price?id=PROD-101&userId=%s" % user,
                    body=b"{}",
                    headers={"Content-Type": "application/json"},
                )
                self.assertStatus(r, 405)
                self.assertEqual(r.json()["error"]["code"], "METHOD_NOT_ALLOWED")
                allow = [m.strip() for m in r.header("allow").split(",")]
                self.assertIn("GET", allow)
        self.assertEqual(self.stores.records(user=user), [])

    def test_request_id_unique(self):
        user = new_user()
        seen = []
        for i in range(10):
            seen.append(self.server.price("PROD-101", user).request_id)
            seen.append(self.server.price("NOPE", user).request_id)
            seen.append(self.server.get("/price?id=PROD-101").request_id)
            seen.append(self.server.get("/nowhere").request_id)
            seen.append(self.server.get("/health").request_id)
        self.assertEqual(len(seen), len(set(seen)), seen)
        self.assertTrue(all(seen))

    def test_correlation_id(self):
        user = new_user()
        for valid in ("e2e-corr-42", new_user()):
            with self.subTest(valid=valid):
                r = self.server.price("PROD-101", user, headers={"X-Correlation-Id": valid})
                self.assertStatus(r, 200)
                self.assertEqual(r.header("x-correlation-id"), valid)
                self.assertNotEqual(r.request_id, valid)
                r = self.server.get("/price?id=PROD-101", headers={"X-Correlation-Id": valid})
                self.assertStatus(r, 400)
                self.assertEqual(r.header("x-correlation-id"), valid)
        for invalid in ("x" * 300, "a b", '<script>"', "\u00e9t\u00e9".encode().decode("latin-1")):
            with self.subTest(invalid=invalid[:20]):
                r = self.server.price("PROD-101", user, headers={"X-Correlation-Id": invalid})
                self.assertStatus(r, 200)
                self.assertEqual(r.header("x-correlation-id"), r.request_id)
        r = self.server.price("PROD-101", user)
        self.assertEqual(r.header("x-correlation-id"), r.request_id)
        recs = {x["requestId"]: x for x in self.stores.records(user=user)}
        self.assertEqual(len(recs), 7)
        self.assertEqual(recs[r.request_id]["correlationId"], r.request_id)
        echoed = [x for x in recs.values() if x["correlationId"] == "e2e-corr-42"]
        self.assertEqual(len(echoed), 1)


if __name__ == "__main__":
    unittest.main()
