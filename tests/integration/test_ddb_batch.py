#!/usr/bin/python3
"""Group commit of the DynamoDB audit store (BatchWriteItem), against dynalite.

Look-ups that wait for the audit store together go out as one BatchWriteItem
(docs/internals/dynamodb.md). Between `pricing serve` and dynalite sits a small
proxy, started here on loopback, that forwards every request unchanged except
in the phases that make BatchWriteItem behave as DynamoDB does under
throttling: some items come back in `UnprocessedItems` (not written; the
caller must send them again). Every record is read back from dynalite itself
and `pricing audit verify` checks the chains. Phases:

  1. group commit: 40 look-ups at once; the store's batch-size metric shows
     batches of several records; every look-up has its record; verify passes.
  2. unprocessed items: the second half of every batch comes back unprocessed
     once; every look-up still answers 200 with its record; verify passes.
  3. a gap repaired: the first item of one batch stays unprocessed past its
     deadline while the items after it are written: that look-up alone gets
     503, its record is written afterwards, the chain has no gap.
  4. a gap left: the same item is never taken: after the repair budget the
     service logs where the gap is, and verify names it.

Usage: test_ddb_batch.py [PATH/TO/pricing]   (default: build/pricing)
"""
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_dynamodb as td  # noqa: E402
from common import Tally  # noqa: E402

TALLY = Tally(3000)
check = TALLY.check
TABLE = td.TABLE
REPAIR_S = 10  # REPAIR_MS of src/store/audit_dynamodb.c


class Proxy:
    """Forwards DynamoDB requests to dynalite; `mode` changes BatchWriteItem:
    None (as is), "once" (the second half of each batch unprocessed the first
    time it is seen), "hold" (the first item of the first batch of 3 or more
    unprocessed until `hold_until`), "never" (that item never taken)."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.mode = None
        self.lock = threading.Lock()
        self.seen = set()  # sk of items already held back once
        self.held = None  # sk of the item held in "hold" / "never"
        self.hold_until = 0.0
        self.batches = []  # item count of every BatchWriteItem forwarded or answered
        self.unprocessed = 0  # items returned unprocessed
        proxy = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                op = self.headers.get("X-Amz-Target", "").split(".")[-1]
                status, out = proxy.handle(op, body, self.headers)
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("x-amz-crc32", str(zlib.crc32(out) & 0xFFFFFFFF))
                self.end_headers()
                self.wfile.write(out)

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def forward(self, body, headers):
        keep = ("Content-Type", "X-Amz-Target", "Authorization", "X-Amz-Date",
                "X-Amz-Security-Token")
        req = urllib.request.Request(self.upstream, data=body, method="POST",
                                     headers={k: headers[k] for k in keep if headers.get(k)})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def split(self, puts):
        """(items to forward, items to return unprocessed) of one batch."""
        with self.lock:
            mode = self.mode
            if mode == "once":
                half = puts[len(puts) // 2:] if len(puts) >= 2 else []
                back = [p for p in half if p["PutRequest"]["Item"]["sk"]["S"] not in self.seen]
                for p in back:
                    self.seen.add(p["PutRequest"]["Item"]["sk"]["S"])
            elif mode in ("hold", "never"):
                if self.held is None and len(puts) >= 3:
                    self.held = puts[0]["PutRequest"]["Item"]["sk"]["S"]
                back = [p for p in puts if p["PutRequest"]["Item"]["sk"]["S"] == self.held and
                        (mode == "never" or time.monotonic() < self.hold_until)]
            else:
                back = []
            self.batches.append(len(puts))
            self.unprocessed += len(back)
        ids = {id(p) for p in back}
        return [p for p in puts if id(p) not in ids], back

    def handle(self, op, body, headers):
        if op != "BatchWriteItem":
            return self.forward(body, headers)
        req = json.loads(body)
        puts = req["RequestItems"][TABLE]
        fwd, back = self.split(puts)
        if not back:
            return self.forward(body, headers)
        out = {}
        if fwd:
            req["RequestItems"][TABLE] = fwd
            status, raw = self.forward(json.dumps(req).encode(), headers)
            if status != 200:
                return status, raw
            out = json.loads(raw)
        un = out.setdefault("UnprocessedItems", {}).setdefault(TABLE, [])
        un.extend(back)
        return 200, json.dumps(out).encode()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def metric(port, name):
    status, doc, _ = td.http(port, "/metrics")
    text = doc.decode() if isinstance(doc, bytes) else str(doc)
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def burst(port, n, product="PROD-101"):
    """n look-ups at once; returns [(status, requestId, userId)]."""
    out = [None] * n

    def one(i):
        user = str(uuid.uuid4())
        url = "http://127.0.0.1:%d/price?id=%s&userId=%s" % (port, product, user)
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                out[i] = (r.status, r.headers.get("X-Request-Id"), user)
        except urllib.error.HTTPError as e:
            out[i] = (e.code, e.headers.get("X-Request-Id"), user)
        except OSError as e:
            out[i] = (0, str(e), user)

    ths = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(60)
    return out


def records(env):
    """requestId -> item of every audit record in the table (read from dynalite)."""
    items, start = {}, None
    while True:
        args = ["scan", "--table-name", TABLE, "--consistent-read"]
        if start:
            args += ["--starting-token", start]
        r = env.aws(args)
        for i in r.get("Items", []):
            if not i["pk"]["S"].startswith("CHECKPOINT#"):
                items[i["requestId"]["S"]] = i
        start = r.get("NextToken")
        if not start:
            return items


def verify(env, key):
    return env.run(["audit", "verify"], AUDIT_SIGNING_KEY_FILE=key)


def main():
    if not os.access(td.BIN, os.X_OK):
        print("test_ddb_batch: %s is not an executable (build first)" % td.BIN, file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="px-ddb-batch-")
    ddir = os.path.join(tmp, "dynalite")
    proxy = None
    serve = None
    try:
        upstream = td.dynalite("start", ddir)
        proxy = Proxy(upstream)
        env = td.Env(tmp, proxy.url)
        key = os.path.join(tmp, "sign")
        r = env.run(["audit", "keygen", "--out", key])
        check("audit keygen", r.returncode == 0, r.stderr)
        key += ".key"
        r = env.run(["db", "seed"], AUDIT_SIGNING_KEY_FILE=key)
        check("db seed creates the table through the proxy", r.returncode == 0, r.stderr)
        serve, port = td.start_serve(env, AUDIT_SIGNING_KEY_FILE=key)

        # 1. group commit
        s0 = metric(port, "pricing_audit_batch_size_sum")
        c0 = metric(port, "pricing_audit_batch_size_count")
        got = burst(port, 40)
        check("group commit: 40 look-ups at once -> 200 each",
              all(g[0] == 200 for g in got), [g for g in got if g[0] != 200][:3])
        s1 = metric(port, "pricing_audit_batch_size_sum")
        c1 = metric(port, "pricing_audit_batch_size_count")
        check("group commit: 40 records in fewer write requests (batch-size metric)",
              s1 - s0 == 40 and 0 < c1 - c0 < 40, (s1 - s0, c1 - c0))
        check("group commit: BatchWriteItem requests of several items reached DynamoDB",
              any(n >= 2 for n in proxy.batches), proxy.batches)
        recs = records(env)
        check("group commit: every answered look-up has its record, read from dynalite",
              all(g[1] in recs and recs[g[1]]["userId"]["S"] == g[2] for g in got),
              [g for g in got if g[1] not in recs][:3])
        r = verify(env, key)
        check("group commit: audit verify passes", r.returncode == 0, r.stdout + r.stderr)

        # 2. unprocessed items sent again
        proxy.mode = "once"
        u0 = proxy.unprocessed
        got = burst(port, 40, "PROD-102")
        check("unprocessed: some items came back unprocessed", proxy.unprocessed > u0,
              proxy.batches[-10:])
        check("unprocessed: every look-up -> 200", all(g[0] == 200 for g in got),
              [g for g in got if g[0] != 200][:3])
        recs = records(env)
        check("unprocessed: every record written after all",
              all(g[1] in recs for g in got), [g for g in got if g[1] not in recs][:3])
        r = verify(env, key)
        check("unprocessed: audit verify passes", r.returncode == 0, r.stdout + r.stderr)

        # 3. a gap inside the chain, repaired after the deadline
        with proxy.lock:
            proxy.mode, proxy.held = "hold", None
            proxy.hold_until = time.monotonic() + td.TIMEOUT_MS / 1000.0 + 2.5
        got = burst(port, 30, "PROD-103")
        held = proxy.held
        late = [g for g in got if g[0] != 200]
        check("gap repaired: one batch's first item was held back", held is not None,
              proxy.batches[-10:])
        check("gap repaired: its look-up alone -> 503, the others 200",
              len(late) == 1 and late[0][0] == 503 and held and held.endswith(late[0][1]),
              (late, held))
        time.sleep(td.TIMEOUT_MS / 1000.0 + 3.5)
        recs = records(env)
        check("gap repaired: the held record was written after its look-up's deadline",
              bool(late) and late[0][1] in recs, late)
        r = verify(env, key)
        check("gap repaired: audit verify passes (no gap in the chain)", r.returncode == 0,
              r.stdout + r.stderr)

        # 4. a gap that stays: named in the log, then by verify
        with proxy.lock:
            proxy.mode, proxy.held = "never", None
        got = burst(port, 30, "PROD-101")
        late = [g for g in got if g[0] != 200]
        check("gap left: one look-up -> 503", len(late) == 1 and late[0][0] == 503, late)
        time.sleep(REPAIR_S + 2)
        td.stop(serve)
        with open(os.path.join(tmp, [f for f in os.listdir(tmp) if f.startswith("serve-")][0])) as f:
            log = f.read()
        check("gap left: the service logs the chain and wseq verify will name",
              "may miss records from wseq" in log, log[-1500:])
        with proxy.lock:
            proxy.mode = None
        r = verify(env, key)
        check("gap left: audit verify exit 1 naming the missing record",
              r.returncode == 1 and "missing" in r.stdout, r.stdout + r.stderr)
    finally:
        if serve:
            td.stop(serve)
        if proxy:
            proxy.close()
        try:
            td.dynalite("stop", ddir)
        except RuntimeError as e:
            print(e, file=sys.stderr)
        if TALLY.failed == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("logs kept in %s" % tmp)
    print(TALLY.summary())
    return 1 if TALLY.failed else 0


if __name__ == "__main__":
    sys.exit(main())
