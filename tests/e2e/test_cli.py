"""The command line: invoke, generate-event, usage, help, configuration errors,
db seed / db migrate from any directory and the read-only price file."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import unittest
from pathlib import Path

import harness
from harness import REPO, new_user, run_cli

PRICE_BODY = b'{"productId":"PROD-101","price":99.99,"currency":"USD"}'
EVENT_V1 = REPO / "infra" / "events" / "price-event.json"
EVENT_V2 = REPO / "infra" / "events" / "price-event-v2.json"
REF_USER = "550e8400-e29b-41d4-a716-446655440000"


def v1_event(query, multi=None):
    ev = {
        "resource": "/price",
        "httpMethod": "GET",
        "path": "/price",
        "queryStringParameters": query,
        "requestContext": {"requestId": "e2e-" + new_user()},
    }
    if multi is not None:
        ev["multiValueQueryStringParameters"] = multi
    return ev


def v2_event(raw_query, params):
    return {
        "version": "2.0",
        "routeKey": "GET /price",
        "rawPath": "/price",
        "rawQueryString": raw_query,
        "headers": {"host": "localhost"},
        "queryStringParameters": params,
        "requestContext": {
            "http": {"method": "GET", "path": "/price", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "e2e-" + new_user(),
            "routeKey": "GET /price",
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }


class CliTest(harness.StoresCase):
    def invoke(self, event, function="price-fetcher", env=None):
        """event: a path, or a dict / str sent on stdin."""
        args = ["invoke", function, "--event"]
        stdin = None
        if isinstance(event, Path):
            args.append(str(event))
        else:
            args.append("-")
            stdin = event if isinstance(event, str) else json.dumps(event)
        return run_cli(args + self.stores.flags(), env=env, stdin=stdin)

    def invoke_ok(self, event, method="GET", path="/price", **kw):
        r = self.invoke(event, **kw)
        self.assertEqual(r.rc, 0, r)
        return harness.check_invoke(r.stdout, method, path)

    # ------------------------------------------------------------ invoke

    def test_reference_event(self):
        doc, headers, body = self.invoke_ok(EVENT_V1)
        self.assertEqual(doc["statusCode"], 200)
        self.assertEqual(body, PRICE_BODY)
        self.assertIs(doc.get("isBase64Encoded"), False)
        rid = headers["x-request-id"]
        recs = self.stores.all_records(user=REF_USER)
        mine = [x for x in recs if x["requestId"] == rid]
        self.assertEqual(len(mine), 1, "one record for %s" % rid)
        self.assertEqual(mine[0]["status"], "SUCCESS")
        self.assertEqual(mine[0]["productId"], "PROD-101")

    def test_api_request_id(self):
        """The gateway's requestContext.requestId is kept beside the service's own id."""
        rids = []
        for _ in range(2):
            _, headers, _ = self.invoke_ok(EVENT_V1)
            rids.append(headers["x-request-id"])
        self.assertNotEqual(rids[0], rids[1], "each invocation gets a fresh request id")
        recs = {x["requestId"]: x for x in self.stores.all_records(user=REF_USER)}
        for rid in rids:
            self.assertNotEqual(rid, "local-test-id")
            self.assertIn(rid, recs)
            self.assertEqual(recs[rid]["apiRequestId"], "local-test-id", recs[rid])
        # v2 events too; a request that did not come through API Gateway has none.
        user = new_user()
        ev = v2_event("id=PROD-101&userId=" + user, {"id": "PROD-101", "userId": user})
        _, headers, _ = self.invoke_ok(ev)
        recs = self.stores.records(user=user)
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["apiRequestId"], ev["requestContext"]["requestId"])
        self.assertEqual(recs[0]["requestId"], headers["x-request-id"])
        self.assertNotEqual(recs[0]["requestId"], recs[0]["apiRequestId"])

    def test_http_api_v2_event(self):
        doc, headers, body = self.invoke_ok(EVENT_V2)
        self.assertEqual(doc["statusCode"], 200)
        self.assertEqual(body, PRICE_BODY)
        self.assertNotIn("multiValueHeaders", doc)

    def test_event_on_stdin(self):
        user = new_user()
        doc, _, body = self.invoke_ok(v1_event({"id": "PROD-102", "userId": user}))
        self.assertEqual(doc["statusCode"], 200)
        self.assertEqual(body, b'{"productId":"PROD-102","price":100.00,"currency":"USD"}')
        doc, _, _ = self.invoke_ok(v2_event("id=NOPE-CLI&userId=" + user, {"id": "NOPE-CLI", "userId": user}))
        self.assertEqual(doc["statusCode"], 404)
        recs = self.stores.records(user=user)
        self.assertEqual(sorted(x["status"] for x in recs), ["NOT_FOUND", "SUCCESS"])

    def test_correlation_id(self):
        ev = v1_event({"id": "PROD-101", "userId": new_user()})
        ev["headers"] = {"X-Correlation-Id": "e2e-cli-corr"}
        ev["multiValueHeaders"] = {"X-Correlation-Id": ["e2e-cli-corr"]}
        _, headers, _ = self.invoke_ok(ev)
        self.assertEqual(headers["x-correlation-id"], "e2e-cli-corr")
        ev = v2_event("id=PROD-101&userId=" + new_user(), None)
        ev["headers"]["x-correlation-id"] = "e2e-cli-corr-2"
        _, headers, _ = self.invoke_ok(ev)
        self.assertEqual(headers["x-correlation-id"], "e2e-cli-corr-2")

    def test_aws_sample_events(self):
        files = sorted((harness.testdata_dir() / "apigw-events").glob("*/*.json"))
        self.assertGreaterEqual(len(files), 8, "sample events not found under %s" % harness.testdata_dir())
        for f in files:
            with self.subTest(event=f.name):
                ev = json.loads(f.read_text())
                method, path = harness.event_method_path(ev)
                doc, _, _ = self.invoke_ok(f, method=method, path=path)
                self.assertIn(doc["statusCode"], (404, 405))
                if ev.get("version") == "2.0":
                    self.assertNotIn("multiValueHeaders", doc)

    def test_not_an_event(self):
        for text in ("[]", "{}", "garbage", "null", "42", '{"httpMethod":42}', ""):
            with self.subTest(event=text):
                r = self.invoke(text)
                self.assertNotEqual(r.rc, 0, r)
                self.assertEqual(r.stdout.strip(), "", r)
                self.assertTrue(r.stderr.strip(), r)
        r = run_cli(["invoke", "price-fetcher", "--event", "/nonexistent/event.json"] + self.stores.flags())
        self.assertNotEqual(r.rc, 0, r)
        self.assertTrue(r.stderr.strip())

    def test_event_without_path(self):
        # The reference event of the original design carries no path: the
        # function's own route for the method answers it, as on Lambda.
        ev = {"httpMethod": "GET", "queryStringParameters": {"id": "PROD-101",
              "userId": "550e8400-e29b-41d4-a716-446655440000"},
              "requestContext": {"requestId": "local-test-id"}}
        r = self.invoke(json.dumps(ev))
        self.assertEqual(r.rc, 0, r)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["statusCode"], 200, doc)
        self.assertEqual(doc["body"], '{"productId":"PROD-101","price":99.99,"currency":"USD"}')

    def test_unknown_function(self):
        r = self.invoke(EVENT_V1, function="no-such-function")
        self.assertNotEqual(r.rc, 0, r)
        self.assertTrue(r.stderr.strip())

    def test_repeated_query_keys(self):
        user = new_user()
        events = [
            v1_event(
                {"id": "PROD-102", "userId": user},
                {"id": ["PROD-101", "PROD-102"], "userId": [user]},
            ),
            v1_event({"id": "PROD-101", "userId": user}, {"id": ["PROD-101"], "userId": [user, user]}),
            v2_event(
                "id=PROD-101&id=PROD-102&userId=" + user,
                {"id": "PROD-101,PROD-102", "userId": user},
            ),
            v2_event("id=PROD-101&userId=%s&userId=%s" % (user, user), {"id": "PROD-101", "userId": user + "," + user}),
            v2_event("id=PROD-101&userId=%s&foo=1" % user, {"id": "PROD-101", "userId": user, "foo": "1"}),
        ]
        for i, ev in enumerate(events):
            with self.subTest(event=i):
                doc, _, body = self.invoke_ok(ev)
                self.assertEqual(doc["statusCode"], 400, body)
                self.assertEqual(json.loads(body)["error"]["code"], "VALIDATION_FAILED")
        self.assertEqual(self.stores.records(user=user), [])

    def test_v2_query_decoding(self):
        user = new_user()
        for raw in ("id=PROD%00101&userId=" + user, "id=PROD-101%C0%AF&userId=" + user):
            with self.subTest(raw=raw):
                doc, _, _ = self.invoke_ok(v2_event(raw, {"id": "x", "userId": user}))
                self.assertEqual(doc["statusCode"], 400)
        self.assertEqual(self.stores.records(user=user), [])

    # ------------------------------------------------------------ generate-event

    def test_generate_event(self):
        user = new_user()
        for kind in ("aws-proxy", "http-api"):
            with self.subTest(kind=kind):
                r = run_cli(
                    ["generate-event", "apigateway", kind, "--path", "/price", "--query", "id=PROD-101&userId=" + user]
                )
                self.assertEqual(r.rc, 0, r)
                ev = json.loads(r.stdout)
                self.assertEqual(harness.event_method_path(ev), ("GET", "/price"))
                if kind == "http-api":
                    self.assertEqual(ev.get("version"), "2.0")
                doc, _, body = self.invoke_ok(r.stdout)
                self.assertEqual(doc["statusCode"], 200)
                self.assertEqual(body, PRICE_BODY)
                r = run_cli(
                    [
                        "generate-event", "apigateway", kind, "--method", "POST", "--path", "/price",
                        "--query", "id=PROD-101&id=PROD-102&userId=" + user, "--body", '{"a":1}',
                    ]
                )
                self.assertEqual(r.rc, 0, r)
                doc, _, _ = self.invoke_ok(r.stdout, method="POST")
                self.assertEqual(doc["statusCode"], 405)
                r = run_cli(
                    ["generate-event", "apigateway", kind, "--path", "/price", "--query", "id=PROD-101&id=PROD-102&userId=" + user]
                )
                doc, _, _ = self.invoke_ok(r.stdout)
                self.assertEqual(doc["statusCode"], 400)
        self.assertEqual(len(self.stores.records(user=user)), 2)

    # ------------------------------------------------------------ usage

    COMMANDS = [
        ["serve"],
        ["invoke"],
        ["lambda"],
        ["db", "seed"],
        ["db", "migrate"],
        ["audit", "query"],
        ["audit", "verify"],
        ["generate-event"],
        ["version"],
        ["help"],
    ]

    def test_help(self):
        for cmd in [[]] + self.COMMANDS:
            with self.subTest(cmd=cmd):
                r = run_cli(cmd + ["--help"], timeout=20)
                self.assertEqual(r.rc, 0, r)
                self.assertTrue(r.stdout.strip(), r)
        r = run_cli(["help"])
        self.assertEqual(r.rc, 0, r)
        for word in ("serve", "invoke", "db seed", "db migrate", "audit query", "generate-event",
                     "version"):
            self.assertIn(word, r.stdout)

    def test_version(self):
        r = run_cli(["version"])
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.stdout, r"\d+\.\d+\.\d+")

    def test_bad_flag(self):
        cases = [c + ["--no-such-flag"] for c in self.COMMANDS if c != ["help"]]
        cases += [
            ["no-such-command"],
            ["serve", "--port"],
            ["serve", "--port", "70000", "--price-db", "sqlite:/nonexistent/p.db"],
            ["serve", "--port", "abc"],
            ["invoke", "price-fetcher"],
            ["audit", "query"],
            ["audit", "query", "--user", new_user(), "--product", "PROD-101"],
            ["audit", "query", "--user", new_user(), "--limit", "0"],
            ["generate-event", "apigateway", "no-such-kind", "--path", "/price"],
            ["generate-event", "s3", "aws-proxy", "--path", "/price"],
            ["generate-event", "apigateway", "aws-proxy", "--path", "price"],
            ["generate-event", "apigateway", "aws-proxy", "--path", "/price", "extra"],
            ["audit", "list", "--user", new_user()],
            ["audit", "query", "--user", "not-a-uuid"],
            ["audit", "query", "--product", "bad id!"],
            ["audit", "query", "--user", new_user(), "--from", "yesterday"],
            ["audit", "query", "--user", new_user(), "--limit", "1001"],
            ["serve", "--insecure-no-auth=yes"],
            ["generate-event", "apigateway", "aws-proxy", "--query", "id=%zz"],
            ["serve", "--" + "x" * 80],
        ]
        for cmd in cases:
            with self.subTest(cmd=cmd):
                r = run_cli(cmd, env=self.stores.env(), timeout=20)
                self.assertEqual(r.rc, 2, r)
                self.assertRegex(r.stderr.lower(), "usage|invalid|must|unknown|missing|expect", r)
                self.assertEqual(r.stdout, "", r)
        for cmd in cases[: len(self.COMMANDS) - 1]:
            r = run_cli(cmd, env=self.stores.env(), timeout=20)
            self.assertIn("usage", r.stderr.lower(), (cmd, r))

    # ------------------------------------------------------------ configuration errors

    def assert_config_error(self, args, env, name):
        r = run_cli(args, env=env, timeout=20)
        self.assertEqual(r.rc, 2, r)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r)
        self.assertIn(name, lines[0], r)
        self.assertEqual(r.stdout.strip(), "", r)

    def test_bad_environment(self):
        serve = ["serve", "--port", str(harness.free_port())] + self.stores.flags()
        invoke = ["invoke", "price-fetcher", "--event", str(EVENT_V1)] + self.stores.flags()
        cases = [
            ("AUDIT_RETENTION_DAYS", "abc"),
            ("AUDIT_RETENTION_DAYS", "0"),
            ("AUDIT_RETENTION_DAYS", "7x"),
            ("AUDIT_RETENTION_DAYS", "99999999999999999999"),
            ("LOG_LEVEL", "loud"),
            ("AUDIT_TIMEOUT_MS", "-5"),
        ]
        for name, value in cases:
            for args in (serve, invoke):
                with self.subTest(var=name, value=value, cmd=args[0]):
                    self.assert_config_error(args, {name: value}, name)
        self.assert_config_error(
            ["serve", "--port", "0", "--audit-store", self.stores.audit_store],
            {"PRICE_DB": "mysql://x/y"},
            "PRICE_DB",
        )
        self.assert_config_error(
            ["serve", "--port", "0", "--price-db", self.stores.price_db],
            {"AUDIT_STORE": "redis:x"},
            "AUDIT_STORE",
        )

    def test_unopenable_store(self):
        port = str(harness.free_port())
        cases = [
            ["serve", "--port", port, "--price-db", "sqlite:/nonexistent/dir/prices.db",
             "--audit-store", self.stores.audit_store],
            ["serve", "--port", port, "--price-db", self.stores.price_db,
             "--audit-store", "sqlite:/nonexistent/dir/audit.db"],
            ["invoke", "price-fetcher", "--event", str(EVENT_V1),
             "--price-db", "sqlite:/nonexistent/dir/prices.db", "--audit-store", self.stores.audit_store],
        ]
        for args in cases:
            with self.subTest(args=args):
                r = run_cli(args, timeout=20)
                self.assertEqual(r.rc, 2, r)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r)
                self.assertIn("/nonexistent/dir", r.stderr)


NOBODY = 65534


class DbTest(unittest.TestCase):
    """`db seed` and `db migrate` run by a copy of the binary from an empty
    directory: nothing of the source tree is beside it, so whatever they need
    must be inside the binary. Stores are the defaults (./var) unless a test says."""

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="px-e2e-db-"))
        self.addCleanup(self._cleanup)
        (self.tmp / "bin").mkdir()
        self.exe = self.tmp / "bin" / "pricing"
        shutil.copy2(harness.binary(), self.exe)
        self.run_dir = self.tmp / "run"
        self.run_dir.mkdir()

    def _cleanup(self):
        if os.environ.get("PX_E2E_KEEP"):
            return
        for d, _, _ in os.walk(self.tmp):
            os.chmod(d, 0o755)
        shutil.rmtree(str(self.tmp), ignore_errors=True)

    def pricing(self, args, cwd=None, stdin=None, prefix=(), timeout=120):
        p = subprocess.Popen(
            list(prefix) + [str(self.exe)] + list(args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=harness.base_env(),
            cwd=str(cwd or self.run_dir),
        )
        try:
            out, err = p.communicate(stdin.encode() if stdin else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.communicate()
            raise AssertionError("pricing %s: no exit within %ss" % (" ".join(args), timeout))
        r = harness.Result(p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        if harness.SANITIZER_RE.search(r.stderr):
            raise AssertionError("sanitizer report from pricing %s:\n%s" % (" ".join(args), r.stderr))
        return r

    def look_up(self, product, flags=(), cwd=None, prefix=()):
        """invoke price-fetcher for product -> (statusCode, body bytes)."""
        ev = v1_event({"id": product, "userId": new_user()})
        r = self.pricing(["invoke", "price-fetcher", "--event", "-"] + list(flags), cwd=cwd,
                         stdin=json.dumps(ev), prefix=prefix)
        self.assertEqual(r.rc, 0, r)
        doc, _, body = harness.check_invoke(r.stdout, "GET", "/price")
        return doc["statusCode"], body

    @staticmethod
    def rows(db):
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        try:
            return c.execute("SELECT count(*) FROM product_prices").fetchone()[0]
        finally:
            c.close()

    def test_seed_from_any_directory(self):
        r = self.pricing(["db", "seed"])
        self.assertEqual(r.rc, 0, r)
        var = self.run_dir / "var"
        self.assertTrue((var / "prices.db").is_file(), r)
        self.assertTrue((var / "audit.db").is_file(), r)
        self.assertEqual(self.rows(var / "prices.db"), 10005)
        self.assertEqual(self.look_up("PROD-101"), (200, PRICE_BODY))
        r = self.pricing(["db", "seed"])
        self.assertEqual(r.rc, 0, "seeding twice is harmless: %r" % r)
        self.assertEqual(self.rows(var / "prices.db"), 10005)
        self.assertEqual(self.look_up("PROD-102")[0], 200)

    def test_migrate_creates_empty_stores(self):
        r = self.pricing(["db", "migrate"])
        self.assertEqual(r.rc, 0, r)
        var = self.run_dir / "var"
        self.assertTrue((var / "prices.db").is_file(), r)
        self.assertTrue((var / "audit.db").is_file(), r)
        self.assertEqual(self.rows(var / "prices.db"), 0)
        self.assertEqual(self.look_up("PROD-101")[0], 404)
        # seed on a migrated store loads the prices; migrate again keeps them
        self.assertEqual(self.pricing(["db", "seed"]).rc, 0)
        self.assertEqual(self.look_up("PROD-101"), (200, PRICE_BODY))
        r = self.pricing(["db", "migrate"])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.look_up("PROD-101"), (200, PRICE_BODY))

    def test_seed_file_override(self):
        f = self.tmp / "mine.sql"
        f.write_text("INSERT INTO product_prices (product_id, price, currency) VALUES\n"
                     "('FILE-1','1.50','GBP'), ('PROD-101','5.00','EUR');\n")
        r = self.pricing(["db", "seed", "--seed-file", str(f)])
        self.assertEqual(r.rc, 0, r)
        self.assertIn(str(f), r.stdout)
        self.assertEqual(self.look_up("FILE-1"),
                         (200, b'{"productId":"FILE-1","price":1.50,"currency":"GBP"}'))
        self.assertEqual(self.look_up("PROD-101")[1],
                         b'{"productId":"PROD-101","price":5.00,"currency":"EUR"}')
        self.assertEqual(self.look_up("PROD-00001")[0], 404, "the built-in prices are not loaded")
        missing = self.tmp / "missing.sql"
        r = self.pricing(["db", "seed", "--seed-file", str(missing)])
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r)
        self.assertIn(str(missing), r.stderr)
        r = self.pricing(["db", "migrate", "--seed-file", str(f)])
        self.assertEqual(r.rc, 2, r)
        self.assertIn("usage", r.stderr.lower())
        self.assertEqual(r.stdout, "")
        r = self.pricing(["db", "plant"])
        self.assertEqual(r.rc, 2, r)
        self.assertIn("usage", r.stderr.lower())

    def test_read_only_price_file(self):
        """After a seed every row is in prices.db itself (no -wal beside it): the
        file alone, installed read-only in a read-only directory, serves a user
        who may only read it. Root ignores permission bits, so as root the
        look-up runs as nobody (setpriv)."""
        prefix = ()
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if not setpriv:
                self.skipTest("running as root without setpriv: cannot drop to a read-only user")
            prefix = (setpriv, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups")
        seed = harness.REPO / "infra" / "seed" / "prices.sql"
        r = self.pricing(["db", "seed", "--seed-file", str(seed)])
        self.assertEqual(r.rc, 0, r)
        var = self.run_dir / "var"
        wal = var / "prices.db-wal"
        self.assertTrue(not wal.exists() or wal.stat().st_size == 0,
                        "rows left in %s after db seed" % wal)
        with open(var / "prices.db", "rb") as fp:
            self.assertEqual(fp.read(20)[18], 1, "prices.db is not in rollback-journal mode")

        ro = self.tmp / "ro"
        ro.mkdir()
        shutil.copyfile(var / "prices.db", ro / "prices.db")
        os.chmod(ro / "prices.db", 0o444)
        os.chmod(ro, 0o555)
        audit = self.tmp / "audit"
        audit.mkdir()
        if os.geteuid() == 0:
            os.chown(audit, NOBODY, NOBODY)
        for d in (self.tmp, self.tmp / "bin"):
            os.chmod(d, 0o755)
        # The set-up means something only if this user really cannot write there.
        check = subprocess.run(
            list(prefix) + ["/bin/sh", "-c", 'test -w "$1" || test -w "$2"', "sh",
                            str(ro / "prices.db"), str(ro)],
            timeout=30)
        self.assertNotEqual(check.returncode, 0, "the price file or its directory is writable")
        flags = ["--price-db", "sqlite:%s" % (ro / "prices.db"),
                 "--audit-store", "sqlite:%s" % (audit / "audit.db"), "--audit-create", "1"]
        self.assertEqual(self.look_up("PROD-101", flags, cwd=audit, prefix=prefix),
                         (200, PRICE_BODY))
        self.assertEqual(self.look_up("PROD-00001", flags, cwd=audit, prefix=prefix)[0], 200)
        self.assertEqual(sorted(os.listdir(ro)), ["prices.db"])


if __name__ == "__main__":
    unittest.main()
