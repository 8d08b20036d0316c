"""product-service (CONTRACT §8): the catalogue, audited price changes, ETag /
If-Match, Idempotency-Key, strict bodies, and the three ways in.

Prices live where price-fetcher reads them (PX_E2E_PRICE_DB: SQLite by default,
PostgreSQL when scripts/test.sh sets it): a price change here is what the next
GET /price answers."""

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
import uuid
from pathlib import Path

import harness
from harness import new_user, run_cli

JSON = {"Content-Type": "application/json"}
# The AWS CLI from Debian, for reading DynamoDB items back without `pricing`.
AWS = os.environ.get("PX_AWS_CLI", "/usr/bin/aws")
DDB_PRODUCTS = os.environ.get("PX_E2E_PRODUCT_STORE", "").startswith("dynamodb:")



def pid(prefix="P"):
    """A fresh product id, so tests sharing one store never meet."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12].upper())


def body(**kw):
    doc = {"name": "Widget", "category": "tools"}
    doc.update(kw)
    return json.dumps(doc).encode()


class ProductCalls:
    """Requests and checks shared by the product test classes."""

    def call(self, method, target, doc=None, headers=None, raw=None):
        h = dict(JSON) if (doc is not None or raw is not None) else {}
        h.update(headers or {})
        data = raw if raw is not None else (None if doc is None else json.dumps(doc).encode())
        return self.server.request(method, target, headers=h, body=data)

    def create(self, product_id=None, **kw):
        product_id = product_id or pid()
        r = self.call("POST", "/products", raw=body(productId=product_id, **kw))
        self.assertStatus(r, 201)
        return product_id, r

    def set_price(self, product_id, version, amount, currency="EUR", headers=None):
        h = {"If-Match": '"%d"' % version}
        h.update(headers or {})
        raw = ('{"amount":%s,"currency":"%s"}' % (amount, currency)).encode()
        return self.call("PUT", "/products/%s/price" % product_id, raw=raw, headers=h)

    def assertError(self, r, status, code):
        self.assertStatus(r, status)
        self.assertEqual(r.json()["error"]["code"], code, r)

    def writes(self, product_id):
        return [x for x in self.stores.records(product=product_id) if x["action"] != "PRICE_FETCH"]

    def aws(self, *args, stdin=None):
        """`aws dynamodb ARGS` against the endpoint the servers use; the parsed JSON answer."""
        endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")
        cmd = [AWS, "dynamodb"] + list(args) + ["--output", "json"]
        if endpoint:
            cmd += ["--endpoint-url", endpoint]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, input=stdin)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout) if r.stdout.strip() else {}


class ProductsTest(ProductCalls, harness.ServerCase):
    """On whichever product store PX_E2E_PRODUCT_STORE names (SQLite by default)."""

    # ------------------------------------------------------------ CRUD

    def test_create_read_replace_delete(self):
        product_id, r = self.create(description="first", attributes={"color": "red"})
        self.assertEqual(r.header("location"), "/products/" + product_id)
        self.assertEqual(r.header("etag"), '"1"')
        doc = r.json()
        self.assertEqual(doc["productId"], product_id)
        self.assertEqual(doc["status"], "ACTIVE")
        self.assertEqual(doc["attributes"], {"color": "red"})
        self.assertIsNone(doc["price"])
        self.assertEqual(doc["version"], 1)
        self.assertEqual(doc["createdAt"], doc["updatedAt"])

        g = self.server.get("/products/" + product_id)
        self.assertStatus(g, 200)
        self.assertEqual(g.header("etag"), '"1"')
        self.assertEqual(g.json(), doc)

        p = self.call("PUT", "/products/" + product_id, raw=body(name="Widget 2", status="INACTIVE"),
                      headers={"If-Match": '"1"'})
        self.assertStatus(p, 200)
        self.assertEqual(p.header("etag"), '"2"')
        self.assertEqual(p.json()["name"], "Widget 2")
        self.assertEqual(p.json()["description"], "")  # whole replacement
        self.assertEqual(p.json()["attributes"], {})
        self.assertEqual(p.json()["status"], "INACTIVE")

        d = self.server.request("DELETE", "/products/" + product_id, headers={"If-Match": '"2"'})
        self.assertStatus(d, 204)
        self.assertEqual(d.body, b"")
        g = self.server.get("/products/" + product_id)
        self.assertEqual(g.json()["status"], "DISCONTINUED")
        self.assertEqual(g.header("etag"), '"3"')

        recs = self.writes(product_id)
        self.assertEqual([x["action"] for x in recs],
                         ["PRODUCT_CREATE", "PRODUCT_UPDATE", "PRODUCT_DELETE"])
        self.assertEqual([x["requestId"] for x in recs],
                         [r.request_id, p.request_id, d.request_id])
        for x in recs:
            self.assertEqual(x["pk"], "ACTOR#local")
            self.assertEqual(x["gsi1pk"], "PRODUCT#" + product_id)
            self.assertEqual(x["principal"], "local")
            self.assertEqual(x["status"], "SUCCESS")
            self.assertNotIn("userId", x)
        self.assertNotIn("before", recs[0])
        self.assertEqual(recs[0]["after"], {"name": "Widget", "description": "first",
                                            "category": "tools", "status": "ACTIVE",
                                            "attributes": {"color": "red"}})
        self.assertEqual(recs[1]["before"], {"name": "Widget", "description": "first",
                                             "status": "ACTIVE", "attributes": {"color": "red"}})
        self.assertEqual(recs[1]["after"], {"name": "Widget 2", "description": "",
                                            "status": "INACTIVE", "attributes": {}})
        self.assertEqual(recs[2]["before"], {"status": "INACTIVE"})
        self.assertEqual(recs[2]["after"], {"status": "DISCONTINUED"})

    def test_seeded_catalogue_matches_prices(self):
        r = self.server.get("/products/PROD-102")
        self.assertStatus(r, 200)
        self.assertIn(b'"price":{"amount":100.00,"currency":"USD"', r.body)

    def test_not_found_and_bad_id(self):
        self.assertError(self.server.get("/products/NOPE-" + uuid.uuid4().hex[:8]), 404, "NOT_FOUND")
        r = self.server.get("/products/-bad")
        self.assertError(r, 400, "VALIDATION_FAILED")
        self.assertEqual(r.error_fields(), ["id"])
        r = self.server.request("DELETE", "/products/NOPE-1234", headers={"If-Match": '"1"'})
        self.assertError(r, 404, "NOT_FOUND")

    def test_conflict_on_existing_id(self):
        product_id, _ = self.create()
        r = self.call("POST", "/products", raw=body(productId=product_id))
        self.assertError(r, 409, "CONFLICT")
        self.assertEqual(len(self.writes(product_id)), 1)  # the refused create left no record

    def test_if_match_required_and_stale(self):
        product_id, _ = self.create()
        target = "/products/" + product_id
        self.assertError(self.call("PUT", target, raw=body()), 428, "PRECONDITION_REQUIRED")
        self.assertError(self.server.request("DELETE", target), 428, "PRECONDITION_REQUIRED")
        self.assertError(self.call("PUT", target + "/price", doc={"amount": "1.00", "currency": "EUR"}),
                         428, "PRECONDITION_REQUIRED")
        for stale in ('"2"', '"0"', "1", "garbage"):
            with self.subTest(if_match=stale):
                r = self.call("PUT", target, raw=body(), headers={"If-Match": stale})
                self.assertError(r, 412, "PRECONDITION_FAILED")
        self.assertStatus(self.call("PUT", target, raw=body(), headers={"If-Match": 'W/"1"'}), 200)
        self.assertStatus(self.call("PUT", target, raw=body(), headers={"If-Match": "*"}), 200)
        self.assertEqual(self.server.get(target).header("etag"), '"3"')

    def test_media_type_and_size(self):
        product_id = pid()
        raw = body(productId=product_id)
        for ctype in (None, "text/plain", "application/jsonx", "application/x-www-form-urlencoded"):
            with self.subTest(ctype=ctype):
                h = {} if ctype is None else {"Content-Type": ctype}
                r = self.server.request("POST", "/products", headers=h, body=raw)
                self.assertError(r, 415, "UNSUPPORTED_MEDIA_TYPE")
        r = self.server.request("POST", "/products", body=raw,
                                headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertStatus(r, 201)
        big = body(productId=pid(), description="x" * (64 * 1024))
        self.assertError(self.call("POST", "/products", raw=big), 413, "PAYLOAD_TOO_LARGE")
        big = ('{"amount":"1.00","currency":"EUR","pad":"%s"}' % ("y" * 70000)).encode()
        r = self.call("PUT", "/products/%s/price" % product_id, raw=big, headers={"If-Match": '"1"'})
        self.assertError(r, 413, "PAYLOAD_TOO_LARGE")

    def test_strict_bodies(self):
        cases = [
            ("unknown field", b'{"productId":"X-1","name":"n","category":"c","colour":"r"}', {"colour"}),
            ("wrong types", b'{"productId":7,"name":["n"],"category":{}}', {"productId", "name", "category"}),
            ("missing", b'{}', {"productId", "name", "category"}),
            ("bad status", b'{"productId":"X-1","name":"n","category":"c","status":"GONE"}', {"status"}),
            ("attributes not strings", b'{"productId":"X-1","name":"n","category":"c","attributes":{"a":1}}', {"attributes"}),
            ("not an object", b'[1,2]', {"body"}),
            ("not JSON", b'{"productId":', {"body"}),
            ("duplicate field", b'{"productId":"X-1","productId":"X-2","name":"n","category":"c"}', {"body"}),
        ]
        for name, raw, fields in cases:
            with self.subTest(case=name):
                r = self.call("POST", "/products", raw=raw)
                self.assertError(r, 400, "VALIDATION_FAILED")
                self.assertTrue(fields <= set(r.error_fields()), r)

    def test_price_body_validation(self):
        product_id, _ = self.create()
        cases = [
            ("negative", b'{"amount":-1,"currency":"EUR"}', {"amount"}),
            ("negative string", b'{"amount":"-1.00","currency":"EUR"}', {"amount"}),
            ("exponent", b'{"amount":1e3,"currency":"EUR"}', {"amount"}),
            ("over-precise", b'{"amount":"1.001","currency":"EUR"}', {"amount"}),
            ("over-precise JPY", b'{"amount":"100.5","currency":"JPY"}', {"amount"}),
            ("huge", b'{"amount":123456789012345678901,"currency":"EUR"}', {"amount"}),
            ("NaN", b'{"amount":NaN,"currency":"EUR"}', {"body"}),
            ("NaN string", b'{"amount":"NaN","currency":"EUR"}', {"amount"}),
            ("bool", b'{"amount":true,"currency":"EUR"}', {"amount"}),
            ("bad currency", b'{"amount":"1.00","currency":"EURO"}', {"currency"}),
            ("unknown currency", b'{"amount":"1.00","currency":"ABC"}', {"currency"}),
            ("lower currency", b'{"amount":"1.00","currency":"eur"}', {"currency"}),
            ("unknown field", b'{"amount":"1.00","currency":"EUR","note":"x"}', {"note"}),
            ("everything", b'{"amount":"-1","currency":7,"x":1}', {"amount", "currency", "x"}),
        ]
        for name, raw, fields in cases:
            with self.subTest(case=name):
                r = self.call("PUT", "/products/%s/price" % product_id, raw=raw,
                              headers={"If-Match": '"1"'})
                self.assertError(r, 400, "VALIDATION_FAILED")
                self.assertTrue(fields <= set(r.error_fields()), r)
        self.assertEqual(self.server.get("/products/" + product_id).json()["version"], 1)

    # ------------------------------------------------------------ prices

    def test_price_change_reaches_get_price(self):
        product_id, _ = self.create()
        user = new_user()
        self.assertStatus(self.server.price(product_id, user), 404)
        r = self.set_price(product_id, 1, '"12.50"')
        self.assertStatus(r, 200)
        self.assertEqual(r.header("etag"), '"2"')
        self.assertIn(b'"price":{"amount":12.50,"currency":"EUR","effectiveFrom":', r.body)
        g = self.server.price(product_id, user)
        self.assertStatus(g, 200)
        self.assertEqual(g.body, ('{"productId":"%s","price":12.50,"currency":"EUR"}'
                                  % product_id).encode())
        # a JSON number keeps its text too
        r2 = self.set_price(product_id, 2, "7.10", "USD")
        self.assertStatus(r2, 200)
        self.assertEqual(self.server.price(product_id, user).body,
                         ('{"productId":"%s","price":7.10,"currency":"USD"}' % product_id).encode())

        h = self.server.get("/products/%s/price-history" % product_id)
        self.assertStatus(h, 200)
        items = h.json()["items"]
        self.assertEqual([(x["currency"], x["changedBy"], x["requestId"]) for x in items],
                         [("EUR", "local", r.request_id), ("USD", "local", r2.request_id)])
        self.assertIn(b'"amount":12.50,', h.body)
        self.assertIn(b'"amount":7.10,', h.body)
        self.assertEqual(items[0]["effectiveFrom"], r.json()["price"]["effectiveFrom"])

        recs = self.stores.records(product=product_id)
        changes = [x for x in recs if x["action"] == "PRICE_CHANGE"]
        self.assertEqual(len(changes), 2)
        c = changes[0]
        self.assertEqual(c["pk"], "ACTOR#local")
        self.assertEqual(c["gsi1pk"], "PRODUCT#" + product_id)
        self.assertEqual(c["gsi1sk"], c["sk"])
        self.assertEqual(c["sk"], "AUDIT#%s#%s" % (c["ts"], r.request_id))
        self.assertEqual(c["status"], "SUCCESS")
        self.assertEqual(c["requestId"], r.request_id)
        self.assertEqual(c["correlationId"], r.request_id)
        self.assertEqual(c["principal"], "local")
        self.assertEqual(c["before"], {"price": None})
        self.assertEqual(c["after"], {"price": {"amount": "12.50", "currency": "EUR"}})
        self.assertEqual(changes[1]["before"], {"price": {"amount": "12.50", "currency": "EUR"}})
        self.assertLessEqual(harness.parse_ts(c["ts"]), harness.parse_ts(items[0]["effectiveFrom"]))
        # the look-ups of the same product are in the same trail
        self.assertTrue(any(x["action"] == "PRICE_FETCH" for x in recs))

        # delete withdraws the price; the history stays
        d = self.server.request("DELETE", "/products/" + product_id, headers={"If-Match": '"3"'})
        self.assertStatus(d, 204)
        self.assertStatus(self.server.price(product_id, user), 404)
        self.assertEqual(len(self.server.get("/products/%s/price-history" % product_id).json()["items"]), 2)
        self.assertError(self.set_price(product_id, 4, '"1.00"'), 409, "CONFLICT")
        dele = self.writes(product_id)[-1]
        self.assertEqual(dele["action"], "PRODUCT_DELETE")
        self.assertEqual(dele["before"], {"status": "ACTIVE",
                                          "price": {"amount": "7.10", "currency": "USD"}})
        self.assertEqual(dele["after"], {"status": "DISCONTINUED", "price": None})

    def test_seeded_price_change(self):
        r = self.server.get("/products/PROD-00042")
        version = r.json()["version"]
        before = r.json()["price"]
        w = self.set_price("PROD-00042", version, '"3.25"', "CHF")
        self.assertStatus(w, 200)
        self.assertEqual(self.server.price("PROD-00042", new_user()).body,
                         b'{"productId":"PROD-00042","price":3.25,"currency":"CHF"}')
        rec = [x for x in self.writes("PROD-00042") if x["requestId"] == w.request_id]
        self.assertEqual(len(rec), 1)
        self.assertEqual(rec[0]["before"]["price"]["currency"], before["currency"])

    def test_concurrent_price_changes_one_winner(self):
        product_id, _ = self.create()
        n = 50
        barrier = threading.Barrier(n, timeout=60)
        results = [None] * n

        def work(i):
            try:
                barrier.wait()
                results[i] = self.set_price(product_id, 1, '"%d.00"' % (i + 1))
            except Exception as exc:  # reported below
                results[i] = exc

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads))
        bad = [r for r in results if not isinstance(r, harness.Response)]
        self.assertEqual(bad, [])
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses, [200] + [412] * (n - 1), statuses)
        winner = next(r for r in results if r.status == 200)
        amount = winner.json()["price"]["amount"]
        hist = self.server.get("/products/%s/price-history" % product_id).json()["items"]
        self.assertEqual(len(hist), 1)
        self.assertEqual(hist[0]["requestId"], winner.request_id)
        changes = [x for x in self.writes(product_id) if x["action"] == "PRICE_CHANGE"]
        self.assertEqual([(x["status"], x["requestId"]) for x in changes],
                         [("SUCCESS", winner.request_id)])
        g = self.server.price(product_id, new_user())
        self.assertEqual(g.json()["price"], amount)
        self.assertEqual(self.server.get("/products/" + product_id).header("etag"), '"2"')

    # ------------------------------------------------------------ idempotency

    def test_idempotent_create_and_price(self):
        product_id = pid()
        raw = body(productId=product_id)
        key = {"Idempotency-Key": "create-" + product_id}
        first = self.call("POST", "/products", raw=raw, headers=key)
        self.assertStatus(first, 201)
        again = self.call("POST", "/products", raw=raw, headers=key)
        self.assertStatus(again, 201)
        self.assertEqual(again.body, first.body)
        self.assertEqual(again.header("etag"), first.header("etag"))
        self.assertEqual(again.header("location"), first.header("location"))
        self.assertEqual(again.header("idempotent-replayed"), "true")
        other = self.call("POST", "/products", raw=body(productId=product_id, name="Other"),
                          headers=key)
        self.assertError(other, 422, "IDEMPOTENCY_KEY_REUSED")
        self.assertEqual(len(self.writes(product_id)), 1)

        pkey = {"Idempotency-Key": "price-" + product_id}
        p1 = self.set_price(product_id, 1, '"5.00"', headers=pkey)
        self.assertStatus(p1, 200)
        # the replay answers as the first did, even though version 1 is stale now
        p2 = self.set_price(product_id, 1, '"5.00"', headers=pkey)
        self.assertStatus(p2, 200)
        self.assertEqual(p2.body, p1.body)
        self.assertError(self.set_price(product_id, 1, '"6.00"', headers=pkey), 422,
                         "IDEMPOTENCY_KEY_REUSED")
        self.assertEqual(len(self.server.get("/products/%s/price-history" % product_id).json()["items"]), 1)
        # a refused request changed nothing and keeps no answer: a retry runs again
        dup = {"Idempotency-Key": "dup-" + product_id}
        self.assertError(self.call("POST", "/products", raw=raw, headers=dup), 409, "CONFLICT")
        self.assertError(self.call("POST", "/products", raw=raw, headers=dup), 409, "CONFLICT")
        self.assertStatus(self.call("POST", "/products", raw=body(productId=pid()), headers=dup), 201)
        r = self.call("POST", "/products", raw=raw, headers={"Idempotency-Key": "x" * 129})
        self.assertError(r, 400, "VALIDATION_FAILED")
        self.assertEqual(r.error_fields(), ["Idempotency-Key"])

    # ------------------------------------------------------------ lists

    def test_list_filters_and_cursor(self):
        category = "cat-" + uuid.uuid4().hex[:8]
        ids = sorted(pid("L") for _ in range(5))
        for i, product_id in enumerate(ids):
            self.create(product_id, category=category, status="INACTIVE" if i % 2 else "ACTIVE")
        got, cursor, pages = [], None, 0
        while True:
            q = "/products?category=%s&limit=2" % category + ("&cursor=" + cursor if cursor else "")
            r = self.server.get(q)
            self.assertStatus(r, 200)
            doc = r.json()
            got += [x["productId"] for x in doc["items"]]
            pages += 1
            cursor = doc["nextCursor"]
            if not cursor:
                break
            first_cursor = cursor
        self.assertEqual(got, ids)
        self.assertEqual(pages, 3)
        r = self.server.get("/products?category=%s&status=INACTIVE" % category)
        self.assertEqual([x["productId"] for x in r.json()["items"]], [ids[1], ids[3]])
        # a cursor is bound to its filters and validated
        r = self.server.get("/products?category=other&cursor=" + first_cursor)
        self.assertError(r, 400, "VALIDATION_FAILED")
        self.assertEqual(r.error_fields(), ["cursor"])
        for bad in ("limit=0", "limit=1001", "limit=x", "status=GONE", "cursor=%21%21", "colour=red",
                    "limit=1&limit=2"):
            with self.subTest(query=bad):
                self.assertError(self.server.get("/products?" + bad), 400, "VALIDATION_FAILED")
        r = self.server.get("/products?limit=1000")
        self.assertStatus(r, 200)
        self.assertEqual(len(r.json()["items"]), 1000)

    def test_routes_and_methods(self):
        r = self.server.request("PATCH", "/products/PROD-101")
        self.assertError(r, 405, "METHOD_NOT_ALLOWED")
        self.assertEqual(r.header("allow"), "GET, PUT, DELETE")
        self.assertError(self.server.request("POST", "/products/PROD-101/price"), 405,
                         "METHOD_NOT_ALLOWED")
        self.assertError(self.server.get("/products/PROD-101/nope"), 404, "ROUTE_NOT_FOUND")




@unittest.skipUnless(DDB_PRODUCTS, "the product store is not DynamoDB (PX_E2E_PRODUCT_STORE)")
class ProductsDynamoDBTest(ProductCalls, harness.ServerCase):
    """The DynamoDB product store (PX_E2E_PRODUCT_STORE=dynamodb:TABLE; ProductsTest runs on
    it too): the items read back with the AWS CLI (not with `pricing`), and two
    processes writing one product."""

    @property
    def table(self):
        return self.stores.product_store[len("dynamodb:"):]

    def item(self, pk, sk):
        key = json.dumps({"pk": {"S": pk}, "sk": {"S": sk}})
        return self.aws("get-item", "--table-name", self.table, "--key", key,
                        "--consistent-read").get("Item")

    @staticmethod
    def idem_pk(route, key, principal="local"):
        """The key of an idempotency record; route is "METHOD path" as requested."""
        return "T#default#IDEM#%d:%s#%s#%s" % (len(principal), principal, route, key)

    # ------------------------------------------------------------ tests

    def test_items_read_back_with_aws_cli(self):
        if not os.path.exists(AWS):
            self.skipTest("no AWS CLI at %s (Debian package awscli)" % AWS)
        product_id, _ = self.create(category="ddb", attributes={"k": "v"})
        r = self.set_price(product_id, 1, '"12.50"')
        self.assertStatus(r, 200)
        it = self.item("T#default#PRODUCT#" + product_id, "META")
        self.assertEqual(it["productId"], {"S": product_id})
        self.assertEqual(it["version"], {"N": "2"})
        self.assertEqual(it["priceAmount"], {"S": "12.50"})  # the exact text, not a number
        self.assertEqual(it["priceCurrency"], {"S": "EUR"})
        self.assertEqual(it["gsi1pk"], {"S": "T#default#CATEGORY#ddb"})
        self.assertEqual(it["gsi2pk"], {"S": "T#default#STATUS#ACTIVE"})
        self.assertTrue(it["gsi3pk"]["S"].startswith("T#default#PRODUCTS#"))
        for n in ("gsi1sk", "gsi2sk", "gsi3sk"):
            self.assertEqual(it[n], {"S": product_id})
        self.assertEqual(json.loads(it["attributes"]["S"]), {"k": "v"})
        self.assertEqual(it["updatedAt"]["S"], r.json()["updatedAt"])
        # the write lock is released after the write
        self.assertIsNone(self.item("T#default#PRODUCT#" + product_id, "LOCK"))
        # the category index answers the product (the list route reads it)
        q = self.aws("query", "--table-name", self.table, "--index-name", "gsi1",
                     "--key-condition-expression", "gsi1pk = :p",
                     "--expression-attribute-values",
                     json.dumps({":p": {"S": "T#default#CATEGORY#ddb"}}))
        self.assertIn(product_id, [x["productId"]["S"] for x in q["Items"]])

        key = "rb-" + product_id
        p = self.set_price(product_id, 2, '"13.00"', headers={"Idempotency-Key": key})
        self.assertStatus(p, 200)
        idem = self.item(self.idem_pk("PUT /products/%s/price" % product_id, key), "IDEM")
        self.assertIsNotNone(idem)
        self.assertEqual(idem["done"], {"BOOL": True})
        self.assertEqual(idem["answerStatus"], {"N": "200"})
        self.assertEqual(idem["answerBody"]["S"].encode(), p.body)
        self.assertEqual(idem["etag"], {"S": '"3"'})
        self.assertEqual(len(idem["bodyHash"]["S"]), 64)
        expires = int(idem["expiresAt"]["N"])  # the table's TTL attribute: 24 h
        self.assertLessEqual(abs(expires - (time.time() + 86400)), 120)

    def test_two_processes_one_winner(self):
        product_id, _ = self.create()
        other = harness.Server(self.stores)
        other.start()
        try:
            n = 20
            barrier = threading.Barrier(2 * n, timeout=60)
            results = [None] * (2 * n)

            def work(i):
                srv = self.server if i % 2 else other
                try:
                    barrier.wait()
                    h = {"If-Match": '"1"', "Content-Type": "application/json"}
                    raw = ('{"amount":"%d.00","currency":"EUR"}' % (i + 1)).encode()
                    results[i] = srv.request("PUT", "/products/%s/price" % product_id,
                                             headers=h, body=raw)
                except Exception as exc:  # reported below
                    results[i] = exc

            threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(2 * n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            self.assertFalse(any(t.is_alive() for t in threads))
            self.assertEqual([r for r in results if not isinstance(r, harness.Response)], [])
            statuses = sorted(r.status for r in results)
            self.assertEqual(statuses, [200] + [412] * (2 * n - 1), statuses)
        finally:
            other.stop_ok()
        winner = next(r for r in results if r.status == 200)
        hist = self.server.get("/products/%s/price-history" % product_id).json()["items"]
        self.assertEqual([x["requestId"] for x in hist], [winner.request_id])
        changes = [x for x in self.writes(product_id) if x["action"] == "PRICE_CHANGE"]
        self.assertEqual([(x["status"], x["requestId"]) for x in changes],
                         [("SUCCESS", winner.request_id)])


@unittest.skipUnless(DDB_PRODUCTS, "the product store is not DynamoDB (PX_E2E_PRODUCT_STORE)")
class ProductsDynamoDBHeldTest(ProductCalls, harness.ServerCase):
    """Writes held in flight on the DynamoDB product store: prices and the audit trail
    are this class's own SQLite files, so a test can hold the audit file's write lock and
    with it a change between its checks and its commit (AUDIT_TIMEOUT_MS 30 s); the
    catalogue is the run's table. Shows the in-flight Idempotency-Key 409, and the one
    state where a DynamoDB catalogue and a SQL price store disagree
    (docs/internals/products.md, "What is atomic")."""

    server_env = {"AUDIT_TIMEOUT_MS": "30000", "CONNECTION_TIMEOUT": "60"}

    @classmethod
    def setUpClass(cls):
        cls.stores = harness.Stores()
        cls.stores.price_db = "sqlite:%s" % (cls.stores.dir / "prices.db")
        cls.stores.audit_store = "sqlite:%s" % (cls.stores.dir / "audit.db")
        try:
            cls.stores.seed()
            cls.server = harness.Server(cls.stores, env=cls.server_env)
            cls.server.start()
        except BaseException:
            cls.stores.cleanup()
            raise

    def trail(self, product_id):
        r = run_cli(["audit", "query", "--product", product_id] + self.stores.flags())
        self.assertEqual(r.rc, 0, r)
        return [json.loads(x) for x in r.stdout.splitlines() if x.strip()]

    def test_idempotency_key_in_flight_conflict(self):
        """A first request held in flight (waiting for its audit record) keeps its key: a
        second request with the same key and body is 409 until the first answers; then
        the answer replays."""
        if not os.path.exists(AWS):
            self.skipTest("no AWS CLI at %s (Debian package awscli)" % AWS)
        product_id, _ = self.create()
        key = "inflight-" + product_id
        pk = "T#default#IDEM#5:local#PUT /products/%s/price#%s" % (product_id, key)
        first = {}
        con = sqlite3.connect(str(self.stores.audit_sqlite), timeout=10, isolation_level=None)
        try:
            con.execute("BEGIN EXCLUSIVE")
            t = threading.Thread(target=lambda: first.update(
                r=self.set_price(product_id, 1, '"9.99"', headers={"Idempotency-Key": key})),
                daemon=True)
            t.start()
            for _ in range(100):  # the first request has claimed the key
                if self.item(pk, "IDEM"):
                    break
                time.sleep(0.1)
            self.assertTrue(t.is_alive())
            second = self.set_price(product_id, 1, '"9.99"', headers={"Idempotency-Key": key})
            self.assertError(second, 409, "CONFLICT")
            self.assertTrue(t.is_alive())  # still held: the 409 was not a race with its end
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
            con.close()
        t.join(60)
        self.assertFalse(t.is_alive())
        self.assertStatus(first["r"], 200)
        again = self.set_price(product_id, 1, '"9.99"', headers={"Idempotency-Key": key})
        self.assertStatus(again, 200)
        self.assertEqual(again.body, first["r"].body)
        self.assertEqual(again.header("idempotent-replayed"), "true")
        self.assertEqual([x["status"] for x in self.trail(product_id)
                          if x["action"] == "PRICE_CHANGE"], ["SUCCESS"])

    def item(self, pk, sk):
        key = json.dumps({"pk": {"S": pk}, "sk": {"S": sk}})
        table = self.stores.product_store[len("dynamodb:"):]
        return self.aws("get-item", "--table-name", table, "--key", key,
                        "--consistent-read").get("Item")

    def test_product_put_fails_after_price_commit(self):
        """The price change commits, then the product's conditional put fails: here
        because the product's version moved while the change waited for its audit
        record, as a writer whose lock lease ran out would move it."""
        if not os.path.exists(AWS):
            self.skipTest("no AWS CLI at %s (Debian package awscli)" % AWS)
        product_id, _ = self.create()
        table = self.stores.product_store[len("dynamodb:"):]
        pk = {"pk": {"S": "T#default#PRODUCT#" + product_id}}
        con = sqlite3.connect(str(self.stores.audit_sqlite), timeout=10, isolation_level=None)
        result = {}
        try:
            con.execute("BEGIN EXCLUSIVE")  # the change waits for its audit record
            t = threading.Thread(target=lambda: result.update(
                r=self.set_price(product_id, 1, '"42.00"')), daemon=True)
            t.start()
            lock = dict(pk, sk={"S": "LOCK"})
            for _ in range(200):  # the request holds the product's lock ...
                if self.aws("get-item", "--table-name", table, "--key", json.dumps(lock),
                            "--consistent-read").get("Item"):
                    break
                time.sleep(0.05)
            time.sleep(3)  # ... and has read the product again (milliseconds after the lock)
            self.assertTrue(t.is_alive())
            self.aws(
                "update-item", "--table-name", table, "--key",
                json.dumps(dict(pk, sk={"S": "META"})), "--update-expression", "SET #v = :v",
                "--expression-attribute-names", '{"#v":"version"}',
                "--expression-attribute-values", '{":v":{"N":"99"}}')
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
            con.close()
        t.join(60)
        self.assertFalse(t.is_alive())
        r = result["r"]
        self.assertError(r, 500, "INTERNAL")
        # the price store committed: GET /price answers the new price, history has the row
        g = self.server.price(product_id, new_user())
        self.assertEqual(g.json()["price"], 42.00)
        hist = sqlite3.connect(str(self.stores.price_sqlite)).execute(
            "SELECT amount, request_id FROM price_history WHERE product_id = ?",
            (product_id,)).fetchall()
        self.assertEqual(hist, [("42.00", r.request_id)])
        # the product did not: it shows the version it was moved to, without the price
        p = self.server.get("/products/" + product_id)
        self.assertEqual((p.json()["version"], p.json()["price"]), (99, None))
        # and the trail says both: the change's record, then its failure
        recs = [x for x in self.trail(product_id) if x["action"] == "PRICE_CHANGE"]
        self.assertEqual([(x["status"], x["requestId"]) for x in recs],
                         [("SUCCESS", r.request_id), ("FAILED", r.request_id)])
        self.assertLess(recs[0]["ts"], recs[1]["ts"])
        self.assertEqual(recs[1]["after"], {"price": {"amount": "42.00", "currency": "EUR"}})


class ProductsInvokeTest(harness.StoresCase):
    """The same function through `pricing invoke product-service` (REST 1.0 and HTTP API 2.0)."""

    def invoke(self, fmt, method, path, raw=None, function="product-service", extra=()):
        args = ["generate-event", "apigateway", fmt, "--method", method, "--path", path]
        args += list(extra)
        if raw is not None:
            args += ["--body", raw]
        ev = run_cli(args)
        self.assertEqual(ev.rc, 0, ev)
        r = run_cli(["invoke", function, "--event", "-"] + self.stores.flags(),
                    stdin=ev.stdout)
        self.assertEqual(r.rc, 0, r)
        doc, headers, data = harness.check_invoke(r.stdout, method, path)
        return doc["statusCode"], headers, data

    def test_invoke_create_and_read(self):
        for fmt in ("aws-proxy", "http-api"):
            with self.subTest(fmt=fmt):
                product_id = pid("I")
                status, headers, data = self.invoke(fmt, "POST", "/products",
                                                    body(productId=product_id).decode())
                self.assertEqual(status, 201, data)
                self.assertEqual(headers["location"], "/products/" + product_id)
                status, headers, data = self.invoke(fmt, "GET", "/products/" + product_id)
                self.assertEqual(status, 200, data)
                self.assertEqual(headers["etag"], '"1"')
                self.assertEqual(json.loads(data)["productId"], product_id)
                recs = self.stores.records(product=product_id)
                self.assertEqual([x["action"] for x in recs], ["PRODUCT_CREATE"])
                if fmt == "aws-proxy":
                    self.assertIn("apiRequestId", recs[0])
        # a price change through invoke, then the look-up through price-fetcher
        product_id = pid("I")
        status, _, _ = self.invoke("http-api", "POST", "/products", body(productId=product_id).decode())
        self.assertEqual(status, 201)
        price = '{"amount":"4.20","currency":"GBP"}'
        status, _, data = self.invoke("http-api", "PUT", "/products/%s/price" % product_id, price)
        self.assertEqual((status, json.loads(data)["error"]["code"]), (428, "PRECONDITION_REQUIRED"))
        for fmt in ("http-api", "aws-proxy"):  # the second is a replay of the first
            status, headers, data = self.invoke(fmt, "PUT", "/products/%s/price" % product_id,
                                                price, extra=["--if-match", '"1"',
                                                              "--idempotency-key", "inv-1"])
            self.assertEqual(status, 200, data)
            self.assertEqual(headers["etag"], '"2"')
        status, _, data = self.invoke("http-api", "GET", "/price", function="price-fetcher",
                                      extra=["--query", "id=%s&userId=%s" % (product_id, new_user())])
        self.assertEqual(data, ('{"productId":"%s","price":4.20,"currency":"GBP"}'
                                % product_id).encode())
        # each function serves its own routes only
        status, _, data = self.invoke("aws-proxy", "GET", "/products/PROD-101",
                                      function="price-fetcher")
        self.assertEqual((status, json.loads(data)["error"]["code"]), (404, "ROUTE_NOT_FOUND"))


class ProductsAuthTest(harness.ServerCase):
    """Permissions product:read, product:write, price:read, price:write under AUTH_MODE=jwt."""

    @classmethod
    def setUpClass(cls):
        cls.keydir = Path(tempfile.mkdtemp(prefix="px-e2e-pauth-"))
        cls.secret_file = cls.keydir / "jwt.secret"
        cls.secret_file.write_bytes(b"e2e-secret-e2e-secret-e2e-secret-0123456789\n")
        cls.server_env = {"AUTH_MODE": "jwt", "AUTH_JWT_SECRET_FILE": str(cls.secret_file)}
        try:
            super().setUpClass()
        except BaseException:
            shutil.rmtree(str(cls.keydir), ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(str(cls.keydir), ignore_errors=True)

    def token(self, sub, scope):
        r = run_cli(["token", "--sub", sub, "--scope", scope, "--secret-file", str(self.secret_file)])
        self.assertEqual(r.rc, 0, r)
        return {"Authorization": "Bearer " + r.stdout.strip()}

    def test_permissions_and_principal(self):
        reader = self.token("reader", "product:read price:read")
        writer = self.token("alice", "product:write price:write product:read")
        product_id = pid("A")
        h = dict(JSON, **reader)
        r = self.server.request("POST", "/products", headers=h, body=body(productId=product_id))
        self.assertEqual(r.status, 403, r)
        self.assertEqual(self.server.request("POST", "/products", headers=JSON,
                                             body=body(productId=product_id)).status, 401)
        h = dict(JSON, **writer)
        r = self.server.request("POST", "/products", headers=h, body=body(productId=product_id))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.server.get("/products/" + product_id, headers=reader).status, 200)
        self.assertEqual(self.server.get("/products/%s/price-history" % product_id,
                                         headers=writer).status, 403)
        r = self.server.request("PUT", "/products/%s/price" % product_id,
                                headers=dict(JSON, **reader, **{"If-Match": '"1"'}),
                                body=b'{"amount":"1.00","currency":"EUR"}')
        self.assertEqual(r.status, 403, r)
        r = self.server.request("PUT", "/products/%s/price" % product_id,
                                headers=dict(h, **{"If-Match": '"1"'}),
                                body=b'{"amount":"1.00","currency":"EUR"}')
        self.assertEqual(r.status, 200, r)
        recs = [x for x in self.stores.records(product=product_id)]
        self.assertEqual([(x["action"], x["pk"], x["principal"]) for x in recs],
                         [("PRODUCT_CREATE", "ACTOR#alice", "alice"),
                          ("PRICE_CHANGE", "ACTOR#alice", "alice")])
        hist = self.server.get("/products/%s/price-history" % product_id, headers=reader).json()
        self.assertEqual(hist["items"][0]["changedBy"], "alice")


if __name__ == "__main__":
    unittest.main()
