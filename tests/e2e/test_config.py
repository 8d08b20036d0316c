"""config-service (CONTRACT §9): configuration and feature flags, conditional
writes, CONFIG_CHANGE audit records, the OFREP endpoints, and the consumers:
price-fetcher's flags.maintenance and its per-user rollout flag read through
the config cache (CONFIG_CACHE_TTL_S, CONFIG_STALE_MAX_S)."""

import hashlib
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


def key(prefix="t"):
    """A fresh key, so tests sharing one store never meet."""
    return "%s.%s" % (prefix, uuid.uuid4().hex[:12])


def bucket(flag_name, targeting_key):
    """The documented bucket of kernel/flags.h, computed independently."""
    d = hashlib.sha256(("%s\n%s" % (flag_name, targeting_key)).encode()).digest()
    return int.from_bytes(d[:8], "big") % 10000


class ConfigCase(harness.ServerCase):
    def put(self, k, value, if_match=None, create=False, raw=None, headers=None):
        h = dict(JSON)
        if create:
            h["If-None-Match"] = "*"
        if if_match is not None:
            h["If-Match"] = '"%d"' % if_match
        h.update(headers or {})
        data = raw if raw is not None else json.dumps(value).encode()
        return self.server.request("PUT", "/config/" + k, headers=h, body=data)

    def ofrep(self, name, context, headers=None):
        h = dict(JSON, **(headers or {}))
        path = "/ofrep/v1/evaluate/flags" + ("/" + name if name is not None else "")
        return self.server.request("POST", path, headers=h,
                                   body=json.dumps({"context": context}).encode())

    def assertError(self, r, status, code):
        self.assertStatus(r, status)
        self.assertEqual(r.json()["error"]["code"], code, r)

    def changes(self, k):
        return run_config_records(self.stores, k)


def run_config_records(stores, k):
    r = run_cli(["audit", "query", "--config", k, "--limit", "1000"], env=stores.env())
    if r.rc != 0:
        raise AssertionError("audit query --config failed: %r" % r)
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


class ConfigTest(ConfigCase):
    # ------------------------------------------------------------ CRUD + audit

    def test_create_read_update_list_audited(self):
        k = key("app")
        r = self.put(k, {"limit": 10, "names": ["a"]}, create=True)
        self.assertStatus(r, 201)
        self.assertEqual(r.header("etag"), '"1"')
        self.assertEqual(r.header("location"), "/config/" + k)
        doc = r.json()
        self.assertEqual((doc["key"], doc["value"], doc["version"], doc["updatedBy"]),
                         (k, {"limit": 10, "names": ["a"]}, 1, "local"))
        g = self.server.get("/config/" + k)
        self.assertStatus(g, 200)
        self.assertEqual((g.header("etag"), g.json()), ('"1"', doc))
        u = self.put(k, 42, if_match=1)
        self.assertStatus(u, 200)
        self.assertEqual((u.header("etag"), u.json()["value"], u.json()["version"]), ('"2"', 42, 2))
        # any JSON value: strings, null, arrays
        for v in ("text", None, [1, "x"], False, 1.5):
            k2 = key("any")
            self.assertStatus(self.put(k2, v, create=True), 201)
            self.assertEqual(self.server.get("/config/" + k2).json()["value"], v)
        items = self.server.get("/config").json()["items"]
        keys = [x["key"] for x in items]
        self.assertEqual(keys, sorted(keys))
        self.assertIn(k, keys)
        self.assertEqual(next(x for x in items if x["key"] == k)["value"], 42)

        recs = self.changes(k)
        self.assertEqual([x["requestId"] for x in recs], [r.request_id, u.request_id])
        for x in recs:
            self.assertEqual((x["action"], x["status"], x["pk"], x["gsi1pk"], x["configKey"]),
                             ("CONFIG_CHANGE", "SUCCESS", "ACTOR#local", "CONFIG#" + k, k))
            self.assertNotIn("productId", x)
        self.assertNotIn("before", recs[0])
        self.assertEqual(recs[0]["after"], {"value": {"limit": 10, "names": ["a"]}, "version": 1})
        self.assertEqual(recs[1]["before"], {"value": {"limit": 10, "names": ["a"]}, "version": 1})
        self.assertEqual(recs[1]["after"], {"value": 42, "version": 2})

    def test_secret_values_never_in_clear(self):
        secret = "s3cr3t-%s" % uuid.uuid4().hex
        for k in (key("secrets"), "payments.%s.secret_key" % uuid.uuid4().hex[:8]):
            r = self.put(k, secret, create=True)
            self.assertStatus(r, 201)
            self.assertStatus(self.put(k, secret + "-2", if_match=1), 200)
            recs = self.changes(k)
            self.assertEqual(len(recs), 2)
            self.assertEqual(recs[0]["after"], {"value": "[REDACTED]", "version": 1})
            self.assertEqual(recs[1]["before"], {"value": "[REDACTED]", "version": 1})
            self.assertNotIn(secret, json.dumps(recs))
        # a key that merely contains the word is not secret
        k = "app.nosecret.%s" % uuid.uuid4().hex[:8]
        self.assertStatus(self.put(k, "visible", create=True), 201)
        self.assertEqual(self.changes(k)[0]["after"]["value"], "visible")
        self.assertNotIn(secret, self.server.stdout() + self.server.stderr())

    # ------------------------------------------------------------ conditional writes

    def test_preconditions(self):
        k = key("pre")
        self.assertError(self.put(k, 1), 428, "PRECONDITION_REQUIRED")
        self.assertError(self.put(k, 1, if_match=1), 404, "NOT_FOUND")
        self.assertStatus(self.put(k, 1, create=True), 201)
        self.assertError(self.put(k, 2, create=True), 412, "PRECONDITION_FAILED")
        self.assertError(self.put(k, 2, if_match=2), 412, "PRECONDITION_FAILED")
        self.assertError(self.put(k, 2, headers={"If-Match": "nonsense"}), 412,
                         "PRECONDITION_FAILED")
        self.assertError(self.put(k, 2, headers={"If-None-Match": '"1"'}), 400,
                         "VALIDATION_FAILED")
        self.assertStatus(self.put(k, 2, headers={"If-Match": "*"}), 200)
        self.assertEqual(self.server.get("/config/" + k).json()["version"], 2)
        self.assertEqual(len(self.changes(k)), 2)  # refused writes leave no record

    def test_bad_requests(self):
        self.assertError(self.server.get("/config/Upper"), 400, "VALIDATION_FAILED")
        self.assertError(self.server.get("/config/" + "a" * 129), 400, "VALIDATION_FAILED")
        self.assertError(self.server.get("/config/" + key("none")), 404, "NOT_FOUND")
        self.assertError(self.server.get("/config?x=1"), 400, "VALIDATION_FAILED")
        k = key("bad")
        r = self.server.request("PUT", "/config/" + k, headers={"Content-Type": "text/plain",
                                                                 "If-None-Match": "*"}, body=b"1")
        self.assertError(r, 415, "UNSUPPORTED_MEDIA_TYPE")
        self.assertError(self.put(k, None, create=True, raw=b'"' + b"x" * 65536 + b'"'), 413,
                         "PAYLOAD_TOO_LARGE")
        r = self.put(k, None, create=True, raw=b"{not json")
        self.assertError(r, 400, "VALIDATION_FAILED")
        self.assertEqual(r.json()["error"]["details"][0]["field"], "body")
        self.assertError(self.put(k, None, create=True, raw=b'{"a":1,"a":2}'), 400,
                         "VALIDATION_FAILED")
        # 64 KiB exactly is taken
        self.assertStatus(self.put(k, None, create=True, raw=b'"' + b"x" * 65534 + b'"'), 201)
        self.assertEqual(len(self.changes(k)), 1)

    def test_flag_refused_unless_it_can_be_evaluated(self):
        k = key("flags")
        r = self.put(k, {"default": 1, "rules": [{"percentage": 101, "value": "x"},
                                                 {"when": {"attribute": "c", "in": []}}], "y": 0},
                     create=True)
        self.assertError(r, 400, "VALIDATION_FAILED")
        fields = [d["field"] for d in r.json()["error"]["details"]]
        self.assertEqual(fields, ["y", "rules[0].percentage", "rules[0].value", "rules[1].value",
                                  "rules[1].when.in"])
        self.assertError(self.put(k, True, create=True), 400, "VALIDATION_FAILED")
        self.assertEqual(self.changes(k), [])
        self.assertStatus(self.put(k, {"default": False}, create=True), 201)
        self.assertError(self.put(k, {"rules": []}, if_match=1), 400, "VALIDATION_FAILED")

    def _race(self, n, fn):
        barrier = threading.Barrier(n, timeout=60)
        results = [None] * n

        def work(i):
            try:
                barrier.wait()
                results[i] = fn(i)
            except Exception as exc:  # reported below
                results[i] = exc

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertEqual([r for r in results if not isinstance(r, harness.Response)], [])
        return results

    def test_fifty_writers_one_wins(self):
        k = key("race")
        self.assertStatus(self.put(k, 0, create=True), 201)
        results = self._race(50, lambda i: self.put(k, i + 1, if_match=1))
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses, [200] + [412] * 49, statuses)
        winner = next(r for r in results if r.status == 200)
        g = self.server.get("/config/" + k)
        self.assertEqual((g.json()["version"], g.json()["value"]), (2, winner.json()["value"]))
        self.assertEqual(self.net_changes(self.changes(k)[1:]), [winner.request_id])
        # and creation: 50 x If-None-Match: *, one 201
        k = key("race")
        results = self._race(50, lambda i: self.put(k, i, create=True))
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses, [201] + [412] * 49, statuses)
        winner = next(r for r in results if r.status == 201)
        self.assertEqual(self.net_changes(self.changes(k)), [winner.request_id])

    def net_changes(self, recs):
        """Request ids whose change happened: a SUCCESS record not followed by a
        FAILED one. On SQLite a loser never gets as far as a record (the file's
        write lock covers read, record and write); on DynamoDB a loser that read
        the same version records, loses the conditional put, and says so."""
        ok = [x["requestId"] for x in recs if x["status"] == "SUCCESS"]
        failed = [x["requestId"] for x in recs if x["status"] == "FAILED"]
        self.assertEqual(sorted(set(failed)), sorted(failed))
        self.assertTrue(set(failed) <= set(ok), (failed, ok))
        if harness._sqlite_path(self.stores.config_store):
            self.assertEqual(failed, [])
        return [r for r in ok if r not in failed]

    # ------------------------------------------------------------ OFREP

    def test_ofrep_single(self):
        name = "ofrep-%s" % uuid.uuid4().hex[:8]
        flag = {"default": "blue", "rules": [
            {"when": {"attribute": "country", "in": ["DE", "AT"]}, "value": "red"},
            {"percentage": 100, "value": "green"}]}
        self.assertStatus(self.put("flags." + name, flag, create=True), 201)
        r = self.ofrep(name, {"targetingKey": "u1", "country": "AT"})
        self.assertStatus(r, 200)
        self.assertEqual(r.json(), {"key": name, "value": "red", "reason": "TARGETING_MATCH",
                                    "variant": "rule-1"})
        r = self.ofrep(name, {"targetingKey": "u1", "country": "US"})
        self.assertEqual(r.json(), {"key": name, "value": "green", "reason": "SPLIT",
                                    "variant": "rule-2"})
        # the full config key is accepted and echoed
        r = self.ofrep("flags." + name, {"targetingKey": "u1", "country": "DE"})
        self.assertEqual(r.json()["key"], "flags." + name)
        self.assertEqual(r.json()["value"], "red")
        # OFREP's own error shapes
        r = self.ofrep(name, {"country": "US"})
        self.assertStatus(r, 400)
        self.assertEqual((r.json()["key"], r.json()["errorCode"]), (name, "TARGETING_KEY_MISSING"))
        r = self.ofrep("missing-" + name, {"targetingKey": "u1"})
        self.assertStatus(r, 404)
        self.assertEqual(r.json()["errorCode"], "FLAG_NOT_FOUND")
        r = self.server.request("POST", "/ofrep/v1/evaluate/flags/" + name, headers=JSON,
                                body=b"{nope")
        self.assertStatus(r, 400)
        self.assertEqual(r.json()["errorCode"], "PARSE_ERROR")
        r = self.server.request("POST", "/ofrep/v1/evaluate/flags/" + name, headers=JSON,
                                body=b'{"context":{"targetingKey":7}}')
        self.assertEqual((r.status, r.json()["errorCode"]), (400, "INVALID_CONTEXT"))
        # STATIC and DEFAULT
        static = "static-%s" % uuid.uuid4().hex[:8]
        self.assertStatus(self.put("flags." + static, {"default": 3}, create=True), 201)
        self.assertEqual(self.ofrep(static, {}).json(),
                         {"key": static, "value": 3, "reason": "STATIC", "variant": "default"})
        dflt = "dflt-%s" % uuid.uuid4().hex[:8]
        self.assertStatus(self.put("flags." + dflt, {"default": False, "rules": [
            {"when": {"attribute": "beta", "in": [True]}, "value": True}]}, create=True), 201)
        self.assertEqual(self.ofrep(dflt, {"targetingKey": "x"}).json()["reason"], "DEFAULT")
        self.assertEqual(self.ofrep(dflt, {"targetingKey": "x", "beta": True}).json()["value"],
                         True)

    def test_ofrep_bulk_and_etag(self):
        name = "bulk-%s" % uuid.uuid4().hex[:8]
        self.assertStatus(self.put("flags." + name, {"default": 1, "rules": [
            {"percentage": 50, "value": 2}]}, create=True), 201)
        r = self.ofrep(None, {"targetingKey": "user-7"})
        self.assertStatus(r, 200)
        flags = {f["key"]: f for f in r.json()["flags"]}
        want = 2 if bucket("flags." + name, "user-7") < 5000 else 1
        self.assertEqual(flags[name]["value"], want)
        self.assertEqual(flags[name]["reason"], "SPLIT" if want == 2 else "DEFAULT")
        etag = r.header("etag")
        self.assertTrue(etag)
        again = self.ofrep(None, {"targetingKey": "user-7"}, headers={"If-None-Match": etag})
        self.assertStatus(again, 304)
        other = self.ofrep(None, {"targetingKey": "user-8"}, headers={"If-None-Match": etag})
        self.assertStatus(other, 200)
        # without a targeting key the split flag fails alone, the others still answer
        r = self.ofrep(None, {})
        flags = {f["key"]: f for f in r.json()["flags"]}
        self.assertEqual(flags[name]["errorCode"], "TARGETING_KEY_MISSING")
        r = self.server.request("POST", "/ofrep/v1/evaluate/flags", headers=JSON, body=b"[]")
        self.assertEqual((r.status, r.json()["errorCode"]), (400, "PARSE_ERROR"))

    def test_rollout_flag_observable_per_user(self):
        """flags.price-rollout-header: X-Pricing-Rollout: on for the users in its bucket."""
        users = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(40)]
        g = self.server.get("/config/flags.price-rollout-header")
        if g.status == 200:
            r = self.put("flags.price-rollout-header", {"default": False, "rules": [
                {"percentage": 50, "value": True}]}, if_match=g.json()["version"])
        else:
            r = self.put("flags.price-rollout-header", {"default": False, "rules": [
                {"percentage": 50, "value": True}]}, create=True)
        self.assertIn(r.status, (200, 201), r)
        on = 0
        for u in users:
            p = self.server.price("PROD-101", u)
            self.assertStatus(p, 200)
            expect = bucket("flags.price-rollout-header", u) < 5000
            self.assertEqual(p.header("x-pricing-rollout"), "on" if expect else None, u)
            on += expect
            # the same user gets the same answer again
            self.assertEqual(self.server.price("PROD-101", u).header("x-pricing-rollout"),
                             "on" if expect else None)
            # and OFREP gives an SDK the same answer for that user
            o = self.ofrep("price-rollout-header", {"targetingKey": u, "productId": "PROD-101"})
            self.assertEqual(o.json()["value"], expect, u)
        self.assertTrue(0 < on < len(users))


class OpenFeatureSdkTest(ConfigCase):
    """The OpenFeature JavaScript server SDK with its OFREP provider (npm, pinned in
    package.json) uses the service as its flag backend: values, reasons, variants
    and the SDK's own handling of FLAG_NOT_FOUND and TARGETING_KEY_MISSING."""

    def test_sdk_reads_flags(self):
        root = Path(__file__).resolve().parents[2]
        script = root / "tests" / "e2e" / "js" / "ofrep_client.cjs"
        if not (root / "node_modules" / "@openfeature" / "ofrep-provider").is_dir() or \
                not shutil.which("node"):
            self.skipTest("node or the OpenFeature packages are missing (npm ci)")
        tag = uuid.uuid4().hex[:8]
        flags = {
            "sdk-bool-" + tag: {"default": False, "rules": [
                {"when": {"attribute": "plan", "in": ["gold"]}, "value": True}]},
            "sdk-str-" + tag: {"default": "blue", "rules": [{"percentage": 100, "value": "green"}]},
            "sdk-num-" + tag: {"default": 1.5},
            "sdk-obj-" + tag: {"default": {"a": 1}, "rules": [
                {"when": {"attribute": "targetingKey", "in": ["vip"]}, "value": {"a": 2}}]},
        }
        for name, flag in flags.items():
            self.assertStatus(self.put("flags." + name, flag, create=True), 201)
        spec = [
            {"flag": "sdk-bool-" + tag, "type": "boolean", "default": False,
             "context": {"targetingKey": "u1", "plan": "gold"}},
            {"flag": "sdk-bool-" + tag, "type": "boolean", "default": True,
             "context": {"targetingKey": "u1", "plan": "free"}},
            {"flag": "sdk-str-" + tag, "type": "string", "default": "x",
             "context": {"targetingKey": "u2"}},
            {"flag": "sdk-str-" + tag, "type": "string", "default": "x", "context": {}},
            {"flag": "sdk-num-" + tag, "type": "number", "default": 0, "context": {}},
            {"flag": "sdk-obj-" + tag, "type": "object", "default": {},
             "context": {"targetingKey": "vip"}},
            {"flag": "sdk-missing-" + tag, "type": "boolean", "default": True,
             "context": {"targetingKey": "u1"}},
        ]
        r = subprocess.run(["node", str(script), "http://127.0.0.1:%d" % self.server.port,
                            json.dumps(spec)], capture_output=True, text=True, timeout=120,
                           cwd=str(root))
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        self.assertEqual([(g["value"], g["reason"], g["variant"], g["errorCode"]) for g in got], [
            (True, "TARGETING_MATCH", "rule-1", None),
            (False, "DEFAULT", "default", None),
            ("green", "SPLIT", "rule-1", None),
            ("x", "ERROR", None, "TARGETING_KEY_MISSING"),
            (1.5, "STATIC", "default", None),
            ({"a": 2}, "TARGETING_MATCH", "rule-1", None),
            (True, "ERROR", None, "FLAG_NOT_FOUND"),
        ])


class ConfigFailClosedTest(ConfigCase):
    """No change without its durable audit record: with the audit trail locked a
    write answers 503 AUDIT_UNAVAILABLE and the item stays as it was."""

    server_env = {"AUDIT_TIMEOUT_MS": "300"}

    def test_audit_locked_nothing_changes(self):
        if self.stores.audit_sqlite is None:
            self.skipTest("needs the embedded (sqlite) audit store")
        k = key("fc")
        self.assertStatus(self.put(k, "before", create=True), 201)
        con = sqlite3.connect(str(self.stores.audit_sqlite), timeout=10, isolation_level=None)
        try:
            con.execute("BEGIN EXCLUSIVE")
            r = self.put(k, "after", if_match=1)
            self.assertError(r, 503, "AUDIT_UNAVAILABLE")
            r = self.put(key("fc"), "new", create=True)
            self.assertError(r, 503, "AUDIT_UNAVAILABLE")
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
            con.close()
        g = self.server.get("/config/" + k).json()
        self.assertEqual((g["value"], g["version"]), ("before", 1))
        self.assertStatus(self.put(k, "after", if_match=1), 200)


class ConfigAuthTest(ConfigCase):
    """Permissions config:read / config:write under AUTH_MODE=jwt."""

    @classmethod
    def setUpClass(cls):
        cls.keydir = Path(tempfile.mkdtemp(prefix="px-e2e-cauth-"))
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
        reader = self.token("reader", "config:read")
        writer = self.token("ops", "config:write")
        k = key("auth")
        self.assertError(self.put(k, 1, create=True), 401, "UNAUTHORIZED")
        self.assertError(self.put(k, 1, create=True, headers=reader), 403, "FORBIDDEN")
        r = self.put(k, 1, create=True, headers=writer)
        self.assertStatus(r, 201)
        self.assertEqual(r.json()["updatedBy"], "ops")
        self.assertError(self.server.get("/config/" + k, headers=writer), 403, "FORBIDDEN")
        self.assertStatus(self.server.get("/config/" + k, headers=reader), 200)
        self.assertStatus(self.server.get("/config", headers=reader), 200)
        self.assertError(self.ofrep("x", {"targetingKey": "u"}, headers=writer), 403, "FORBIDDEN")
        self.assertEqual(self.ofrep("x", {"targetingKey": "u"}, headers=reader).status, 404)
        recs = self.changes(k)
        self.assertEqual([(x["pk"], x["principal"]) for x in recs], [("ACTOR#ops", "ops")])


class ConfigCacheTest(harness.ServerCase):
    """Consumers: price-fetcher reads flags through the cache. Changes are made
    by another process (`pricing invoke config-service`), so only the cache's
    age bound can make the server see them."""

    TTL = 1
    STALE_MAX = 3
    server_args = ("--config-cache-ttl", str(TTL), "--config-stale-max", str(STALE_MAX))

    def invoke_put(self, k, value, version=None):
        args = ["generate-event", "apigateway", "http-api", "--method", "PUT", "--path",
                "/config/" + k, "--body", json.dumps(value)]
        args += ["--if-match", '"%d"' % version] if version else ["--if-none-match", "*"]
        ev = run_cli(args)
        self.assertEqual(ev.rc, 0, ev)
        r = run_cli(["invoke", "config-service", "--event", "-"] + self.stores.flags(),
                    stdin=ev.stdout)
        self.assertEqual(r.rc, 0, r)
        doc, _, data = harness.check_invoke(r.stdout, "PUT", "/config/" + k)
        self.assertIn(doc["statusCode"], (200, 201), data)
        return json.loads(data)["version"]

    def wait_for(self, status, bound_s):
        """Polls /price until it answers status; the seconds it took."""
        t0 = time.monotonic()
        while True:
            r = self.server.price("PROD-101", new_user())
            if r.status == status:
                return time.monotonic() - t0, r
            if time.monotonic() - t0 > bound_s + 5:
                self.fail("/price still answers %d after %.1f s" % (r.status, bound_s + 5))
            time.sleep(0.05)

    def metric(self, result):
        text = self.server.get("/metrics").text
        for line in text.splitlines():
            if line.startswith('pricing_config_refreshes_total{result="%s"}' % result):
                return int(line.split()[-1])
        return 0

    def test_maintenance_on_off_within_ttl(self):
        cur = self._version("flags.maintenance")
        if cur:  # a store shared with an earlier run: start from maintenance off
            cur = self.invoke_put("flags.maintenance", {"default": False}, version=cur)
            self.wait_for(200, self.TTL + 1)
        self.assertStatus(self.server.price("PROD-101", new_user()), 200)
        v = self.invoke_put("flags.maintenance", {"default": True}, version=cur)
        took, r = self.wait_for(503, self.TTL + 1)
        self.assertLessEqual(took, self.TTL + 1.0)
        self.assertEqual(r.json()["error"]["code"], "MAINTENANCE")
        self.assertEqual(r.header("retry-after"), "60")
        # nothing audited for a look-up refused by maintenance
        u = new_user()
        self.assertStatus(self.server.price("PROD-101", u), 503)
        self.assertEqual(self.stores.records(user=u), [])
        # Retry-After from maintenance.retry_after_s
        self.invoke_put("maintenance.retry_after_s", 120,
                        version=self._version("maintenance.retry_after_s"))
        t0 = time.monotonic()
        while self.server.price("PROD-101", new_user()).header("retry-after") != "120":
            self.assertLess(time.monotonic() - t0, self.TTL + 5)
            time.sleep(0.05)
        self.invoke_put("flags.maintenance", {"default": False}, version=v)
        took, r = self.wait_for(200, self.TTL + 1)
        self.assertLessEqual(took, self.TTL + 1.0)
        u = new_user()
        self.assertStatus(self.server.price("PROD-101", u), 200)
        self.assertEqual(len(self.stores.records(user=u)), 1)

    def test_outage_serves_last_known_then_defaults(self):
        path = harness._sqlite_path(self.stores.config_store)
        if path is None:
            self.skipTest("the outage is made by moving the SQLite config file away")
        cur = self._version("flags.maintenance")
        self.invoke_put("flags.maintenance", {"default": True}, version=cur)
        self.wait_for(503, self.TTL + 1)
        stale0, dflt0 = self.metric("stale"), self.metric("defaults")
        moved = []
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(path) + suffix)
            if p.exists():
                p.rename(str(p) + ".away")
                moved.append(p)
        try:
            # last known values: still in maintenance while the store is out
            t0 = time.monotonic()
            while time.monotonic() - t0 < self.TTL + 0.5:
                self.assertStatus(self.server.price("PROD-101", new_user()), 503)
                time.sleep(0.1)
            self.assertGreater(self.metric("stale"), stale0)
            # past CONFIG_STALE_MAX_S: the defaults (maintenance off)
            took, _ = self.wait_for(200, self.STALE_MAX + self.TTL)
            self.assertGreater(self.metric("defaults"), dflt0)
            logs = [json.loads(l) for l in self.server.log_lines()]
            logs = [l for l in logs if l.get("level") == "warn"]
            msgs = " ".join(l.get("msg", "") for l in logs)
            self.assertIn("serving the last known values", msgs)
            self.assertIn("serving the defaults", msgs)
        finally:
            for p in moved:
                Path(str(p) + ".away").rename(p)
        # back: maintenance again once the next attempt finds the store (attempts
        # back off while it fails, up to 30 s apart)
        self.wait_for(503, 30)
        cur = self._version("flags.maintenance")
        self.invoke_put("flags.maintenance", {"default": False}, version=cur)
        self.wait_for(200, self.TTL + 1)

    def _version(self, k):
        r = self.server.get("/config/" + k)
        return r.json()["version"] if r.status == 200 else None


if __name__ == "__main__":
    unittest.main()
