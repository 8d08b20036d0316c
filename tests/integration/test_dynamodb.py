#!/usr/bin/python3
"""End-to-end test of the DynamoDB audit store against dynalite.

Starts dynalite (scripts/dynalite.sh) on a free loopback port and drives the
real `pricing` binary: db seed, invoke, audit query and serve. Records are read
back independently with the AWS CLI and compared field by field, on the table
and on GSI gsi1. Then the faults: dynalite stopped mid-run (503
AUDIT_UNAVAILABLE, no price, bounded latency), restarted (recovers), and an
endpoint that accepts and never answers (bounded latency, 503). Finally the
TimeToLive calls dynalite lacks, against tests/integration/ddb_standin.py,
which checks each request's SigV4 signature on its own.

Usage: test_dynamodb.py [PATH/TO/pricing]   (default: build/pricing)
Prints one line per check and "N passed, N failed"; exits non-zero on failure.
"""
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Tally, free_port  # noqa: E402

# The AWS CLI from Debian (v2), not whatever else is first on PATH.
AWS = os.environ.get("PX_AWS_CLI", "/usr/bin/aws")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                      os.environ.get("PRICING_BIN", os.path.join(ROOT, "build", "pricing")))
TABLE = "audit_test"
AKID, SECRET = "AKIDLOCALTEST", "local/secret+key"
TIMEOUT_MS = 1000
RETENTION = 90 * 86400
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

TALLY = Tally(2000)
check = TALLY.check
procs = []  # (name, Popen) we started, stopped by PID at the end


class Env:
    def __init__(self, tmp, endpoint):
        self.tmp = tmp
        self.endpoint = endpoint

    def vars(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k not in ("AUDIT_STORE", "TABLE_AUDIT", "PRICE_DB",
                                                         "PRODUCT_STORE", "TABLE_PRODUCTS")}
        env.update({
            "AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint,
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "PRICE_DB": "sqlite:" + os.path.join(self.tmp, "prices.db"),
            "AUDIT_STORE": "dynamodb:" + TABLE, "AUDIT_TIMEOUT_MS": str(TIMEOUT_MS),
            "LOG_LEVEL": "info",
        })
        env.update({k: v for k, v in extra.items() if v is not None})
        return env

    def run(self, args, stdin=None, timeout=60, **extra):
        return subprocess.run([BIN] + args, input=stdin, capture_output=True, text=True,
                              timeout=timeout, env=self.vars(**extra), cwd=self.tmp)

    def aws(self, args):
        cmd = [AWS, "dynamodb"] + args + ["--endpoint-url", self.endpoint, "--region",
                                            "us-east-1", "--output", "json"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=self.vars())
        if r.returncode != 0:
            raise RuntimeError("aws %s: %s" % (" ".join(args[:2]), r.stderr.strip()))
        return json.loads(r.stdout) if r.stdout.strip() else {}


def dynalite(cmd, d):
    r = subprocess.run([os.path.join(ROOT, "scripts", "dynalite.sh"), cmd, d],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("dynalite.sh %s: %s" % (cmd, r.stderr))
    return r.stdout.strip()


def event(env, query):
    r = env.run(["generate-event", "apigateway", "aws-proxy", "--query", query])
    if r.returncode != 0:
        raise RuntimeError("generate-event: " + r.stderr)
    return r.stdout


def invoke(env, user, product, **extra):
    """Returns (proxy response, seconds taken, the event's requestContext.requestId)."""
    ev = event(env, "id=%s&userId=%s" % (product, user))
    api_id = json.loads(ev)["requestContext"]["requestId"]
    t0 = time.monotonic()
    r = env.run(["invoke", "price-fetcher", "--event", "-"], stdin=ev, **extra)
    took = time.monotonic() - t0
    try:
        out = json.loads(r.stdout)
    except ValueError:
        raise RuntimeError("invoke printed %r (stderr %r)" % (r.stdout, r.stderr))
    return out, took, api_id


# The hash chain's attributes (docs/internals/audit-integrity.md): stored with
# each record, not part of the record that queries return.
CHAIN_ATTRS = ("writer", "wseq", "prevHash", "hash")


def plain(item):
    """DynamoDB attribute map -> plain dict (S as str, N as int), chain attributes left out."""
    out = {}
    for k, v in item.items():
        if k in CHAIN_ATTRS:
            continue
        if "S" in v:
            out[k] = v["S"]
        elif "N" in v:
            out[k] = int(v["N"])
        else:
            out[k] = v
    return out


def http(port, path, timeout=10):
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            body, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        body, status = e.read(), e.code
    took = time.monotonic() - t0
    try:
        doc = json.loads(body)
    except ValueError:
        doc = body
    return status, doc, took


def start_serve(env, **extra):
    port = free_port()
    log = open(os.path.join(env.tmp, "serve-%d.log" % port), "w")
    p = subprocess.Popen([BIN, "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                         env=env.vars(**extra), cwd=env.tmp)
    procs.append(("serve", p))
    for _ in range(100):
        try:
            if http(port, "/health", timeout=1)[0] == 200:
                return p, port
        except OSError:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError("serve did not come up on port %d" % port)


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


class Silent:
    """Accepts TCP connections and never answers (a hung endpoint)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.done = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        deadline = time.monotonic() + 300
        while not self.done and time.monotonic() < deadline:
            try:
                c, _ = self.sock.accept()
                self.held.append(c)
            except OSError:
                pass

    def close(self):
        self.done = True
        self.t.join(5)
        for c in self.held:
            c.close()
        self.sock.close()


def audit_cli(env, *args):
    r = env.run(["audit", "query"] + list(args))
    items = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    m = re.search(r"next cursor: (\S+)", r.stderr)
    return r.returncode, items, (m.group(1) if m else None), r.stderr


def audit_cli_all(env, *args, limit=1):
    items, cursor, pages = [], None, 0
    while pages < 200:
        extra = ["--cursor", cursor] if cursor else []
        rc, page, cursor, err = audit_cli(env, *(list(args) + ["--limit", str(limit)] + extra))
        if rc != 0:
            raise RuntimeError("audit query: " + err)
        items += page
        pages += 1
        if not cursor:
            break
    return items, pages


def audit_http_all(port, query, limit=2):
    items, cursor, pages = [], None, 0
    while pages < 200:
        q = "%s&limit=%d" % (query, limit) + ("&cursor=" + cursor if cursor else "")
        status, doc, _ = http(port, "/audit?" + q)
        if status != 200:
            raise RuntimeError("GET /audit?%s: %s %s" % (q, status, doc))
        items += doc["items"]
        cursor = doc["nextCursor"]
        pages += 1
        if not cursor:
            break
    return items, pages


def ts_epoch(ts):
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def main():
    if not os.access(BIN, os.X_OK):
        print("test_dynamodb: %s is not an executable (build first)" % BIN, file=sys.stderr)
        return 2
    if not os.path.exists(os.path.join(ROOT, "node_modules", "dynalite", "cli.js")):
        print("test_dynamodb: dynalite missing: run 'npm ci' (scripts/install-deps.sh)",
              file=sys.stderr)
        return 2
    if not shutil.which(AWS):
        print("test_dynamodb: the AWS CLI is missing (scripts/install-deps.sh)", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="px-ddb-")
    ddir = os.path.join(tmp, "dynalite")
    silent = None
    try:
        endpoint = dynalite("start", ddir)
        env = Env(tmp, endpoint)
        run_all(env, ddir)
        silent = Silent()
        slow_endpoint(env, silent)
        ttl_standin(env)
        product_store(tmp)
    finally:
        for _, p in procs:
            stop(p)
        if silent:
            silent.close()
        try:
            dynalite("stop", ddir)
        except RuntimeError as e:
            print(e, file=sys.stderr)
        if TALLY.failed == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("logs kept in %s" % tmp)
    print(TALLY.summary())
    return 1 if TALLY.failed else 0


def product_invoke(env, method, path, body=None, timeout=60, **extra):
    """(proxy response, seconds) of one product-service event through `invoke`."""
    args = ["generate-event", "apigateway", "http-api", "--method", method, "--path", path]
    if body is not None:
        args += ["--body", body]
    ev = env.run(args)
    if ev.returncode != 0:
        raise RuntimeError("generate-event: " + ev.stderr)
    t0 = time.time()
    r = env.run(["invoke", "product-service", "--event", "-"], stdin=ev.stdout, timeout=timeout,
                **extra)
    took = time.time() - t0
    if r.returncode != 0:
        raise RuntimeError("invoke product-service: rc %d: %s" % (r.returncode, r.stderr))
    return json.loads(r.stdout), took


class LocalEnv(Env):
    """Env on DynamoDB Local with a SQLite audit trail: a product write is one
    TransactWriteItems (the product and its event's outbox item), which dynalite
    does not implement, so the product store runs on AWS's DynamoDB Local 1.25
    (scripts/ddblocal.sh) and the audit table stays with the dynalite tests."""

    def vars(self, **extra):
        env = Env.vars(self, **extra)
        if "AUDIT_STORE" not in extra:
            env["AUDIT_STORE"] = "sqlite:" + os.path.join(self.tmp, "products-audit.db")
        return env


def ddblocal(cmd, d):
    r = subprocess.run([os.path.join(ROOT, "scripts", "ddblocal.sh"), cmd, d],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("ddblocal.sh %s: %s" % (cmd, r.stderr))
    return r.stdout.strip()


def product_store(tmp):
    """PRODUCT_STORE=dynamodb:TABLE (TABLE_PRODUCTS) on DynamoDB Local: db migrate creates
    the table and its indexes, refuses a table of another layout; product-service reads and
    writes it (the item and its event's outbox item); with DynamoDB Local gone its routes
    answer 503 within the store's bound."""
    ddir = os.path.join(tmp, "ddblocal")
    try:
        env = LocalEnv(tmp, ddblocal("start", ddir))
    except RuntimeError as e:
        check("products: DynamoDB Local starts (scripts/ddblocal.sh)", False, e)
        return
    try:
        product_store_on(env, ddir)
    finally:
        ddblocal("stop", ddir)


def product_store_on(env, ddir):
    table = "products_it"
    r = env.run(["db", "migrate"], TABLE_PRODUCTS=table)
    check("products: db migrate creates the table", r.returncode == 0, r.stderr)
    desc = env.aws(["describe-table", "--table-name", table])["Table"]
    gsis = {g["IndexName"]: sorted((k["AttributeName"], k["KeyType"]) for k in g["KeySchema"])
            for g in desc.get("GlobalSecondaryIndexes", [])}
    check("products: key pk/sk, GSIs gsi1-gsi3 on gsiNpk/gsiNsk",
          sorted((k["AttributeName"], k["KeyType"]) for k in desc["KeySchema"]) ==
          [("pk", "HASH"), ("sk", "RANGE")] and
          all(gsis.get(g) == [(g + "pk", "HASH"), (g + "sk", "RANGE")]
              for g in ("gsi1", "gsi2", "gsi3")), desc)
    r = env.run(["db", "migrate"], TABLE_PRODUCTS=table)
    check("products: db migrate again is idempotent", r.returncode == 0, r.stderr)
    r = env.run(["db", "migrate"], TABLE_PRODUCTS=table, PRODUCT_STORE="dynamodb:" + table)
    check("products: PRODUCT_STORE=dynamodb:TABLE is the same store", r.returncode == 0, r.stderr)

    env.aws(["create-table", "--table-name", "products_bad", "--billing-mode", "PAY_PER_REQUEST",
             "--attribute-definitions", "AttributeName=pk,AttributeType=S",
             "AttributeName=sk,AttributeType=S", "--key-schema",
             "AttributeName=pk,KeyType=HASH", "AttributeName=sk,KeyType=RANGE"])
    r = env.run(["db", "migrate"], TABLE_PRODUCTS="products_bad")
    check("products: a table of another layout is refused, naming it",
          r.returncode != 0 and "products_bad exists with another layout" in r.stderr, r.stderr)

    doc, _ = product_invoke(env, "POST", "/products",
                            '{"productId":"IT-1","name":"n","category":"it"}',
                            TABLE_PRODUCTS=table)
    check("products: create through invoke -> 201", doc.get("statusCode") == 201, doc)
    doc, _ = product_invoke(env, "GET", "/products/IT-1", TABLE_PRODUCTS=table)
    check("products: read back -> 200, version 1",
          doc.get("statusCode") == 200 and json.loads(doc["body"])["version"] == 1, doc)
    item = env.aws(["get-item", "--table-name", table, "--consistent-read", "--key",
                    json.dumps({"pk": {"S": "T#default#PRODUCT#IT-1"}, "sk": {"S": "META"}})])
    check("products: the item, read with the AWS CLI",
          item.get("Item", {}).get("gsi1pk") == {"S": "T#default#CATEGORY#it"} and
          item["Item"].get("version") == {"N": "1"}, item)
    ob = env.aws(["query", "--table-name", table, "--consistent-read",
                  "--key-condition-expression", "pk = :p", "--expression-attribute-values",
                  json.dumps({":p": {"S": "OUTBOX#default"}})])
    check("products: its pricing.product.created.v1 in the table's outbox",
          [json.loads(x["event"]["S"])["type"] for x in ob.get("Items", [])] ==
          ["pricing.product.created.v1"], ob)

    ddblocal("stop", ddir)
    doc, took = product_invoke(env, "GET", "/products/IT-1", timeout=120, TABLE_PRODUCTS=table)
    body = json.loads(doc.get("body") or "{}")
    check("products: DynamoDB down -> 503 DEPENDENCY_UNAVAILABLE",
          doc.get("statusCode") == 503 and
          body.get("error", {}).get("code") == "DEPENDENCY_UNAVAILABLE", doc)
    check("products: DynamoDB down: answered within the store's bound (%.1f s)" % took,
          took < 20, took)


def run_all(env, ddir):
    # ---- seed: creates the table, says clearly that TTL could not be enabled
    r = env.run(["db", "seed"])
    check("db seed creates the table", r.returncode == 0, r.stderr)
    check("db seed says TTL could not be enabled on dynalite",
          "TTL could NOT be enabled" in r.stderr, r.stderr)
    desc = env.aws(["describe-table", "--table-name", TABLE])["Table"]
    gsi = {g["IndexName"]: g for g in desc.get("GlobalSecondaryIndexes", [])}
    check("table layout: pk/sk, GSI gsi1 (gsi1pk/gsi1sk, ALL), PAY_PER_REQUEST",
          sorted((k["AttributeName"], k["KeyType"]) for k in desc["KeySchema"]) ==
          [("pk", "HASH"), ("sk", "RANGE")] and "gsi1" in gsi and
          sorted((k["AttributeName"], k["KeyType"]) for k in gsi["gsi1"]["KeySchema"]) ==
          [("gsi1pk", "HASH"), ("gsi1sk", "RANGE")] and
          gsi["gsi1"]["Projection"]["ProjectionType"] == "ALL" and
          desc.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST", desc)
    r = env.run(["db", "seed"])
    check("db seed again is idempotent", r.returncode == 0, r.stderr)

    # ---- invoke: a few look-ups by two users over three products (one unknown)
    u1, u2 = str(uuid.uuid4()), str(uuid.uuid4()).upper()
    plan = [(u1, "PROD-101"), (u2, "PROD-101"), (u1, "PROD-102"), (u1, "PROD-NOPE-1"),
            (u2, "PROD-102"), (u1, "PROD-101")]
    t_start = time.time()
    expected = []
    for user, product in plan:
        out, _, api_id = invoke(env, user, product)
        status = out.get("statusCode")
        body = json.loads(out.get("body", "{}"))
        rid = out.get("headers", {}).get("X-Request-Id")
        want = 404 if "NOPE" in product else 200
        check("invoke %s %s -> %d" % (user[:8], product, want),
              status == want and (want != 200 or body.get("price") is not None), out)
        expected.append({"userId": user.lower(), "productId": product, "requestId": rid,
                         "apiRequestId": api_id,
                         "status": "SUCCESS" if want == 200 else "NOT_FOUND"})
    t_end = time.time()

    # ---- read back with the AWS CLI, field by field
    by_rid = {}
    for user in (u1.lower(), u2.lower()):
        q = env.aws(["query", "--table-name", TABLE, "--consistent-read",
                     "--key-condition-expression", "pk = :pk",
                     "--expression-attribute-values",
                     json.dumps({":pk": {"S": "USER#" + user}})])
        want = [e for e in expected if e["userId"] == user]
        check("aws query by user %s: %d records" % (user[:8], len(want)),
              q["Count"] == len(want), q)
        for item in q["Items"]:
            by_rid[item["requestId"]["S"]] = item
    for e in expected:
        item = by_rid.get(e["requestId"])
        if not check("record %s stored" % e["requestId"][:8], item is not None, e):
            continue
        types_ok = all(("S" in v) for k, v in item.items() if k not in ("expiresAt", "wseq")) and \
            "N" in item["expiresAt"] and "N" in item["wseq"]
        p = plain(item)
        sk = "AUDIT#%s#%s" % (p.get("ts"), e["requestId"])
        ts_ok = bool(TS_RE.match(p.get("ts", ""))) and \
            t_start - 2 <= ts_epoch(p["ts"]) <= t_end + 2
        check("record %s field by field" % e["requestId"][:8],
              types_ok and ts_ok and p["pk"] == "USER#" + e["userId"] and p["sk"] == sk and
              p["gsi1pk"] == "PRODUCT#" + e["productId"] and p["gsi1sk"] == sk and
              p["action"] == "PRICE_FETCH" and p["status"] == e["status"] and
              p["userId"] == e["userId"] and p["productId"] == e["productId"] and
              p["requestId"] == e["requestId"] and p.get("correlationId") and
              p.get("apiRequestId") == e["apiRequestId"] and
              p["apiRequestId"] != p["requestId"] and
              abs(p["expiresAt"] - (int(ts_epoch(p["ts"])) + RETENTION)) <= 1 and
              "principal" not in p and
              set(p) <= {"pk", "sk", "gsi1pk", "gsi1sk", "action", "status", "userId",
                         "productId", "requestId", "correlationId", "ts", "expiresAt",
                         "apiRequestId"} and all(a in item for a in CHAIN_ATTRS), item)
    for product in ("PROD-101", "PROD-102", "PROD-NOPE-1"):
        q = env.aws(["query", "--table-name", TABLE, "--index-name", "gsi1",
                     "--key-condition-expression", "gsi1pk = :p",
                     "--expression-attribute-values",
                     json.dumps({":p": {"S": "PRODUCT#" + product}})])
        got = [i["requestId"]["S"] for i in q["Items"]]
        want = [e["requestId"] for e in expected if e["productId"] == product]
        sks = [i["gsi1sk"]["S"] for i in q["Items"]]
        check("aws query on gsi1 for %s" % product,
              sorted(got) == sorted(want) and sks == sorted(sks), (got, want))

    # ---- pricing audit query: the same records as the CLI reads them, oldest first
    for user in (u1, u2):
        rc, items, cursor, err = audit_cli(env, "--user", user)
        raw = sorted((plain(v) for v in by_rid.values() if v["userId"]["S"] == user.lower()),
                     key=lambda x: x["sk"])
        check("audit query --user %s equals the table" % user[:8],
              rc == 0 and cursor is None and items == raw, (rc, err, items, raw))
    rc, items, cursor, err = audit_cli(env, "--product", "PROD-101")
    raw = sorted((plain(v) for v in by_rid.values() if v["productId"]["S"] == "PROD-101"),
                 key=lambda x: x["sk"])
    check("audit query --product PROD-101 equals gsi1", rc == 0 and items == raw,
          (rc, err, items))
    all_u1, pages = audit_cli_all(env, "--user", u1, limit=1)
    full_u1 = audit_cli(env, "--user", u1)[1]
    check("audit query pages of 1 with the cursor give every record once",
          all_u1 == full_u1 and pages == len(full_u1), (pages, len(full_u1)))
    mid = full_u1[1]["ts"]
    rc, frm, _, err = audit_cli(env, "--user", u1, "--from", mid)
    rc2, to, _, err2 = audit_cli(env, "--user", u1, "--to", mid)
    check("audit query --from/--to are inclusive bounds on ts",
          rc == 0 and rc2 == 0 and frm == [i for i in full_u1 if i["ts"] >= mid] and
          to == [i for i in full_u1 if i["ts"] <= mid], (err, err2))
    rc, items, _, err = audit_cli(env, "--user", u1, "--from", full_u1[-1]["ts"], "--to",
                                  full_u1[0]["ts"])
    check("audit query with from after to is empty", rc == 0 and items == [], (rc, err, items))
    _, _, c1, _ = audit_cli(env, "--user", u1, "--limit", "1")
    rc, _, _, err = audit_cli(env, "--user", u2, "--cursor", c1)
    check("a cursor of another user is refused", rc == 2, (rc, err))
    rc, _, _, err = audit_cli(env, "--user", u1, "--cursor", "bm90LWEtY3Vyc29y")
    check("a forged cursor is refused", rc == 2, (rc, err))

    # ---- expired records (TTL deletes late): hidden, also between pages
    now = int(time.time())
    puts = []
    for i, rec in enumerate(full_u1):
        # one millisecond before each live record: expired items sit between live ones
        ts = rec["ts"][:-4] + "%03dZ" % max(int(rec["ts"][-4:-1]) - 1, 0)
        for k in range(3):
            rid = "expired-%d-%d" % (i, k)
            sk = "AUDIT#%s#%s" % (ts, rid)
            puts.append({"PutRequest": {"Item": {
                "pk": {"S": "USER#" + u1}, "sk": {"S": sk}, "gsi1pk": {"S": "PRODUCT#PROD-101"},
                "gsi1sk": {"S": sk}, "action": {"S": "PRICE_FETCH"}, "status": {"S": "SUCCESS"},
                "userId": {"S": u1}, "productId": {"S": "PROD-101"}, "requestId": {"S": rid},
                "correlationId": {"S": rid}, "ts": {"S": ts},
                "expiresAt": {"N": str(now - 60)}}}})
    for i in range(0, len(puts), 25):
        env.aws(["batch-write-item", "--request-items", json.dumps({TABLE: puts[i:i + 25]})])
    again, pages = audit_cli_all(env, "--user", u1, limit=1)
    check("expired records are hidden, pages stay exact (%d stored expired)" % len(puts),
          again == full_u1, [i["requestId"] for i in again])
    prod_live = audit_cli(env, "--product", "PROD-101")[1]
    check("expired records are hidden on gsi1 too",
          all(not i["requestId"].startswith("expired") for i in prod_live) and
          len(prod_live) == len([e for e in expected if e["productId"] == "PROD-101"]), prod_live)

    # ---- serve: look-ups and GET /audit behave as on SQLite
    serve, port = start_serve(env)
    for _ in range(3):
        status, doc, _ = http(port, "/price?id=PROD-101&userId=%s" % u2)
        check("serve GET /price -> 200 with price", status == 200 and doc.get("price") == 99.99,
              (status, doc))
    cli_u2 = audit_cli(env, "--user", u2)[1]
    q = env.aws(["query", "--table-name", TABLE, "--consistent-read",
                 "--key-condition-expression", "pk = :pk",
                 "--expression-attribute-values",
                 json.dumps({":pk": {"S": "USER#" + u2.lower()}})])
    served = [i for i in q["Items"] if i["requestId"]["S"] not in by_rid]
    check("records of serve look-ups (no API Gateway) carry no apiRequestId",
          len(served) == 3 and all("apiRequestId" not in i for i in served) and
          all("apiRequestId" in i for i in q["Items"] if i["requestId"]["S"] in by_rid) and
          [plain(i) for i in q["Items"]] == cli_u2, q)
    got, pages = audit_http_all(port, "userId=%s" % u2, limit=2)
    check("GET /audit?userId pages (limit 2) equal audit query", got == cli_u2 and len(got) == 5,
          (len(got), len(cli_u2)))
    got, _ = audit_http_all(port, "userId=%s" % u1, limit=1)
    check("GET /audit hides expired records across pages", got == full_u1,
          [i["requestId"] for i in got])
    got, _ = audit_http_all(port, "productId=PROD-102", limit=1)
    check("GET /audit?productId pages", got == audit_cli(env, "--product", "PROD-102")[1], got)
    status, doc, _ = http(port, "/audit?userId=%s&from=%s&to=%s" % (u1, mid, mid))
    check("GET /audit from=to=ts finds exactly that record",
          status == 200 and [i["ts"] for i in doc["items"]] == [mid], (status, doc))
    # a bound with microseconds and one without a fraction: brought to milliseconds
    status, doc, _ = http(port, "/audit?userId=%s&from=%s" % (u1, mid[:23] + "999Z"))
    status2, doc2, _ = http(port, "/audit?userId=%s&to=%sZ" % (u1, mid[:19]))
    check("GET /audit normalises bounds to milliseconds like SQLite",
          status == 200 and doc["items"] == [i for i in full_u1 if i["ts"] >= mid] and
          status2 == 200 and doc2["items"] == [i for i in full_u1 if i["ts"] <= mid[:19] + ".000Z"],
          (status, doc, status2, doc2))
    status, doc, _ = http(port, "/audit?userId=%s&cursor=%s" % (u2, c1))
    check("GET /audit with another query's cursor -> 400", status == 400, (status, doc))

    # ---- fault: dynalite goes away mid-run
    dynalite("stop", ddir)
    status, doc, took = http(port, "/price?id=PROD-101&userId=%s" % u1)
    check("dynalite down: GET /price -> 503 AUDIT_UNAVAILABLE, no price",
          status == 503 and isinstance(doc, dict) and
          doc.get("error", {}).get("code") == "AUDIT_UNAVAILABLE" and "price" not in doc,
          (status, doc))
    check("dynalite down: answered within the bound (%.0f ms)" % (took * 1000),
          took < TIMEOUT_MS / 1000 + 1.0, took)
    status, _, _ = http(port, "/ready")
    check("dynalite down: /ready is not ready", status == 503, status)
    out, took, _ = invoke(env, u1, "PROD-101")
    body = json.loads(out.get("body", "{}"))
    check("dynalite down: invoke -> 503 AUDIT_UNAVAILABLE, no price",
          out.get("statusCode") == 503 and body.get("error", {}).get("code") == "AUDIT_UNAVAILABLE"
          and "price" not in body, out)

    # ---- back: dynalite restarts empty (in memory); seed recreates the table
    dynalite("restart", ddir)
    r = env.run(["db", "seed"])
    check("db seed after restart", r.returncode == 0, r.stderr)
    ok = False
    for _ in range(40):
        status, doc, _ = http(port, "/price?id=PROD-101&userId=%s" % u1)
        if status == 200:
            ok = True
            break
        time.sleep(0.25)
    check("serve recovers once DynamoDB is back", ok and doc.get("price") == 99.99, (status, doc))
    q = env.aws(["query", "--table-name", TABLE, "--key-condition-expression", "pk = :pk",
                 "--expression-attribute-values", json.dumps({":pk": {"S": "USER#" + u1}})])
    check("the record of the recovered look-up is stored", q["Count"] == 1, q)
    stop(serve)
    check("serve stops cleanly", serve.returncode == 0, serve.returncode)


def slow_endpoint(env, silent):
    ep = "http://127.0.0.1:%d" % silent.port
    u = str(uuid.uuid4())
    out, took, _ = invoke(env, u, "PROD-101", AWS_ENDPOINT_URL_DYNAMODB=ep)
    body = json.loads(out.get("body", "{}"))
    check("hung endpoint: invoke -> 503 AUDIT_UNAVAILABLE, no price",
          out.get("statusCode") == 503 and body.get("error", {}).get("code") == "AUDIT_UNAVAILABLE"
          and "price" not in body, out)
    check("hung endpoint: invoke bounded (%.0f ms)" % (took * 1000),
          took < TIMEOUT_MS / 1000 + 1.5, took)
    serve, port = start_serve(env, AWS_ENDPOINT_URL_DYNAMODB=ep)
    results = []

    def one():
        results.append(http(port, "/price?id=PROD-101&userId=%s" % u))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    check("hung endpoint: 4 concurrent GET /price -> 503 each, within the bound",
          len(results) == 4 and all(s == 503 and d.get("error", {}).get("code") ==
                                    "AUDIT_UNAVAILABLE" and took < TIMEOUT_MS / 1000 + 1.0
                                    for s, d, took in results),
          [(s, round(t * 1000)) for s, _, t in results])
    stop(serve)


def ttl_standin(env):
    d = tempfile.mkdtemp(dir=env.tmp)
    portfile, logfile = os.path.join(d, "port"), os.path.join(d, "log")
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests", "integration",
                                                           "ddb_standin.py"),
                          portfile, logfile, SECRET])
    procs.append(("standin", p))
    for _ in range(100):
        if os.path.exists(portfile):
            break
        time.sleep(0.05)
    ep = "http://127.0.0.1:%s" % open(portfile).read().strip()

    def log():
        if not os.path.exists(logfile):
            return []
        with open(logfile) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        os.unlink(logfile)
        return lines

    token = "FQoGZXIvYXdzEXAMPLE/token+with=chars"
    r = env.run(["db", "seed"], AWS_ENDPOINT_URL_DYNAMODB=ep, AWS_SESSION_TOKEN=token)
    lines = log()
    ops = [l["op"] for l in lines]
    check("TTL: db seed against a DynamoDB that has TTL", r.returncode == 0 and
          "could NOT" not in r.stderr, r.stderr)
    check("TTL: DescribeTable, DescribeTimeToLive, UpdateTimeToLive in order",
          ops == ["DescribeTable", "DescribeTimeToLive", "UpdateTimeToLive"], ops)
    check("TTL: every request signed (checked by the stand-in) with the session token",
          lines and all(l["ok"] and l["token"] == token for l in lines),
          [(l["op"], l["why"]) for l in lines])
    upd = [l for l in lines if l["op"] == "UpdateTimeToLive"]
    check("TTL: UpdateTimeToLive enables expiresAt on the table",
          upd and upd[0]["body"] == {"TableName": TABLE, "TimeToLiveSpecification":
                                     {"AttributeName": "expiresAt", "Enabled": True}},
          upd)
    r = env.run(["db", "seed"], AWS_ENDPOINT_URL_DYNAMODB=ep)
    ops = [l["op"] for l in log()]
    check("TTL: seed again sees TTL enabled and does not update it",
          r.returncode == 0 and ops == ["DescribeTable", "DescribeTimeToLive"], (ops, r.stderr))
    r = env.run(["db", "seed"], AWS_ENDPOINT_URL_DYNAMODB=ep,
                AWS_SECRET_ACCESS_KEY="not-the-secret")
    check("TTL: a wrong secret is refused by the stand-in and seed fails clearly",
          r.returncode != 0 and "InvalidSignatureException" in r.stderr, r.stderr)
    log()
    stop(p)


if __name__ == "__main__":
    sys.exit(main())
