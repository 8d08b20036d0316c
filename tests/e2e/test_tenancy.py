"""TENANCY (CONTRACT §12): tenant resolution from tokens, X-Tenant-ID and
API Gateway claims, and isolation: two tenants with the same product ids and
user ids, every route and CLI command tried across them, and nothing of one
is ever visible to or changed by the other."""

import gzip
import json
import os
import shutil
import sqlite3
import tempfile
import time
import unittest
import uuid
from pathlib import Path

import harness
from harness import new_user, run_cli
from test_auth import SECRET, bearer, claims, hs256, v2_event

JSON = {"Content-Type": "application/json"}
SAMPLE_101 = b'{"productId":"PROD-101","price":99.99,"currency":"USD"}'
ACME_101 = b'{"productId":"PROD-101","price":11.10,"currency":"EUR"}'
ACME_SEED = (
    "INSERT INTO product_prices (product_id, price, currency) VALUES\n"
    "('PROD-101','11.10','EUR'),\n('PROD-102','22.20','EUR')\n"
    "ON CONFLICT (product_id) DO UPDATE SET price = excluded.price, currency = excluded.currency;\n"
)




def pid():
    return "T-%s" % uuid.uuid4().hex[:12].upper()


def token(**kw):
    scope = "price:read audit:read product:read product:write price:write config:read config:write"
    return hs256(claims(scope=scope, **kw))


class TenancyJwtTest(harness.ServerCase):
    """serve --auth jwt --tenancy on, two seeded tenants: acme (its own prices)
    and globex (the sample prices), plus default from the ordinary seed."""

    @classmethod
    def setUpClass(cls):
        cls.keydir = Path(tempfile.mkdtemp(prefix="px-e2e-tenancy-"))
        try:
            cls.secret_file = cls.keydir / "jwt.secret"
            cls.secret_file.write_bytes(SECRET + b"\n")
            cls.server_env = {"AUTH_MODE": "jwt", "AUTH_JWT_SECRET_FILE": str(cls.secret_file),
                              "TENANCY": "on", "CORS_ALLOW_ORIGINS": "https://app.example.com"}
            super().setUpClass()
            seed = cls.keydir / "acme.sql"
            seed.write_text(ACME_SEED)
            flags = cls.stores.flags()
            for args in (["--tenant", "acme", "--seed-file", str(seed)], ["--tenant", "globex"]):
                r = run_cli(["db", "seed"] + args + flags, timeout=300)
                if r.rc != 0:
                    raise AssertionError("db seed %s: %r" % (args, r))
        except BaseException:
            shutil.rmtree(str(cls.keydir), ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(str(cls.keydir), ignore_errors=True)

    ACME = bearer(token(sub="alice", tenant="acme"))
    GLOBEX = bearer(token(sub="alice", tenant="globex"))  # the same subject in both

    def call(self, method, target, auth, doc=None, headers=None, raw=None):
        h = dict(auth)
        if doc is not None or raw is not None:
            h.update(JSON)
        h.update(headers or {})
        data = raw if raw is not None else (None if doc is None else json.dumps(doc).encode())
        return self.server.request(method, target, headers=h, body=data)

    def assertError(self, r, status, code):
        self.assertStatus(r, status)
        self.assertEqual(r.json()["error"]["code"], code, r)

    def audit_cli(self, tenant, user=None, product=None, extra=()):
        args = ["audit", "query"] + (["--tenant", tenant] if tenant else [])
        args += ["--user", user] if user else ["--product", product]
        r = run_cli(args + list(extra) + self.stores.flags())
        self.assertEqual(r.rc, 0, r)
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    # ------------------------------------------------------------ resolution

    def test_token_rules(self):
        user = new_user()
        target = "/price?id=PROD-101&userId=" + user
        # no tenant claim at all: the caller belongs to no tenant
        r = self.server.get(target, headers=dict(bearer(token()), **{"X-Tenant-ID": "acme"}))
        self.assertError(r, 403, "FORBIDDEN")
        # a tenant not among `tenants`
        many = bearer(token(tenants=["acme", "globex"]))
        r = self.server.get(target, headers=dict(many, **{"X-Tenant-ID": "initech"}))
        self.assertError(r, 403, "FORBIDDEN")
        # `tenants` and no header, or a malformed one: 400 naming the header
        r = self.server.get(target, headers=many)
        self.assertError(r, 400, "VALIDATION_FAILED")
        self.assertEqual(r.json()["error"]["details"][0]["field"], "X-Tenant-ID")
        r = self.server.get(target, headers=dict(many, **{"X-Tenant-ID": "ACME"}))
        self.assertError(r, 400, "VALIDATION_FAILED")
        # the header without a token in jwt mode: 401, the header grants nothing
        r = self.server.get(target, headers={"X-Tenant-ID": "acme"})
        self.assertError(r, 401, "UNAUTHORIZED")
        # a header that differs from the single `tenant` claim
        r = self.server.get(target, headers=dict(self.ACME, **{"X-Tenant-ID": "globex"}))
        self.assertError(r, 403, "FORBIDDEN")
        # none of the refusals was audited, in any tenant
        for t in ("acme", "globex", "initech", "default"):
            self.assertEqual(self.audit_cli(t, user=user), [])
        # the same header as the claim, and a listed tenant, are fine
        r = self.server.get(target, headers=dict(self.ACME, **{"X-Tenant-ID": "acme"}))
        self.assertStatus(r, 200)
        self.assertEqual(r.body, ACME_101)
        r = self.server.get(target, headers=dict(many, **{"X-Tenant-ID": "globex"}))
        self.assertStatus(r, 200)
        self.assertEqual(r.body, SAMPLE_101)

    def test_cors_preflight_allows_the_header(self):
        r = self.server.request("OPTIONS", "/price", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, x-tenant-id"}, validate=False)
        self.assertStatus(r, 204)
        allowed = [h.strip().lower() for h in r.header("access-control-allow-headers").split(",")]
        self.assertIn("x-tenant-id", allowed)
        self.assertIn("authorization", allowed)

    def test_tenant_in_log_lines(self):
        user = new_user()
        r = self.server.get("/price?id=PROD-101&userId=" + user, headers=self.ACME)
        self.assertStatus(r, 200)
        rid = r.request_id
        deadline = time.time() + 5
        lines = []
        while time.time() < deadline:
            lines = [json.loads(l) for l in self.server.log_lines()]
            lines = [l for l in lines if l.get("requestId") == rid]
            if lines:
                break
            time.sleep(0.05)
        self.assertTrue(lines)
        for line in lines:
            self.assertEqual(line.get("tenantId"), "acme", line)

    # ------------------------------------------------------------ prices and audit

    def test_prices_and_audit_apart(self):
        user = new_user()  # the same user id in both tenants
        target = "/price?id=PROD-101&userId=" + user
        a = self.server.get(target, headers=self.ACME)
        g = self.server.get(target, headers=self.GLOBEX)
        self.assertEqual((a.status, a.body), (200, ACME_101))
        self.assertEqual((g.status, g.body), (200, SAMPLE_101))
        # a product only acme has a price for
        self.assertStatus(self.server.get("/price?id=PROD-102&userId=" + user,
                                          headers=self.GLOBEX), 200)
        r = self.server.get("/price?id=PROD-103&userId=" + user, headers=self.ACME)
        self.assertError(r, 404, "NOT_FOUND")

        for auth, tenant, n in ((self.ACME, "acme", 2), (self.GLOBEX, "globex", 2)):
            r = self.server.get("/audit?userId=" + user, headers=auth)
            self.assertStatus(r, 200)
            items = r.json()["items"]
            self.assertEqual(len(items), n, items)
            for it in items:
                self.assertEqual(it["tenantId"], tenant)
                self.assertTrue(it["pk"].startswith("T#%s#USER#" % tenant), it)
            ids = {it["requestId"] for it in items}
            self.assertIn((a if tenant == "acme" else g).request_id, ids)
            cli = self.audit_cli(tenant, user=user)
            self.assertEqual({c["requestId"] for c in cli}, ids)
        # the default tenant saw none of it
        self.assertEqual(self.audit_cli(None, user=user), [])
        self.assertEqual(self.audit_cli("default", user=user), [])

    def test_audit_cursor_across_tenants(self):
        user = new_user()
        for _ in range(3):
            self.assertStatus(self.server.get("/price?id=PROD-101&userId=" + user,
                                              headers=self.ACME), 200)
        self.assertStatus(self.server.get("/price?id=PROD-101&userId=" + user,
                                          headers=self.GLOBEX), 200)
        r = self.server.get("/audit?userId=%s&limit=1" % user, headers=self.ACME)
        cursor = r.json()["nextCursor"]
        self.assertTrue(cursor)
        acme_ids = {it["requestId"] for it in self.server.get(
            "/audit?userId=" + user, headers=self.ACME).json()["items"]}
        # replayed by globex: an error, or globex's own records, never acme's
        r = self.server.get("/audit?userId=%s&cursor=%s" % (user, cursor), headers=self.GLOBEX)
        self.assertIn(r.status, (200, 400), r)
        if r.status == 200:
            for it in r.json()["items"]:
                self.assertEqual(it["tenantId"], "globex")
                self.assertNotIn(it["requestId"], acme_ids)

    # ------------------------------------------------------------ products

    def test_products_apart(self):
        p = pid()
        doc = {"productId": p, "name": "Acme widget", "category": "tools"}
        self.assertStatus(self.call("POST", "/products", self.ACME, doc), 201)
        self.assertError(self.call("GET", "/products/" + p, self.GLOBEX), 404, "NOT_FOUND")
        # the same id is free in globex
        doc_g = dict(doc, name="Globex widget")
        self.assertStatus(self.call("POST", "/products", self.GLOBEX, doc_g), 201)
        self.assertEqual(self.call("GET", "/products/" + p, self.ACME).json()["name"],
                         "Acme widget")
        self.assertEqual(self.call("GET", "/products/" + p, self.GLOBEX).json()["name"],
                         "Globex widget")
        # a change in acme: version, price and /price move in acme only
        r = self.call("PUT", "/products/%s/price" % p, self.ACME, raw=b'{"amount":"3.30",'
                      b'"currency":"EUR"}', headers={"If-Match": '"1"'})
        self.assertStatus(r, 200)
        g = self.call("GET", "/products/" + p, self.GLOBEX).json()
        self.assertEqual((g["version"], g["price"]), (1, None))
        user = new_user()
        r = self.server.get("/price?id=%s&userId=%s" % (p, user), headers=self.GLOBEX)
        self.assertError(r, 404, "NOT_FOUND")
        r = self.server.get("/price?id=%s&userId=%s" % (p, user), headers=self.ACME)
        self.assertEqual(r.body, ('{"productId":"%s","price":3.30,"currency":"EUR"}' % p).encode())
        hist = self.call("GET", "/products/%s/price-history" % p, self.GLOBEX)
        self.assertStatus(hist, 200)
        self.assertEqual(hist.json()["items"] if "items" in hist.json() else hist.json(), [])
        # globex's stale If-Match cannot touch acme's product, and deleting
        # in globex leaves acme's alone
        self.assertStatus(self.call("DELETE", "/products/" + p, self.GLOBEX,
                                    headers={"If-Match": '"1"'}), 204)
        self.assertEqual(self.call("GET", "/products/" + p, self.ACME).json()["status"], "ACTIVE")
        # lists: each tenant sees its own
        la = self.call("GET", "/products?category=tools&limit=1000", self.ACME).json()["items"]
        lg = self.call("GET", "/products?category=tools&limit=1000", self.GLOBEX).json()["items"]
        self.assertEqual([i["name"] for i in la if i["productId"] == p], ["Acme widget"])
        self.assertEqual([i["status"] for i in lg if i["productId"] == p], ["DISCONTINUED"])
        # write records carry the tenant, under its keys
        recs = self.audit_cli("acme", product=p)
        self.assertTrue(recs)
        self.assertTrue(all(r["tenantId"] == "acme" and r["gsi1pk"] == "T#acme#PRODUCT#" + p
                            for r in recs), recs)
        self.assertTrue(all(r["tenantId"] == "globex" for r in self.audit_cli("globex", product=p)))
        self.assertEqual(self.audit_cli(None, product=p), [])

    def test_idempotency_key_across_tenants(self):
        p = pid()
        key = {"Idempotency-Key": "same-key-" + p}
        a = self.call("POST", "/products", self.ACME, {"productId": p, "name": "A",
                                                       "category": "c"}, headers=key)
        self.assertStatus(a, 201)
        # same subject, same key, another tenant and body: a first use there
        g = self.call("POST", "/products", self.GLOBEX, {"productId": p, "name": "G",
                                                         "category": "c"}, headers=key)
        self.assertStatus(g, 201)
        self.assertIsNone(g.header("idempotent-replayed"))
        self.assertEqual(g.json()["name"], "G")
        # and each replays its own answer
        again = self.call("POST", "/products", self.GLOBEX, {"productId": p, "name": "G",
                                                             "category": "c"}, headers=key)
        self.assertEqual(again.body, g.body)
        self.assertEqual(again.header("idempotent-replayed"), "true")

    # ------------------------------------------------------------ config and flags

    def test_maintenance_flag_per_tenant(self):
        """flags.maintenance of one tenant stops that tenant's look-ups only."""
        user = new_user()
        target = "/price?id=PROD-101&userId=" + user
        r = self.call("PUT", "/config/flags.maintenance", self.ACME,
                      {"default": True, "rules": []}, headers={"If-None-Match": "*"})
        self.assertStatus(r, 201)
        try:
            r = self.server.get(target, headers=self.ACME)
            self.assertError(r, 503, "MAINTENANCE")
            self.assertTrue(r.header("retry-after"))
            self.assertStatus(self.server.get(target, headers=self.GLOBEX), 200)
            # nothing audited for the refused look-up, globex's is there
            self.assertEqual(self.audit_cli("acme", user=user), [])
            self.assertEqual(len(self.audit_cli("globex", user=user)), 1)
        finally:
            r = self.call("PUT", "/config/flags.maintenance", self.ACME,
                          {"default": False, "rules": []}, headers={"If-Match": '"1"'})
            self.assertStatus(r, 200)
        self.assertStatus(self.server.get(target, headers=self.ACME), 200)

    def test_config_and_flags_apart(self):
        k = "flags.t%s" % uuid.uuid4().hex[:8]
        flag = {"default": False, "rules": [{"when": {"attribute": "country", "in": ["AT"]},
                                             "value": True}]}
        r = self.call("PUT", "/config/" + k, self.ACME, flag, headers={"If-None-Match": "*"})
        self.assertStatus(r, 201)
        self.assertError(self.call("GET", "/config/" + k, self.GLOBEX), 404, "NOT_FOUND")
        self.assertNotIn(k, [i["key"] for i in self.call("GET", "/config", self.GLOBEX)
                             .json()["items"]])
        ctx = {"context": {"targetingKey": "u1", "country": "AT"}}
        a = self.call("POST", "/ofrep/v1/evaluate/flags/" + k, self.ACME, ctx)
        self.assertStatus(a, 200)
        self.assertIs(a.json()["value"], True)
        g = self.call("POST", "/ofrep/v1/evaluate/flags/" + k, self.GLOBEX, ctx)
        self.assertEqual(g.status, 404, g)
        # globex creates the same key with another value; acme's stays
        r = self.call("PUT", "/config/" + k, self.GLOBEX, {"default": True, "rules": []},
                      headers={"If-None-Match": "*"})
        self.assertStatus(r, 201)
        self.assertIs(self.call("POST", "/ofrep/v1/evaluate/flags/" + k, self.GLOBEX,
                                {"context": {"targetingKey": "u1", "country": "US"}})
                      .json()["value"], True)
        self.assertIs(self.call("POST", "/ofrep/v1/evaluate/flags/" + k, self.ACME,
                                {"context": {"targetingKey": "u1", "country": "US"}})
                      .json()["value"], False)
        recs = run_cli(["audit", "query", "--tenant", "acme", "--config", k] + self.stores.flags())
        self.assertEqual(recs.rc, 0, recs)
        lines = [json.loads(l) for l in recs.stdout.splitlines()]
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(lines[0]["tenantId"], "acme")


class TenancyInvokeTest(harness.StoresCase):
    """invoke: AUTH_MODE=none takes X-Tenant-ID as given; apigw takes the claims."""

    def invoke(self, event, env):
        r = run_cli(["invoke", "price-fetcher", "--event", "-"] + self.stores.flags(),
                    env=dict({"TENANCY": "on"}, **env), stdin=json.dumps(event))
        self.assertEqual(r.rc, 0, r)
        doc, _, body = harness.check_invoke(r.stdout, "GET", "/price")
        return doc["statusCode"], body

    def test_none_mode_header(self):
        user = new_user()
        status, body = self.invoke(v2_event(user, headers={"x-tenant-id": "default"}),
                                   {"AUTH_MODE": "none"})
        self.assertEqual((status, body), (200, SAMPLE_101))
        status, body = self.invoke(v2_event(user), {"AUTH_MODE": "none"})
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["error"]["details"][0]["field"], "X-Tenant-ID")
        # an unseeded tenant has no prices: 404, audited in that tenant
        status, _ = self.invoke(v2_event(user, headers={"x-tenant-id": "nobody"}),
                                {"AUTH_MODE": "none"})
        self.assertEqual(status, 404)
        recs = run_cli(["audit", "query", "--tenant", "nobody", "--user", user]
                       + self.stores.flags())
        self.assertEqual([json.loads(l)["status"] for l in recs.stdout.splitlines()],
                         ["NOT_FOUND"])
        # the default tenant's record: today's keys plus tenantId
        recs = run_cli(["audit", "query", "--tenant", "default", "--user", user]
                       + self.stores.flags())
        rec = json.loads(recs.stdout.splitlines()[0])
        self.assertEqual((rec["pk"], rec["tenantId"]), ("USER#" + user, "default"))

    def test_apigw_claims(self):
        user = new_user()
        ev = v2_event(user, {"sub": "gw", "scope": "price:read", "tenants": "[default other]"},
                      headers={"x-tenant-id": "default"})
        status, body = self.invoke(ev, {"AUTH_MODE": "apigw"})
        self.assertEqual((status, body), (200, SAMPLE_101))
        ev = v2_event(user, {"sub": "gw", "scope": "price:read", "tenant": "other"},
                      headers={"x-tenant-id": "default"})
        status, _ = self.invoke(ev, {"AUTH_MODE": "apigw"})
        self.assertEqual(status, 403)

    def test_tenancy_off_unchanged(self):
        user = new_user()
        r = run_cli(["invoke", "price-fetcher", "--event", "-"] + self.stores.flags(),
                    env={"AUTH_MODE": "none"},
                    stdin=json.dumps(v2_event(user, headers={"x-tenant-id": "acme"})))
        self.assertEqual(r.rc, 0, r)
        doc, _, body = harness.check_invoke(r.stdout, "GET", "/price")
        self.assertEqual((doc["statusCode"], body), (200, SAMPLE_101))
        rec = self.stores.records(user=user)[0]
        self.assertNotIn("tenantId", rec)
        self.assertEqual(rec["pk"], "USER#" + user)


class TenancyAuditTrailTest(unittest.TestCase):
    """The tamper-evident trail with TENANCY=on: two tenants with the same user and
    product ids on one trail (chains span tenants). `audit export --tenant` writes
    only that tenant's records under a digest naming it; `audit verify --tenant`
    checks every record and counts the tenant's; a broken record of another tenant
    is named by writer and wseq only."""

    @classmethod
    def setUpClass(cls):
        cls.stores = harness.Stores()
        spec = cls.stores.audit_store
        if spec.startswith("dynamodb:"):
            cls.stores.cleanup()
            raise unittest.SkipTest("a shared DynamoDB trail: tests/integration/"
                                    "test_ddb_integrity.py checks verify --tenant there")
        if spec.startswith("lsm:"):  # a trail of its own: only this class's chained records
            cls.stores.audit_store = "lsm:%s" % (cls.stores.dir / "audit-lsm")
        try:
            d = cls.stores.dir
            for prefix in ("sign", "other"):
                r = run_cli(["audit", "keygen", "--out", str(d / prefix)])
                assert r.rc == 0, r
            cls.pub = str(d / "sign.pub")
            cls.env = {"AUDIT_SIGNING_KEY_FILE": str(d / "sign.key")}
            # fresh names: an external store keeps other runs' tenants
            tag = uuid.uuid4().hex[:6]
            cls.ta, cls.tb = "ta-" + tag, "tb-" + tag
            cls.user = new_user()  # the same user and product ids in both tenants
            flags = cls.stores.flags()
            for args in ([], ["--tenant", cls.ta], ["--tenant", cls.tb]):
                r = run_cli(["db", "seed"] + args + flags, env=cls.env, timeout=300)
                assert r.rc == 0, r
            server = harness.Server(cls.stores, env=dict(cls.env, TENANCY="on", AUTH_MODE="none"))
            server.start()
            try:
                for tenant, n in ((cls.ta, 3), (cls.tb, 2), ("default", 1)):
                    for _ in range(n):
                        r = server.price("PROD-101", cls.user, headers={"X-Tenant-ID": tenant})
                        assert r.status == 200, r
            finally:
                server.stop_ok()  # every record written and checkpointed
        except BaseException:
            cls.stores.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stores.cleanup()

    def cli(self, args, spec=None):
        return run_cli(["audit"] + args + ["--audit-store", spec or self.stores.audit_store],
                       env=self.env)

    def export(self, tenant, d=None):
        d = d or self.stores.dir / ("exp-%s" % uuid.uuid4().hex[:8])
        r = self.cli(["export", "--out", str(d)] + (["--tenant", tenant] if tenant else []))
        self.assertEqual(r.rc, 0, r)
        return d, r

    def lines(self, d):
        out = []
        for name in sorted(os.listdir(d)):
            if name.endswith(".jsonl.gz"):
                with gzip.open(d / name, "rt") as f:
                    out += [json.loads(l) for l in f]
        return out

    def verify_export(self, d):
        return run_cli(["audit", "verify", "--export", str(d), "--public-key", self.pub])

    def test_export_tenant_only_its_records(self):
        d, r = self.export(self.ta)
        self.assertIn("3 records of tenant %s" % self.ta, r.stdout)
        recs = self.lines(d)
        self.assertEqual(len(recs), 3, recs)
        for rec in recs:
            self.assertEqual(rec["tenantId"], self.ta)
            self.assertEqual(rec["userId"], self.user)
        digest = (d / "digest-000001.txt").read_text()
        self.assertIn("\ncreated ", digest)
        self.assertIn("\ntenant %s\nfile " % self.ta, digest)
        r = self.verify_export(d)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("1 digest(s) chained, 1 file(s), 3 records of tenant %s" % self.ta, r.stdout)
        # the default tenant: the records without a tenant
        d, _ = self.export("default")
        recs = [x for x in self.lines(d) if x.get("userId") == self.user]
        self.assertEqual(len(recs), 1, recs)
        self.assertNotIn("tenantId", recs[0])
        # no --tenant: the whole trail, every tenant, a digest without a tenant line
        d, _ = self.export(None)
        mine = [x for x in self.lines(d) if x.get("userId") == self.user]
        self.assertEqual(sorted(x.get("tenantId", "") for x in mine),
                         ["", self.ta, self.ta, self.ta, self.tb, self.tb])
        self.assertNotIn("\ntenant ", (d / "digest-000001.txt").read_text())
        r = self.verify_export(d)
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("of tenant", r.stdout)

    def test_export_tenant_usage(self):
        d = self.stores.dir / "exp-usage"
        for bad in ("Acme", "a_b", "", "x" * 65):
            r = self.cli(["export", "--out", str(d), "--tenant", bad])
            self.assertEqual(r.rc, 2, r)
            self.assertIn("--tenant", r.stderr)
        # one directory, one tenant: appending another tenant's export is refused
        d, _ = self.export(self.ta)
        for other in (self.tb, None):
            r = self.cli(["export", "--out", str(d)] + (["--tenant", other] if other else []))
            self.assertEqual(r.rc, 2, r)
            self.assertIn("one digest chain holds one tenant", r.stderr)
        self.assertEqual(sorted(os.listdir(d)), ["digest-000001.txt", "records-000001-0001.jsonl.gz"])
        r = run_cli(["audit", "verify", "--export", str(d), "--public-key", self.pub,
                     "--tenant", self.ta])
        self.assertEqual(r.rc, 2, r)

    def test_digest_of_another_tenant_fails(self):
        a, _ = self.export(self.ta)
        self.export(self.ta, a)
        b, _ = self.export(self.tb)
        self.export(self.tb, b)
        self.assertEqual(self.verify_export(a).rc, 0)
        self.assertEqual(self.verify_export(b).rc, 0)
        shutil.copy(b / "digest-000002.txt", a / "digest-000002.txt")
        r = self.verify_export(a)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("BROKEN at %s: an export of tenant %s in a chain of exports of tenant %s"
                      % (a / "digest-000002.txt", self.tb, self.ta), r.stdout)

    def test_verify_tenant_counts(self):
        r = self.cli(["verify", "--public-key", self.pub])
        self.assertEqual(r.rc, 0, r)
        total = int(r.stdout.split("OK: ")[1].split()[0])
        self.assertNotIn("tenant", r.stdout)
        for tenant, n in ((self.ta, 3), (self.tb, 2)):
            r = self.cli(["verify", "--public-key", self.pub, "--tenant", tenant])
            self.assertEqual(r.rc, 0, r)
            self.assertIn("%d records checked" % total, r.stdout)
            self.assertIn("tenant %s: %d of these records are its own; the other %d belong to "
                          "other tenants" % (tenant, n, total - n), r.stdout)
        r = self.cli(["verify", "--public-key", self.pub, "--tenant", "No!"])
        self.assertEqual(r.rc, 2, r)

    @unittest.skipUnless(os.environ.get("PX_E2E_AUDIT_STORE", "sqlite:").startswith("sqlite:"),
                         "tampers with a SQLite file")
    def test_verify_tenant_hides_another_tenants_broken_record(self):
        src = self.stores.audit_sqlite
        db = self.stores.dir / ("tampered-%s.db" % uuid.uuid4().hex[:6])
        con = sqlite3.connect(str(src))
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        shutil.copy(src, db)
        con = sqlite3.connect(str(db))
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            con.execute('DROP TRIGGER "%s"' % name)
        seq, writer, wseq = con.execute(
            "SELECT seq, writer, wseq FROM audit WHERE pk = ? ORDER BY seq LIMIT 1",
            ("T#%s#USER#%s" % (self.tb, self.user),)).fetchone()
        con.execute("UPDATE audit SET status = 'ERROR' WHERE seq = ?", (seq,))
        con.commit()
        con.close()
        spec = "sqlite:%s" % db
        r = self.cli(["verify", "--public-key", self.pub], spec)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("BROKEN at audit seq %d " % seq, r.stdout)
        r = self.cli(["verify", "--public-key", self.pub, "--tenant", self.ta], spec)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("BROKEN at a record of another tenant (writer %s wseq %d): changed"
                      % (writer, wseq), r.stdout)
        for secret in (self.user, self.tb, "PROD-101", "audit seq"):
            self.assertNotIn(secret, r.stdout + r.stderr)
        # the tenant's own broken record is named as the store names it
        r = self.cli(["verify", "--public-key", self.pub, "--tenant", self.tb], spec)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("BROKEN at audit seq %d " % seq, r.stdout)


if __name__ == "__main__":
    unittest.main()
