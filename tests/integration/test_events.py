#!/usr/bin/python3
"""Domain events (CONTRACT §10) against the real binary and real brokers.

- Outbox on SQLite: every product and price write leaves its CloudEvent in the
  outbox of the store it changed; a failure injected with a trigger that aborts
  (on the outbox, or on the changed table) leaves neither the change nor the event.
- Outbox on PostgreSQL (scripts/pg.sh): the price change's event commits with the
  price row; a trigger that aborts the event's insert leaves the price as it was.
- Relay to RabbitMQ (scripts/rabbitmq.sh: a private node of Debian's rabbitmq-server),
  read back with amqp-consume (Debian amqp-tools): order per subject, the broker
  away while changes keep committing, a relay SIGKILLed between publish and mark
  (the event comes again with the same id), a poison event parked and re-queued,
  two relays at once (no event published twice), SIGTERM exits 0.
- Outbox on DynamoDB (DynamoDB Local): the same broker-away and SIGKILL-between-
  publish-and-mark checks, the mark held by a proxy so that it never lands.
- Relay to SQS (FIFO: MessageGroupId = subject, MessageDeduplicationId = event id)
  and SNS (message attribute `type`), both on fauxqs (scripts/fauxqs.sh, pinned
  by package-lock.json), read back with the AWS SDK (sqs_tool.mjs).

A broker that cannot start skips its tests with the reason.
Usage: tests/integration/test_events.py [--binary build/pricing] [-k PATTERN ...]
Only processes started here are signalled, by PID.
"""

import http.client
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DdbProxy, free_port, run_unittest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("PX_PRICING_BIN")
EXCHANGE = "pricing.events"
RABBITMQ = str(REPO / "scripts" / "rabbitmq.sh")


def binary():
    if BINARY:
        return str(Path(BINARY).resolve())
    return str(REPO / "build" / "pricing")


def base_env(extra=None):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("AWS_", "EVENT_")) or k in (
                "PRICE_DB", "AUDIT_STORE", "TABLE_AUDIT", "PRODUCT_STORE", "_HANDLER",
                "AWS_LAMBDA_RUNTIME_API"):
            env.pop(k)
    env["NODE_NO_WARNINGS"] = "1"
    env.update(extra or {})
    return env


class Stores:
    """A temporary directory with SQLite stores made by `db seed` (PostgreSQL
    prices when price_db is given) and a `pricing serve` on them."""

    def __init__(self, price_db=None, env=None, extra=None):
        self.dir = tempfile.mkdtemp(prefix="pxev")
        self.env = env or {}
        self.price_db = price_db or "sqlite:%s/prices.db" % self.dir
        self.stores = {"--price-db": self.price_db,
                       "--product-store": "sqlite:%s/products.db" % self.dir,
                       "--config-store": "sqlite:%s/config.db" % self.dir}
        for i in range(0, len(extra or []), 2):
            self.stores[extra[i]] = extra[i + 1]
        self.flags = ["--audit-store", "sqlite:%s/audit.db" % self.dir] + self.store_flags()
        r = self.run("db", "seed", *self.flags)
        if r.returncode != 0:
            raise AssertionError("db seed failed: %s" % r.stderr)
        self.proc = None
        self.port = None

    def store_flags(self):
        return [x for kv in self.stores.items() for x in kv]

    def run(self, *args, env=None, timeout=60):
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run([binary()] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout,
                              env=base_env(e), cwd=self.dir)

    def serve(self):
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "serve.log"), "w")
        self.proc = subprocess.Popen([binary(), "serve", "--port", str(self.port)] + self.flags,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env=base_env(self.env),
                                     cwd=self.dir)
        for _ in range(200):
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("serve did not start")

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = r.status, r.read().decode(), dict(r.getheaders())
        c.close()
        return out

    def create(self, pid):
        st, body, _ = self.request("POST", "/products", {"productId": pid, "name": "n " + pid,
                                                         "category": "c"})
        return st, body

    def price(self, pid, version, amount):
        st, body, _ = self.request("PUT", "/products/%s/price" % pid,
                                   {"amount": amount, "currency": "EUR"},
                                   {"If-Match": '"%d"' % version})
        return st, body

    def config(self, key, value, version=None):
        """PUT /config/KEY: a create (If-None-Match: *) or a replace at version."""
        h = {"If-None-Match": "*"} if version is None else {"If-Match": '"%d"' % version}
        st, body, _ = self.request("PUT", "/config/" + key, value, h)
        return st, body

    def events(self, failed=False):
        r = self.run("events", "list", *(["--failed"] if failed else []), *self.store_flags())
        if r.returncode != 0:
            raise AssertionError("events list failed: %s" % r.stderr)
        return [json.loads(line) for line in r.stdout.splitlines() if line]

    def sqlite(self, name, sql):
        r = subprocess.run(["sqlite3", os.path.join(self.dir, name), sql], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError("sqlite3 %s: %s" % (sql, r.stderr))
        return r.stdout

    def close(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def kill_between_publish_and_mark(stores, env, broker_pid, db="products.db"):
    """SIGKILLs a relay after it published an event and before it marked it, from
    outside: the broker (started here) is stopped (SIGSTOP) so the relay's first
    publish waits for it; once the relay holds its lease (claim committed), this
    test takes the outbox file's write lock and lets the broker go on (SIGCONT):
    the publish completes, the relay's mark waits for the lock (its busy timeout is
    5 s), and the relay is killed there. Returns the relay's return code."""
    path = os.path.join(stores.dir, db)
    con = None
    os.kill(broker_pid, signal.SIGSTOP)
    try:
        p = subprocess.Popen([binary(), "events", "relay", "--once"] + stores.store_flags(),
                             env=base_env(dict(stores.env, **env)), cwd=stores.dir,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            r = sqlite3.connect(path, timeout=10)
            leased = r.execute("SELECT count(*) FROM outbox WHERE status = 'waiting' AND "
                               "lease_until > 0").fetchone()[0]
            r.close()
            if leased:
                break
            time.sleep(0.01)
        else:
            p.kill()
            p.wait()
            raise AssertionError("the relay never claimed")
        con = sqlite3.connect(path, timeout=10, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
    finally:
        os.kill(broker_pid, signal.SIGCONT)
    time.sleep(1.5)  # the publish is acknowledged; the mark waits for the lock
    p.kill()
    p.wait()
    con.execute("ROLLBACK")
    con.close()
    return p.returncode


def check_event(tc, line, etype, subject, source="product-service"):
    ev = line["event"]
    tc.assertEqual(ev["specversion"], "1.0")
    tc.assertEqual(str(uuid.UUID(ev["id"])), ev["id"])
    tc.assertEqual(ev["source"], "pricing/" + source)
    tc.assertEqual(ev["type"], etype)
    tc.assertEqual(ev["subject"], subject)
    tc.assertEqual(ev["datacontenttype"], "application/json")
    tc.assertRegex(ev["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    tc.assertIn("data", ev)


class OutboxSqlite(unittest.TestCase):
    def setUp(self):
        self.s = Stores()
        self.s.serve()

    def tearDown(self):
        self.s.close()

    def test_1_every_write_has_its_event(self):
        s = self.s
        self.assertEqual(s.create("EV-1")[0], 201)
        self.assertEqual(s.price("EV-1", 1, "12.50")[0], 200)
        st, _, _ = s.request("PUT", "/products/EV-1", {"name": "renamed", "category": "c"},
                             {"If-Match": '"2"'})
        self.assertEqual(st, 200)
        st, _, _ = s.request("DELETE", "/products/EV-1", headers={"If-Match": '"3"'})
        self.assertEqual(st, 204)
        lines = s.events()
        got = [(x["event"]["type"], x["status"], x["attempts"]) for x in lines]
        self.assertEqual(sorted(got), sorted([
            ("pricing.product.created.v1", "waiting", 0),
            ("pricing.product.updated.v1", "waiting", 0),
            ("pricing.product.deleted.v1", "waiting", 0),
            ("pricing.price.changed.v1", "waiting", 0),  # the price set
            ("pricing.price.changed.v1", "waiting", 0),  # withdrawn by the delete
        ]))
        for x in lines:
            check_event(self, x, x["event"]["type"], "EV-1")
        prices = [x["event"]["data"] for x in lines if x["event"]["type"].startswith("pricing.price")]
        self.assertEqual(prices[0]["price"]["amount"], 12.50)
        self.assertIsNone(prices[1]["price"])
        # Each event lives in the store whose change it describes.
        self.assertEqual(s.sqlite("products.db", "SELECT count(*) FROM outbox").strip(), "3")
        self.assertEqual(s.sqlite("prices.db", "SELECT count(*) FROM outbox").strip(), "2")
        self.assertEqual(len({x["event"]["id"] for x in lines}), 5)

    def test_2_event_insert_fails_no_change(self):
        s = self.s
        s.sqlite("products.db", "CREATE TRIGGER no_events BEFORE INSERT ON outbox "
                                "BEGIN SELECT RAISE(ABORT, 'injected'); END;")
        st, body = s.create("EV-2")
        self.assertGreaterEqual(st, 500, body)
        self.assertEqual(s.request("GET", "/products/EV-2")[0], 404)
        self.assertEqual(s.events(), [])

    def test_3_change_fails_no_event(self):
        s = self.s
        s.sqlite("products.db", "CREATE TRIGGER no_products BEFORE INSERT ON products "
                                "BEGIN SELECT RAISE(ABORT, 'injected'); END;")
        st, body = s.create("EV-3")
        self.assertGreaterEqual(st, 500, body)
        self.assertEqual(s.events(), [])

    def test_4_price_event_with_price_row(self):
        s = self.s
        self.assertEqual(s.create("EV-4")[0], 201)
        s.sqlite("prices.db", "CREATE TRIGGER no_events BEFORE INSERT ON outbox "
                              "BEGIN SELECT RAISE(ABORT, 'injected'); END;")
        st, body = s.price("EV-4", 1, "3.00")
        self.assertGreaterEqual(st, 500, body)
        self.assertEqual(s.sqlite("prices.db", "SELECT count(*) FROM product_prices "
                                               "WHERE product_id = 'EV-4'").strip(), "0")
        self.assertEqual(s.sqlite("prices.db", "SELECT count(*) FROM outbox").strip(), "0")
        s.sqlite("prices.db", "DROP TRIGGER no_events; CREATE TRIGGER no_prices BEFORE INSERT ON "
                              "product_prices BEGIN SELECT RAISE(ABORT, 'injected'); END;")
        st, body = s.price("EV-4", 1, "3.00")
        self.assertGreaterEqual(st, 500, body)
        self.assertEqual(s.sqlite("prices.db", "SELECT count(*) FROM outbox").strip(), "0")

    def test_6_config_change_event_in_the_config_file(self):
        """PUT /config/{key}: pricing.config.changed.v1 in config.db's outbox, in the
        change's transaction; a refused change (412, 409) leaves none."""
        s = self.s
        self.assertEqual(s.config("app.limit", {"max": 10})[0], 201)
        self.assertEqual(s.config("app.limit", 42, 1)[0], 200)
        self.assertEqual(s.config("app.limit", 43, 1)[0], 412)  # stale If-Match
        self.assertEqual(s.config("app.limit", 44)[0], 412)  # If-None-Match: * and it exists
        lines = [x for x in s.events() if x["event"]["type"] == "pricing.config.changed.v1"]
        self.assertEqual(len(lines), 2)
        for x in lines:
            check_event(self, x, "pricing.config.changed.v1", "app.limit", "config-service")
        self.assertEqual([x["event"]["data"] for x in lines], [
            {"key": "app.limit", "value": {"max": 10}, "version": 1, "previous": None,
             "changedBy": "local"},
            {"key": "app.limit", "value": 42, "version": 2,
             "previous": {"value": {"max": 10}, "version": 1}, "changedBy": "local"}])
        self.assertEqual(s.sqlite("config.db", "SELECT count(*) FROM outbox").strip(), "2")

    def test_7_config_secret_redacted_in_event(self):
        s = self.s
        secret = "s3cr3t-%s" % uuid.uuid4().hex
        for k in ("payments.secret_key", "secrets.db"):
            self.assertEqual(s.config(k, secret)[0], 201)
            self.assertEqual(s.config(k, secret + "-2", 1)[0], 200)
        lines = [x for x in s.events() if x["event"]["type"] == "pricing.config.changed.v1"]
        self.assertEqual(len(lines), 4)
        self.assertNotIn(secret, json.dumps(lines))
        self.assertNotIn(secret, s.sqlite("config.db", "SELECT event FROM outbox"))
        for x in lines:
            d = x["event"]["data"]
            self.assertEqual(d["value"], "[REDACTED]")
            if d["version"] == 2:
                self.assertEqual(d["previous"], {"value": "[REDACTED]", "version": 1})
        # as in the audit records of the same changes
        self.assertNotIn(secret, s.sqlite("audit.db", "SELECT * FROM audit"))

    def test_8_config_event_fails_no_change(self):
        s = self.s
        s.sqlite("config.db", "CREATE TRIGGER no_events BEFORE INSERT ON outbox "
                              "BEGIN SELECT RAISE(ABORT, 'injected'); END;")
        st, body = s.config("app.x", 1)
        self.assertGreaterEqual(st, 500, body)
        self.assertEqual(s.request("GET", "/config/app.x")[0], 404)
        s.sqlite("config.db", "DROP TRIGGER no_events; CREATE TRIGGER no_items BEFORE INSERT ON "
                              "config_items BEGIN SELECT RAISE(ABORT, 'injected'); END;")
        st, body = s.config("app.x", 1)
        self.assertGreaterEqual(st, 500, body)
        self.assertEqual(s.sqlite("config.db", "SELECT count(*) FROM outbox").strip(), "0")

    def test_5_retry_and_usage(self):
        s = self.s
        r = s.run("events", "retry", str(uuid.uuid4()), *s.store_flags())
        self.assertEqual(r.returncode, 1)
        self.assertIn("no event", r.stderr)
        self.assertEqual(s.run("events", "retry", "nope", *s.store_flags()).returncode, 2)
        self.assertEqual(s.run("events", "bogus").returncode, 2)
        r = s.run("events", "relay", *s.store_flags())
        self.assertEqual(r.returncode, 2)
        self.assertIn("EVENT_SINK is none", r.stderr)


class OutboxPg(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pgdir = tempfile.mkdtemp(prefix="pxpg", dir="/tmp")
        r = subprocess.run([str(REPO / "scripts" / "pg.sh"), "start", cls.pgdir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        if r.returncode != 0:
            shutil.rmtree(cls.pgdir, ignore_errors=True)
            raise unittest.SkipTest("PostgreSQL did not start: %s" % r.stderr.strip()[-300:])
        cls.uri = Path(cls.pgdir, "uri").read_text().strip()

    @classmethod
    def tearDownClass(cls):
        subprocess.run([str(REPO / "scripts" / "pg.sh"), "destroy", cls.pgdir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(cls.pgdir, ignore_errors=True)

    def psql(self, sql):
        r = subprocess.run([str(REPO / "scripts" / "pg.sh"), "psql", self.pgdir, "-At", "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("psql %s: %s" % (sql, r.stderr))
        return r.stdout.strip()

    def test_price_event_in_the_price_transaction(self):
        s = Stores(price_db=self.uri)
        try:
            s.serve()
            self.assertEqual(s.create("PG-EV-1")[0], 201)
            self.assertEqual(s.price("PG-EV-1", 1, "7.25")[0], 200)
            rows = self.psql("SELECT type || ' ' || subject || ' ' || status FROM outbox "
                             "WHERE subject = 'PG-EV-1'")
            self.assertEqual(rows, "pricing.price.changed.v1 PG-EV-1 waiting")
            lines = [x for x in s.events() if x["event"]["subject"] == "PG-EV-1"]
            self.assertEqual(len(lines), 2)  # created (products.db) + price (PostgreSQL)
            # The event's insert aborts: the price row must stay as it was.
            self.psql("CREATE OR REPLACE FUNCTION px_abort() RETURNS trigger LANGUAGE plpgsql AS "
                      "$$ BEGIN RAISE EXCEPTION 'injected'; END; $$; "
                      "CREATE TRIGGER px_no_events BEFORE INSERT ON outbox "
                      "FOR EACH ROW EXECUTE FUNCTION px_abort()")
            try:
                st, body = s.price("PG-EV-1", 2, "9.99")
                self.assertGreaterEqual(st, 500, body)
                self.assertEqual(self.psql("SELECT price::text FROM product_prices "
                                           "WHERE product_id = 'PG-EV-1'"), "7.25")
                self.assertEqual(self.psql("SELECT count(*) FROM price_history "
                                           "WHERE product_id = 'PG-EV-1'"), "1")
            finally:
                self.psql("DROP TRIGGER px_no_events ON outbox")
            # The price row's write aborts: no event.
            self.psql("CREATE TRIGGER px_no_prices BEFORE UPDATE ON product_prices "
                      "FOR EACH ROW EXECUTE FUNCTION px_abort()")
            try:
                st, body = s.price("PG-EV-1", 2, "9.99")
                self.assertGreaterEqual(st, 500, body)
                self.assertEqual(self.psql("SELECT count(*) FROM outbox "
                                           "WHERE subject = 'PG-EV-1'"), "1")
            finally:
                self.psql("DROP TRIGGER px_no_prices ON product_prices")
        finally:
            s.close()

    def test_relay_from_postgresql(self):
        """The relay's claim, mark and retry on the PostgreSQL outbox, and the order
        across outboxes: a product's created event (products.db) goes before its price
        event (PostgreSQL)."""
        fdir = tempfile.mkdtemp(prefix="pxfq")
        r = subprocess.run([str(REPO / "scripts" / "fauxqs.sh"), "start", fdir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        if r.returncode != 0:
            shutil.rmtree(fdir, ignore_errors=True)
            self.skipTest("fauxqs did not start: %s" % r.stderr.strip()[-300:])
        aws = {"AWS_ENDPOINT_URL": r.stdout.strip(), "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": "AKIDPXEVENTS", "AWS_SECRET_ACCESS_KEY": "px-events-secret"}
        s = Stores(price_db=self.uri)
        try:
            s.serve()
            for i in range(3):
                pid = "PG-RL-%d" % i
                self.assertEqual(s.create(pid)[0], 201)
                self.assertEqual(s.price(pid, 1, "2.0%d" % i)[0], 200)
                self.assertEqual(s.price(pid, 2, "3.0%d" % i)[0], 200)
            # A delete withdraws the price (PostgreSQL) then discontinues the product
            # (products.db, read first by the relay): the price event must still lead.
            st, _, _ = s.request("DELETE", "/products/PG-RL-0", headers={"If-Match": '"3"'})
            self.assertEqual(st, 204)
            mine = [x for x in s.events() if x["event"]["subject"].startswith("PG-RL-")]
            # A dead sink: attempts counted in PostgreSQL, then parked, then retried.
            dead = "amqp://guest:guest@127.0.0.1:%d/%%2F?exchange=x" % free_port()
            r = s.run("events", "relay", "--once", *s.store_flags(),
                      env={"EVENT_SINK": dead, "EVENT_MAX_ATTEMPTS": "1"})
            self.assertEqual(r.returncode, 0, r.stderr)
            parked = [x for x in s.events(failed=True) if x["event"]["subject"].startswith("PG-RL")]
            self.assertTrue(parked)
            for x in parked:
                r = s.run("events", "retry", x["event"]["id"], *s.store_flags())
                self.assertEqual(r.returncode, 0, r.stderr)
            tool = ["node", str(REPO / "tests" / "integration" / "sqs_tool.mjs")]
            q = subprocess.run(tool + ["create-queue", "pg%s.fifo" % uuid.uuid4().hex[:8]],
                               stdout=subprocess.PIPE, text=True, check=True, timeout=60,
                               env=base_env(aws), cwd=str(REPO)).stdout.strip()
            env = dict(aws)
            env["EVENT_SINK"] = "sqs:" + q
            r = s.run("events", "relay", "--once", *s.store_flags(), env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.psql("SELECT count(*) FROM outbox WHERE subject LIKE 'PG-RL-%' "
                                       "AND status <> 'sent'"), "0")
            out = subprocess.run(tool + ["receive", q, str(len(mine)), "10"],
                                 stdout=subprocess.PIPE, text=True, check=True, timeout=60,
                                 env=base_env(aws), cwd=str(REPO)).stdout
            got = [json.loads(json.loads(x)["body"]) for x in out.splitlines()]
            self.assertEqual(sorted(e["id"] for e in got), sorted(x["event"]["id"] for x in mine))
            for i in range(3):
                types = [e["type"] for e in got if e["subject"] == "PG-RL-%d" % i]
                want = ["pricing.product.created.v1", "pricing.price.changed.v1",
                        "pricing.price.changed.v1"]
                if i == 0:
                    want += ["pricing.price.changed.v1", "pricing.product.deleted.v1"]
                self.assertEqual(types, want)
        finally:
            s.close()
            subprocess.run([str(REPO / "scripts" / "fauxqs.sh"), "stop", fdir], timeout=60)
            shutil.rmtree(fdir, ignore_errors=True)


# ---- brokers ---------------------------------------------------------------

class OutboxDynamoDB(unittest.TestCase):
    """The outbox in a DynamoDB store's own table (DynamoDB Local 1.25 from the npm
    package amplify-dynamodb-simulator on openjdk-17, scripts/ddblocal.sh): a
    committed change has its event item (read back with the AWS CLI), a refused one
    (stale If-Match) has none, and the relay publishes the table's outbox to RabbitMQ
    in order per subject with a lease that keeps two relays off one event."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("aws"):
            raise unittest.SkipTest("the AWS CLI is missing (apt-get install awscli)")
        cls.ddir = tempfile.mkdtemp(prefix="pxddbl")
        r = subprocess.run([str(REPO / "scripts" / "ddblocal.sh"), "start", cls.ddir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=90)
        if r.returncode != 0:
            subprocess.run([str(REPO / "scripts" / "ddblocal.sh"), "stop", cls.ddir], timeout=30)
            shutil.rmtree(cls.ddir, ignore_errors=True)
            raise unittest.SkipTest("DynamoDB Local did not start: %s" % r.stderr.strip()[-300:])
        cls.endpoint = r.stdout.strip()
        cls.aws = {"AWS_ENDPOINT_URL": cls.endpoint, "AWS_REGION": "us-east-1",
                   "AWS_ACCESS_KEY_ID": "AKIDPXEVENTS", "AWS_SECRET_ACCESS_KEY": "px-events-secret"}

    @classmethod
    def tearDownClass(cls):
        subprocess.run([str(REPO / "scripts" / "ddblocal.sh"), "stop", cls.ddir], timeout=30)
        shutil.rmtree(cls.ddir, ignore_errors=True)

    def setUp(self):
        self.table = "ev" + uuid.uuid4().hex[:10]
        self.s = Stores(env=dict(self.aws), extra=[
            "--config-store", "dynamodb:%s-config" % self.table,
            "--product-store", "dynamodb:%s-products" % self.table])
        self.s.serve()

    def tearDown(self):
        self.s.close()

    def outbox_items(self, table):
        r = subprocess.run(
            ["aws", "--endpoint-url", self.endpoint, "--region", "us-east-1", "dynamodb", "query",
             "--table-name", table, "--consistent-read",
             "--key-condition-expression", "pk = :p", "--expression-attribute-values",
             json.dumps({":p": {"S": "OUTBOX#default"}}), "--output", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60,
            env=base_env(self.aws))
        self.assertEqual(r.returncode, 0, r.stderr)
        return [{"sk": it["sk"]["S"], "status": it["status"]["S"],
                 "event": json.loads(it["event"]["S"])} for it in json.loads(r.stdout)["Items"]]

    def test_1_config_change_commits_its_event(self):
        s = self.s
        t = self.table + "-config"
        self.assertEqual(s.config("app.limit", 1)[0], 201)
        self.assertEqual(s.config("app.limit", 2, 1)[0], 200)
        self.assertEqual(s.config("app.limit", 3, 1)[0], 412)  # stale If-Match: no event
        self.assertEqual(s.config("app.limit", 3)[0], 412)  # exists: no event
        self.assertEqual(s.config("db.secret_pw", "hunter2hunter2")[0], 201)
        items = self.outbox_items(t)
        got = [(x["event"]["subject"], x["event"]["data"]["version"], x["event"]["data"]["value"])
               for x in items]
        self.assertEqual(got, [("app.limit", 1, 1), ("app.limit", 2, 2),
                               ("db.secret_pw", 1, "[REDACTED]")])
        self.assertTrue(all(x["status"] == "waiting" for x in items))
        self.assertNotIn("hunter2hunter2", json.dumps(items))
        # events list reads the same outbox
        listed = [x["event"]["id"] for x in s.events()
                  if x["event"]["type"] == "pricing.config.changed.v1"]
        self.assertEqual(sorted(listed), sorted(x["event"]["id"] for x in items))

    def test_2_product_change_commits_its_event(self):
        s = self.s
        t = self.table + "-products"
        self.assertEqual(s.create("DD-1")[0], 201)
        st, _, _ = s.request("PUT", "/products/DD-1", {"name": "renamed", "category": "c"},
                             {"If-Match": '"1"'})
        self.assertEqual(st, 200)
        st, _, _ = s.request("PUT", "/products/DD-1", {"name": "stale", "category": "c"},
                             {"If-Match": '"1"'})
        self.assertEqual(st, 412)
        self.assertEqual(s.price("DD-1", 2, "9.99")[0], 200)
        items = self.outbox_items(t)
        self.assertEqual([(x["event"]["type"], x["event"]["data"]["name"]) for x in items],
                         [("pricing.product.created.v1", "n DD-1"),
                          ("pricing.product.updated.v1", "renamed")])
        # the price change's event lives with the price row, in the SQL price store
        self.assertEqual(s.sqlite("prices.db", "SELECT count(*) FROM outbox").strip(), "1")

    @contextmanager
    def rabbitmq(self):
        """A private RabbitMQ node for one test (scripts/rabbitmq.sh): yields its
        URL and directory, and stops it afterwards; skips the test if it cannot."""
        if not shutil.which("amqp-consume"):
            self.skipTest("amqp-tools missing")
        rdir = tempfile.mkdtemp(prefix="pxrmq", dir="/tmp")
        r = subprocess.run([RABBITMQ, "start", rdir], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        try:
            if r.returncode != 0:
                self.skipTest("RabbitMQ did not start: %s" % r.stderr.strip()[-300:])
            yield r.stdout.strip(), rdir
        finally:
            subprocess.run([RABBITMQ, "stop", rdir], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120)
            shutil.rmtree(rdir, ignore_errors=True)

    def test_3_relay_publishes_in_order_once(self):
        s = self.s
        with self.rabbitmq() as (url, _):
            sink = "%s?exchange=%s" % (url, EXCHANGE)
            env = dict(self.aws, EVENT_SINK=sink)
            r = s.run("events", "relay", "--once", *s.store_flags(), env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            c = Consumer(sink.split("?")[0], EXCHANGE)
            try:
                for i in range(3):
                    pid = "DO-%d" % i
                    self.assertEqual(s.create(pid)[0], 201)
                    for v in range(1, 4):
                        st, _, _ = s.request("PUT", "/products/" + pid,
                                             {"name": "v%d" % v, "category": "c"},
                                             {"If-Match": '"%d"' % v})
                        self.assertEqual(st, 200)
                    self.assertEqual(s.config("k.%d" % i, 0)[0], 201)
                    self.assertEqual(s.config("k.%d" % i, 1, 1)[0], 200)
                lines = s.events()
                self.assertEqual(len(lines), 3 * 4 + 3 * 2)
                # two relays at once, small batches: leases keep each event with one
                env2 = dict(env, EVENT_BATCH="2")
                procs = [subprocess.Popen([binary(), "events", "relay", "--once"] +
                                          s.store_flags(), env=base_env(env2), cwd=s.dir,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True) for _ in range(2)]
                for p in procs:
                    out, err = p.communicate(timeout=120)
                    self.assertEqual(p.returncode, 0, err)
                r = s.run("events", "relay", "--once", *s.store_flags(), env=env)
                self.assertEqual(r.returncode, 0, r.stderr)
                got = c.messages(len(lines), 30)
                ids = [e["id"] for e in got]
                self.assertEqual(sorted(ids), sorted(x["event"]["id"] for x in lines))
                by = {}
                for e in got:
                    by.setdefault(e["subject"], []).append(e["data"]["version"])
                for subject, versions in by.items():
                    self.assertEqual(versions, sorted(versions), subject)
                self.assertTrue(all(x["status"] == "sent" for x in s.events()))
            finally:
                c.close()


    def test_4_lease_held_elsewhere_then_expired(self):
        """A lease another relay holds keeps its subject back (the later events of
        that subject too) until it expires; the other subjects go on."""
        s = self.s
        t = self.table + "-config"
        for k in ("a.one", "b.two"):
            self.assertEqual(s.config(k, 0)[0], 201)
            self.assertEqual(s.config(k, 1, 1)[0], 200)
        first = next(x for x in self.outbox_items(t) if x["sk"].startswith("a.one#"))
        now = int(time.time() * 1000)

        def lease(until):
            r = subprocess.run(
                ["aws", "--endpoint-url", self.endpoint, "--region", "us-east-1", "dynamodb",
                 "update-item", "--table-name", t, "--key",
                 json.dumps({"pk": {"S": "OUTBOX#default"}, "sk": {"S": first["sk"]}}),
                 "--update-expression", "SET lease_owner = :o, lease_until = :u",
                 "--expression-attribute-values",
                 json.dumps({":o": {"S": "another-relay"}, ":u": {"N": str(until)}})],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60,
                env=base_env(self.aws))
            self.assertEqual(r.returncode, 0, r.stderr)

        lease(now + 600000)
        fdir = tempfile.mkdtemp(prefix="pxfq")
        fq = str(REPO / "scripts" / "fauxqs.sh")
        r = subprocess.run([fq, "start", fdir], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        try:
            if r.returncode != 0:
                self.skipTest("fauxqs did not start: %s" % r.stderr.strip()[-300:])
            aws = dict(self.aws, AWS_ENDPOINT_URL_SQS=r.stdout.strip())
            q = subprocess.run(["node", str(REPO / "tests" / "integration" / "sqs_tool.mjs"),
                                "create-queue", "evl%s" % uuid.uuid4().hex[:8]],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=60, env=base_env(dict(aws, AWS_ENDPOINT_URL=r.stdout.strip())),
                               cwd=str(REPO))
            self.assertEqual(q.returncode, 0, q.stderr)
            env = dict(aws, EVENT_SINK="sqs:" + q.stdout.strip())
            r = s.run("events", "relay", "--once", *s.store_flags(), env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            st = {x["sk"]: x["status"] for x in self.outbox_items(t)}
            self.assertEqual(sorted(v for k, v in st.items() if k.startswith("a.one#")),
                             ["waiting", "waiting"])  # held, and the one behind it
            self.assertEqual(sorted(v for k, v in st.items() if k.startswith("b.two#")),
                             ["sent", "sent"])
            lease(now - 1)  # the other relay's lease ran out
            r = s.run("events", "relay", "--once", *s.store_flags(), env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(all(x["status"] == "sent" for x in self.outbox_items(t)))
        finally:
            subprocess.run([fq, "stop", fdir], timeout=60)
            shutil.rmtree(fdir, ignore_errors=True)

    def test_6_broker_down_and_killed_between_publish_and_mark(self):
        """The DynamoDB outbox as test_2 and test_3 of RelayAmqp check the SQLite
        one: the broker away while changes keep committing (their events wait,
        then all arrive in order), and a relay SIGKILLed after it published an
        event and before its mark reached the table (the event comes again with
        the same id; nothing is lost)."""
        s = self.s
        with self.rabbitmq() as (url, rdir):
            env = dict(self.aws, EVENT_SINK="%s?exchange=%s" % (url, EXCHANGE))
            r = s.run("events", "relay", "--once", *s.store_flags(), env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            for pid in ("DK-1", "DK-2"):
                self.assertEqual(s.create(pid)[0], 201)
                st, _, _ = s.request("PUT", "/products/" + pid, {"name": "v2", "category": "c"},
                                     {"If-Match": '"1"'})
                self.assertEqual(st, 200)
            # 1. the broker away: a change still commits, the relay leaves all waiting
            subprocess.run([RABBITMQ, "pause", rdir], check=True, timeout=120)
            try:
                self.assertEqual(s.create("DK-3")[0], 201)
                r = s.run("events", "relay", "--once", *s.store_flags(),
                          env=dict(env, EVENT_RETRY_BASE_MS="1"))
                self.assertEqual(r.returncode, 0, r.stderr)
            finally:
                subprocess.run([RABBITMQ, "resume", rdir], check=True, timeout=120)
            lines = s.events()
            self.assertEqual(len(lines), 5)
            self.assertTrue(all(x["status"] == "waiting" for x in lines), lines)
            self.assertTrue(any(x["attempts"] >= 1 for x in lines), lines)
            c = Consumer(url, EXCHANGE)
            self.addCleanup(c.close)
            # 2. killed between publish and mark: the first mark is held, the relay killed
            proxy = MarkHoldingProxy(self.endpoint)
            self.addCleanup(proxy.close)
            p = subprocess.Popen([binary(), "events", "relay", "--once"] + s.store_flags(),
                                 env=base_env(dict(env, AWS_ENDPOINT_URL=proxy.url,
                                                   EVENT_LEASE_MS="500")),
                                 cwd=s.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            held = proxy.held.wait(60)
            p.kill()
            p.wait()
            proxy.released.set()
            self.assertTrue(held, "the relay never marked an event")
            self.assertEqual(p.returncode, -signal.SIGKILL)
            self.assertEqual(sum(1 for x in s.events() if x["status"] == "sent"), 0)
            first = c.messages(1, 10)
            self.assertEqual(len(first), 1)  # published, never marked
            time.sleep(0.6)  # the dead relay's lease runs out
            r = s.run("events", "relay", "--once", *s.store_flags(), env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            got = c.messages(len(lines) + 1, 20)
            ids = [e["id"] for e in got]
            self.assertEqual(set(ids), {x["event"]["id"] for x in lines})  # nothing lost
            self.assertEqual([i for i in set(ids) if ids.count(i) > 1], [first[0]["id"]])
            self.assertEqual(len(ids), len(lines) + 1)
            by = {}
            for e in got[1:]:
                by.setdefault(e["subject"], []).append(e["data"]["version"])
            for subject, versions in by.items():
                self.assertEqual(versions, sorted(versions), subject)
            self.assertTrue(all(x["status"] == "sent" for x in s.events()))

    def test_5_lambda_event_relay_reads_the_tables(self):
        """_HANDLER=event-relay configured as in infra/template.yaml (PRODUCT_STORE and
        CONFIG_STORE on DynamoDB, prices in SQL) publishes all three outboxes."""
        s = self.s
        self.assertEqual(s.create("LR-1")[0], 201)
        self.assertEqual(s.price("LR-1", 1, "2.50")[0], 200)
        self.assertEqual(s.config("app.lr", 1)[0], 201)
        lines = s.events()
        self.assertEqual(sorted(x["event"]["type"] for x in lines),
                         ["pricing.config.changed.v1", "pricing.price.changed.v1",
                          "pricing.product.created.v1"])
        fdir = tempfile.mkdtemp(prefix="pxfq")
        fq = str(REPO / "scripts" / "fauxqs.sh")
        r = subprocess.run([fq, "start", fdir], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        try:
            if r.returncode != 0:
                self.skipTest("fauxqs did not start: %s" % r.stderr.strip()[-300:])
            sqs = r.stdout.strip()
            tool = ["node", str(REPO / "tests" / "integration" / "sqs_tool.mjs")]
            tenv = base_env(dict(self.aws, AWS_ENDPOINT_URL=sqs))
            q = subprocess.run(tool + ["create-queue", "evlr%s" % uuid.uuid4().hex[:8]],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=60, env=tenv, cwd=str(REPO))
            self.assertEqual(q.returncode, 0, q.stderr)
            q = q.stdout.strip()
            boot = os.path.join(s.dir, "bootstrap")
            os.symlink(binary(), boot)
            ev = os.path.join(s.dir, "scheduled.json")
            with open(ev, "w") as f:
                json.dump({"version": "0", "id": str(uuid.uuid4()),
                           "detail-type": "Scheduled Event", "source": "aws.events",
                           "time": "2026-01-01T00:00:00Z", "detail": {}}, f)
            env = dict(self.aws, AWS_ENDPOINT_URL_SQS=sqs, EVENT_SINK="sqs:" + q,
                       PRICE_DB=s.price_db, AUDIT_STORE="sqlite:%s/audit.db" % s.dir,
                       PRODUCT_STORE=s.stores["--product-store"],
                       CONFIG_STORE=s.stores["--config-store"])
            r = s.run("emulate", "--handler", "event-relay", "--timeout", "30", "--bootstrap",
                      boot, "--event", ev, env=env, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            answer = json.loads(r.stdout)
            self.assertEqual((answer["published"], answer["waiting"]), (3, 0), answer)
            got = subprocess.run(tool + ["receive", q, "3", "10"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, timeout=60, env=tenv,
                                 cwd=str(REPO))
            ids = sorted(json.loads(json.loads(x)["body"])["id"]
                         for x in got.stdout.splitlines())
            self.assertEqual(ids, sorted(x["event"]["id"] for x in lines))
        finally:
            subprocess.run([fq, "stop", fdir], timeout=60)
            shutil.rmtree(fdir, ignore_errors=True)

class MarkHoldingProxy(DdbProxy):
    """A DynamoDB endpoint that holds the relay's mark (an UpdateItem that sets
    sent_ms) until `released`, then drops it unanswered; the rest goes on to
    `upstream`. So a relay killed while its mark is held has published an
    event whose mark never reached the table, deterministically (a stopped
    server could still apply a request already in its socket once it runs
    again)."""

    def __init__(self, upstream):
        self.held = threading.Event()
        self.released = threading.Event()
        super().__init__(upstream)

    def hook(self, op, body, headers):
        if op != "UpdateItem" or b"sent_ms" not in body:
            return None
        self.held.set()
        self.released.wait(60)
        return DdbProxy.DROP

    def close(self):
        self.released.set()
        super().close()


class Consumer:
    """amqp-consume (Debian amqp-tools) running for the whole test: it declares
    its queue, binds it to the exchange for every routing key and appends each
    message body as one line to a file."""

    def __init__(self, url, exchange):
        self.out = tempfile.mktemp(prefix="pxamqp")
        open(self.out, "w").close()
        self.proc = subprocess.Popen(
            ["amqp-consume", "-u", url, "-q", "q" + uuid.uuid4().hex[:12], "-e", exchange, "-r",
             "#", "--", "sh", "-c", "cat >> %s; echo >> %s" % (self.out, self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # bound before anything is published

    def messages(self, n, seconds):
        """The messages so far, waiting up to seconds for at least n."""
        deadline = time.time() + seconds
        while True:
            with open(self.out) as f:
                got = [json.loads(line) for line in f if line.strip()]
            if len(got) >= n or time.time() > deadline:
                return got
            time.sleep(0.1)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.out)


class RelayAmqp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("amqp-consume"):
            raise unittest.SkipTest("amqp-tools missing (apt-get install amqp-tools)")
        cls.rdir = tempfile.mkdtemp(prefix="pxrmq", dir="/tmp")
        r = subprocess.run([RABBITMQ, "start", cls.rdir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        if r.returncode != 0:
            subprocess.run([RABBITMQ, "stop", cls.rdir], timeout=120)
            shutil.rmtree(cls.rdir, ignore_errors=True)
            raise unittest.SkipTest("RabbitMQ did not start: %s" % r.stderr.strip()[-300:])
        cls.url = r.stdout.strip()
        cls.sink = "%s?exchange=%s" % (cls.url, EXCHANGE)

    @classmethod
    def tearDownClass(cls):
        subprocess.run([RABBITMQ, "stop", cls.rdir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(cls.rdir, ignore_errors=True)

    def setUp(self):
        self.s = Stores()
        self.s.serve()
        # The relay declares the exchange on start; then the consumer binds to it.
        r = self.s.run("events", "relay", "--once", *self.s.store_flags(),
                       env={"EVENT_SINK": self.sink})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.c = Consumer(self.url, EXCHANGE)

    def tearDown(self):
        self.c.close()
        self.s.close()

    def writes(self, products, prices_each):
        ids = []
        for i in range(products):
            pid = "AM-%03d" % i
            self.assertEqual(self.s.create(pid)[0], 201)
            for v in range(prices_each):
                self.assertEqual(self.s.price(pid, v + 1, "%d.%02d" % (i, v))[0], 200)
            ids.append(pid)
        return ids

    def relay_once(self, env=None, timeout=120):
        e = {"EVENT_SINK": self.sink}
        e.update(env or {})
        return self.s.run("events", "relay", "--once", *self.s.store_flags(), env=e,
                          timeout=timeout)

    def in_order_per_subject(self, got):
        by_subject = {}
        for ev in got:
            by_subject.setdefault(ev["subject"], []).append(ev)
        for subject, evs in by_subject.items():
            versions = [ev["data"]["version"] for ev in evs]
            self.assertEqual(versions, sorted(versions), subject)

    def test_1_publish_in_order(self):
        self.writes(5, 3)
        outbox = self.s.events()
        r = self.relay_once()
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.c.messages(len(outbox), 20)
        self.assertEqual(sorted(e["id"] for e in got), sorted(x["event"]["id"] for x in outbox))
        self.in_order_per_subject(got)
        self.assertTrue(all(x["status"] == "sent" for x in self.s.events()))
        # TENANCY=off: the events as they always were, no tenantid attribute
        self.assertFalse([e for e in got if "tenantid" in e])

    def test_8_tenantid_on_every_event(self):
        """TENANCY=on: two tenants write the same product id and config key; every
        event read back from the broker carries its writer's tenant as the
        CloudEvents extension attribute tenantid."""
        s = Stores(env={"TENANCY": "on"})
        try:
            s.serve()
            for t in ("ta", "tb"):
                h = {"X-Tenant-ID": t}
                st, body, _ = s.request("POST", "/products", {"productId": "TN-1", "name": "n",
                                                              "category": "c"}, h)
                self.assertEqual(st, 201, body)
                st, body, _ = s.request("PUT", "/products/TN-1/price",
                                        {"amount": "1.00", "currency": "EUR"},
                                        dict(h, **{"If-Match": '"1"'}))
                self.assertEqual(st, 200, body)
                st, body, _ = s.request("PUT", "/config/app.tn", {"t": t},
                                        dict(h, **{"If-None-Match": "*"}))
                self.assertEqual(st, 201, body)
            outbox = s.events()
            r = s.run("events", "relay", "--once", *s.store_flags(),
                      env={"EVENT_SINK": self.sink})
            self.assertEqual(r.returncode, 0, r.stderr)
            got = self.c.messages(len(outbox), 20)
            self.assertEqual(sorted(e["id"] for e in got),
                             sorted(x["event"]["id"] for x in outbox))
            by = {}
            for e in got:
                by.setdefault(e.get("tenantid"), []).append(e)
            self.assertEqual(sorted(by), ["ta", "tb"], got)
            for t, evs in by.items():
                # product created, price changed (and the product's update), config changed
                self.assertEqual({e["type"] for e in evs} >= {"pricing.price.changed.v1",
                                                              "pricing.config.changed.v1"},
                                 True, evs)
                cfg = [e for e in evs if e["type"] == "pricing.config.changed.v1"]
                self.assertEqual([e["data"]["value"] for e in cfg], [{"t": t}])
            self.assertEqual(len(by["ta"]), len(by["tb"]))
        finally:
            s.close()

    def test_2_broker_down_then_back(self):
        self.writes(3, 2)
        subprocess.run([RABBITMQ, "pause", self.rdir], check=True, timeout=120)
        try:
            # The broker is away: changes keep committing, their events wait.
            self.assertEqual(self.s.price("AM-000", 3, "42.00")[0], 200)
            self.assertEqual(self.s.create("AM-NEW")[0], 201)
            r = self.relay_once({"EVENT_RETRY_BASE_MS": "1"})
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            subprocess.run([RABBITMQ, "resume", self.rdir], check=True, timeout=120)
        lines = self.s.events()
        self.assertTrue(all(x["status"] == "waiting" for x in lines))
        self.assertTrue(any(x["attempts"] >= 1 for x in lines))
        # The consumer's queue went with the broker's restart: bind again first.
        self.c.close()
        self.c = Consumer(self.url, EXCHANGE)
        time.sleep(0.2)
        r = self.relay_once()
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.c.messages(len(lines), 20)
        self.assertEqual(sorted(e["id"] for e in got), sorted(x["event"]["id"] for x in lines))
        self.in_order_per_subject(got)

    def test_3_killed_between_publish_and_mark(self):
        self.writes(4, 2)
        lines = self.s.events()
        with open(os.path.join(self.rdir, "rabbit.pid")) as f:
            broker = int(f.read().strip())
        rc = kill_between_publish_and_mark(self.s, {"EVENT_SINK": self.sink,
                                                    "EVENT_LEASE_MS": "500"}, broker)
        self.assertEqual(rc, -signal.SIGKILL)
        after = self.s.events()
        self.assertEqual(sum(1 for x in after if x["status"] == "sent"), 0)
        self.assertEqual(len(self.c.messages(1, 10)), 1)  # published, never marked
        time.sleep(0.6)  # the dead relay's lease runs out
        r = self.relay_once()
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.c.messages(len(lines) + 1, 20)
        ids = [e["id"] for e in got]
        self.assertEqual(set(ids), {x["event"]["id"] for x in lines})  # nothing lost
        dup = [i for i in set(ids) if ids.count(i) > 1]
        self.assertEqual(len(dup), 1, ids)  # the first, re-sent with the same id
        self.assertEqual(len(ids), len(lines) + 1)

    def test_7_config_events_arrive(self):
        """pricing.config.changed.v1 from config.db's outbox reaches RabbitMQ, in
        version order per key, a secret's value redacted; the refused change has none."""
        secret = "s3cr3t-%s" % uuid.uuid4().hex
        self.assertEqual(self.s.config("app.mode", "a")[0], 201)
        for v in range(1, 4):
            self.assertEqual(self.s.config("app.mode", "m%d" % v, v)[0], 200)
        self.assertEqual(self.s.config("app.mode", "late", 1)[0], 412)
        self.assertEqual(self.s.config("db.secret_password", secret)[0], 201)
        r = self.relay_once()
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.c.messages(5, 20)
        self.assertEqual(len(got), 5, got)
        self.assertTrue(all(e["type"] == "pricing.config.changed.v1" for e in got))
        self.assertEqual([e["data"]["value"] for e in got if e["subject"] == "app.mode"],
                         ["a", "m1", "m2", "m3"])
        self.in_order_per_subject(got)
        self.assertNotIn(secret, json.dumps(got))
        self.assertEqual([e["data"]["value"] for e in got if e["subject"] == "db.secret_password"],
                         ["[REDACTED]"])

    def test_4_poison_parked_and_retried(self):
        self.writes(1, 1)
        dead = "amqp://guest:guest@127.0.0.1:%d/%%2F?exchange=%s" % (free_port(), EXCHANGE)
        env = {"EVENT_SINK": dead, "EVENT_MAX_ATTEMPTS": "2", "EVENT_RETRY_BASE_MS": "1"}
        for _ in range(4):
            self.relay_once(env)
            time.sleep(0.05)
        failed = self.s.events(failed=True)
        self.assertGreaterEqual(len(failed), 1)
        self.assertTrue(all(x["status"] == "failed" and x["attempts"] == 2 for x in failed))
        eid = failed[0]["event"]["id"]
        r = self.s.run("events", "retry", eid, *self.s.store_flags())
        self.assertEqual(r.returncode, 0, r.stderr)
        back = [x for x in self.s.events() if x["event"]["id"] == eid][0]
        self.assertEqual((back["status"], back["attempts"]), ("waiting", 0))

    def test_5_two_relays_never_publish_one_event_twice(self):
        self.writes(30, 2)
        lines = self.s.events()
        env = base_env({"EVENT_SINK": self.sink, "EVENT_BATCH": "4", "EVENT_POLL_MS": "20"})
        procs = [subprocess.Popen([binary(), "events", "relay"] + self.s.store_flags(), env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  cwd=self.s.dir) for _ in range(2)]
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                if all(x["status"] == "sent" for x in self.s.events()):
                    break
                time.sleep(0.2)
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            codes = [p.wait(30) for p in procs]
        self.assertEqual(codes, [0, 0])  # SIGTERM: finish the batch, exit 0
        self.c.messages(len(lines), 20)
        time.sleep(1.0)  # room for a duplicate to show
        got = self.c.messages(len(lines) + 5, 0)
        ids = [e["id"] for e in got]
        self.assertEqual(sorted(ids), sorted(x["event"]["id"] for x in lines))
        self.in_order_per_subject(got)


    def test_6_metrics_and_readiness(self):
        self.writes(2, 1)
        lines = self.s.events()

        def scrape(port, path):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", path)
            r = c.getresponse()
            out = r.status, r.read().decode()
            c.close()
            return out

        def metric(text, name):
            for line in text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
            return None

        def run_relay(sink):
            port = free_port()
            p = subprocess.Popen([binary(), "events", "relay", "--port", str(port)] +
                                 self.s.store_flags(), cwd=self.s.dir,
                                 env=base_env({"EVENT_SINK": sink, "EVENT_POLL_MS": "50",
                                               "EVENT_RETRY_BASE_MS": "60000"}),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(100):
                try:
                    scrape(port, "/health")
                    break
                except OSError:
                    time.sleep(0.05)
            return p, port

        dead = "amqp://guest:guest@127.0.0.1:%d/%%2F?exchange=%s" % (free_port(), EXCHANGE)
        p, port = run_relay(dead)
        try:
            time.sleep(0.5)
            self.assertEqual(scrape(port, "/ready")[0], 503)
            st, text = scrape(port, "/metrics")
            self.assertEqual(st, 200)
            self.assertEqual(metric(text, "pricing_events_waiting"), len(lines))
            self.assertGreater(metric(text, "pricing_events_lag_seconds"), 0)
            self.assertGreaterEqual(metric(text, "pricing_events_failed_total"), 1)
        finally:
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(30), 0)
        self.s.sqlite("products.db", "UPDATE outbox SET next_ms = 0")
        self.s.sqlite("prices.db", "UPDATE outbox SET next_ms = 0")
        p, port = run_relay(self.sink)
        try:
            self.c.messages(len(lines), 20)
            time.sleep(0.3)
            self.assertEqual(scrape(port, "/ready")[0], 200)
            st, text = scrape(port, "/metrics")
            self.assertEqual(metric(text, "pricing_events_published_total"), len(lines))
            self.assertEqual(metric(text, "pricing_events_waiting"), 0)
            self.assertEqual(metric(text, "pricing_events_lag_seconds"), 0)
        finally:
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(30), 0)


class RelaySqsSns(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fdir = tempfile.mkdtemp(prefix="pxfq")
        r = subprocess.run([str(REPO / "scripts" / "fauxqs.sh"), "start", cls.fdir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        if r.returncode != 0:
            shutil.rmtree(cls.fdir, ignore_errors=True)
            raise unittest.SkipTest("fauxqs did not start: %s" % r.stderr.strip()[-300:])
        cls.endpoint = r.stdout.strip()
        cls.aws = {"AWS_ENDPOINT_URL": cls.endpoint, "AWS_REGION": "us-east-1",
                   "AWS_ACCESS_KEY_ID": "AKIDPXEVENTS", "AWS_SECRET_ACCESS_KEY": "px-events-secret"}

    @classmethod
    def tearDownClass(cls):
        subprocess.run([str(REPO / "scripts" / "fauxqs.sh"), "stop", cls.fdir], timeout=60)
        shutil.rmtree(cls.fdir, ignore_errors=True)

    def tool(self, *args):
        r = subprocess.run(["node", str(REPO / "tests" / "integration" / "sqs_tool.mjs")] +
                           list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=60, env=base_env(self.aws), cwd=str(REPO))
        if r.returncode != 0:
            raise AssertionError("sqs_tool %s: %s" % (args, r.stderr))
        return r.stdout

    def setUp(self):
        self.s = Stores()
        self.s.serve()
        for i in range(3):
            self.assertEqual(self.s.create("SQ-%d" % i)[0], 201)
            self.assertEqual(self.s.price("SQ-%d" % i, 1, "1.0%d" % i)[0], 200)
        self.lines = self.s.events()

    def tearDown(self):
        self.s.close()

    def relay(self, sink):
        env = dict(self.aws)
        env["EVENT_SINK"] = sink
        r = self.s.run("events", "relay", "--once", *self.s.store_flags(), env=env)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertTrue(all(x["status"] == "sent" for x in self.s.events()))

    def test_1_sqs_fifo(self):
        q = self.tool("create-queue", "ev%s.fifo" % uuid.uuid4().hex[:8]).strip()
        self.relay("sqs:" + q)
        got = [json.loads(x) for x in self.tool("receive", q, str(len(self.lines)), "10").splitlines()]
        self.assertEqual(len(got), len(self.lines))
        for m in got:
            ev = json.loads(m["body"])
            self.assertEqual(m["groupId"], ev["subject"])
            self.assertEqual(m["dedupId"], ev["id"])
            self.assertEqual(m["type"], ev["type"])
        self.assertEqual(sorted(json.loads(m["body"])["id"] for m in got),
                         sorted(x["event"]["id"] for x in self.lines))

    def test_2_sns_type_attribute(self):
        topic = self.tool("create-topic", "ev%s" % uuid.uuid4().hex[:8]).strip()
        q = self.tool("create-queue", "evs%s" % uuid.uuid4().hex[:8]).strip()
        self.tool("subscribe", topic, q)
        self.relay("sns:" + topic)
        got = [json.loads(x) for x in self.tool("receive", q, str(len(self.lines)), "10").splitlines()]
        self.assertEqual(sorted(json.loads(m["body"])["id"] for m in got),
                         sorted(x["event"]["id"] for x in self.lines))
        for m in got:
            self.assertEqual(m["type"], json.loads(m["body"])["type"])


    def test_6_tenantid_to_sqs_and_sns(self):
        """TENANCY=on: the tenant reaches SQS and SNS in the CloudEvent (structured
        mode: every attribute in the body, tenantid too; an SNS filter policy with
        FilterPolicyScope MessageBody selects a tenant); the type attribute as ever."""
        s = Stores(env={"TENANCY": "on"})
        try:
            s.serve()
            for t in ("ta", "tb"):
                st, body, _ = s.request("POST", "/products", {"productId": "SQ-T", "name": "n",
                                                              "category": "c"},
                                        {"X-Tenant-ID": t})
                self.assertEqual(st, 201, body)
            lines = s.events()
            self.assertEqual(sorted(x["event"]["tenantid"] for x in lines), ["ta", "tb"])
            q = self.tool("create-queue", "evt%s" % uuid.uuid4().hex[:8]).strip()
            topic = self.tool("create-topic", "evt%s" % uuid.uuid4().hex[:8]).strip()
            qs = self.tool("create-queue", "evts%s" % uuid.uuid4().hex[:8]).strip()
            self.tool("subscribe", topic, qs)
            for sink in ("sqs:" + q, "sns:" + topic):
                s.sqlite("products.db", "UPDATE outbox SET status = 'waiting', next_ms = 0")
                r = s.run("events", "relay", "--once", *s.store_flags(),
                          env=dict(self.aws, EVENT_SINK=sink))
                self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
            for queue in (q, qs):
                got = [json.loads(x) for x in self.tool("receive", queue, "2", "10").splitlines()]
                evs = sorted((json.loads(m["body"]) for m in got), key=lambda e: e["tenantid"])
                self.assertEqual([(e["tenantid"], e["subject"]) for e in evs],
                                 [("ta", "SQ-T"), ("tb", "SQ-T")])
                self.assertEqual({m["type"] for m in got}, {"pricing.product.created.v1"})
        finally:
            s.close()
        # TENANCY=off (this class's own stores): no tenantid
        self.assertFalse([x for x in self.lines if "tenantid" in x["event"]])

    def test_5_config_event_to_sqs(self):
        self.assertEqual(self.s.config("app.flag", True)[0], 201)
        self.assertEqual(self.s.config("app.secret_token", "t0ps3cr3t")[0], 201)
        self.assertEqual(self.s.config("app.flag", False, 9)[0], 412)  # refused: no event
        lines = self.s.events()
        self.assertEqual(len(lines), len(self.lines) + 2)
        q = self.tool("create-queue", "evc%s" % uuid.uuid4().hex[:8]).strip()
        self.relay("sqs:" + q)
        got = [json.loads(json.loads(x)["body"]) for x in
               self.tool("receive", q, str(len(lines)), "10").splitlines()]
        cfg = sorted((e["subject"], e["data"]["value"]) for e in got
                     if e["type"] == "pricing.config.changed.v1")
        self.assertEqual(cfg, [("app.flag", True), ("app.secret_token", "[REDACTED]")])
        self.assertNotIn("t0ps3cr3t", json.dumps(got))

    def test_3_lambda_event_relay(self):
        """_HANDLER=event-relay under the Runtime API emulator: a scheduled event
        publishes the outbox; the answer and one EMF line carry the counts."""
        q = self.tool("create-queue", "evl%s" % uuid.uuid4().hex[:8]).strip()
        boot = os.path.join(self.s.dir, "bootstrap")
        os.symlink(binary(), boot)
        ev = os.path.join(self.s.dir, "scheduled.json")
        with open(ev, "w") as f:
            json.dump({"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                       "source": "aws.events", "time": "2026-01-01T00:00:00Z", "detail": {}}, f)
        env = dict(self.aws)
        env.update({"EVENT_SINK": "sqs:" + q, "PRICE_DB": self.s.price_db,
                    "PRODUCT_STORE": "sqlite:%s/products.db" % self.s.dir,
                    "AUDIT_STORE": "sqlite:%s/audit.db" % self.s.dir})
        r = self.s.run("emulate", "--handler", "event-relay", "--timeout", "20", "--bootstrap", boot,
                       "--event", ev, env=env)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        answer = json.loads(r.stdout)
        self.assertEqual(answer["published"], len(self.lines))
        self.assertEqual((answer["waiting"], answer["lagMs"]), (0, 0))
        emf = [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{") and '"_aws"' in x]
        emf = [x for x in emf if x.get("function") == "event-relay"]
        self.assertEqual(len(emf), 1, r.stderr[-2000:])
        self.assertEqual(emf[0]["EventsPublished"], len(self.lines))
        got = [json.loads(x) for x in self.tool("receive", q, str(len(self.lines)), "10").splitlines()]
        self.assertEqual(sorted(json.loads(m["body"])["id"] for m in got),
                         sorted(x["event"]["id"] for x in self.lines))

    def test_4_consumer_example_deduplicates(self):
        """examples/event-consumer.mjs handles a re-sent event once."""
        q = self.tool("create-queue", "evd%s" % uuid.uuid4().hex[:8]).strip()
        env = dict(self.aws)
        env.update({"EVENT_SINK": "sqs:" + q, "EVENT_LEASE_MS": "300"})
        with open(os.path.join(self.fdir, "fauxqs.pid")) as f:
            broker = int(f.read().strip())
        self.assertEqual(kill_between_publish_and_mark(self.s, env, broker), -signal.SIGKILL)
        time.sleep(0.4)
        self.relay("sqs:" + q)
        seen = os.path.join(self.s.dir, "seen.txt")
        cmd = ["node", str(REPO / "examples" / "event-consumer.mjs"), q, seen, "100", "3"]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=60, env=base_env(self.aws), cwd=str(REPO))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = [json.loads(x) for x in r.stdout.splitlines()]
        self.assertEqual(out[-1], {"handled": len(self.lines), "duplicates": 1})
        self.assertEqual(sorted(x["id"] for x in out[:-1]),
                         sorted(x["event"]["id"] for x in self.lines))


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--binary" in args:
        i = args.index("--binary")
        BINARY = args[i + 1]
        del args[i:i + 2]
    patterns = []
    while "-k" in args:
        i = args.index("-k")
        patterns.append(args[i + 1])
        del args[i:i + 2]
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = ["*%s*" % p for p in patterns]
    suite = loader.loadTestsFromModule(sys.modules[__name__])
    sys.exit(run_unittest(suite))
