#!/usr/bin/python3
"""Group commit of the DynamoDB audit store (TransactWriteItems).

Look-ups that wait for the audit store together go out as one
TransactWriteItems of conditional Puts (docs/internals/dynamodb.md). The
server is AWS's DynamoDB Local (scripts/ddblocal.sh); between `pricing serve`
and it sits a small proxy, started here on loopback, that forwards every
request unchanged except in the phases that make a group write meet what
DynamoDB can do to it. Every record is read back from DynamoDB Local and
`pricing audit verify` checks the chains. Phases:

  1. group commit: 40 look-ups at once; the store's batch-size metric shows
     groups of several records; every look-up has its record; verify passes.
  2. a lost answer: the first group reaches DynamoDB, its answer does not
     (500 instead): the client sends it again with the same
     ClientRequestToken; every look-up 200, each record once, verify passes.
  3. a key taken: before a group goes through, an item with one of its keys
     is put there: DynamoDB cancels the whole transaction; the records then go
     one PutItem each, that look-up alone gets 503, the other item is not
     overwritten, and the refused record takes no place in the chain.
  4. an answer too late: the group is applied but answered after the records'
     deadline: those look-ups get 503 (their records exist: a record may
     outlive its answer, never the reverse), later look-ups go on, verify passes.
  5. AUDIT_MAX_BATCH=1: one conditional PutItem per record, no transaction.
  6. dynalite, which has no TransactWriteItems: the store says so once and
     writes one PutItem per record, several in flight together (each on its
     own chain); every record there, verify passes. Through a proxy that
     holds each record's PutItem a moment (so that records queue up), more
     PutItems are in flight at once than the store has writer threads; one
     of them, in the middle of such a round, has its answer lost (sent again,
     found there: 200, the record once), then one finds its key taken (that
     look-up alone 503, the item not overwritten); verify passes.

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_dynamodb as td  # noqa: E402
from common import DdbProxy, Tally  # noqa: E402

TALLY = Tally(3000)
check = TALLY.check
TABLE = td.TABLE


class Proxy(DdbProxy):
    """Forwards DynamoDB requests to `upstream`; `mode` changes the first
    TransactWriteItems of 3 or more Puts that comes while it is set: "lost"
    (forwarded, answered 500), "taken" (the key of its second Put put first,
    with other content), "late" (forwarded, answered after `delay` seconds).
    The mode clears itself once used."""

    def __init__(self, upstream):
        self.mode = None
        self.delay = 0.0
        self.lock = threading.Lock()
        self.groups = []  # Put count of every TransactWriteItems
        self.hit = None  # the request of the group the mode was used on
        self.squatter = None  # the item put in "taken"
        super().__init__(upstream)

    def hook(self, op, body, headers):
        if op != "TransactWriteItems":
            return self.forward(body, headers)
        puts = json.loads(body).get("TransactItems", [])
        with self.lock:
            self.groups.append(len(puts))
            mode = self.mode if len(puts) >= 3 else None
            if mode:
                self.mode = None
                self.hit = json.loads(body)
        if mode == "lost":
            self.forward(body, headers)
            return 500, json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                                    "message": "answer lost on the way back"}).encode()
        if mode == "taken":
            item = {k: v for k, v in puts[1]["Put"]["Item"].items()
                    if k not in ("writer", "wseq", "prevHash", "hash")}
            item["status"] = {"S": "SQUATTER"}
            self.squatter = item
            self.forward(json.dumps({"TableName": TABLE, "Item": item}).encode(), headers,
                         "PutItem")
        if mode == "late":
            status, out = self.forward(body, headers)
            time.sleep(self.delay)
            return status, out
        return self.forward(body, headers)


def metric(port, name):
    status, doc, _ = td.http(port, "/metrics")
    text = doc.decode() if isinstance(doc, bytes) else str(doc)
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def burst(port, n, product="PROD-101"):
    """n look-ups at once; returns [(status, requestId, userId, seconds)]."""
    out = [None] * n

    def one(i):
        user = str(uuid.uuid4())
        url = "http://127.0.0.1:%d/price?id=%s&userId=%s" % (port, product, user)
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                out[i] = (r.status, r.headers.get("X-Request-Id"), user, time.monotonic() - t0)
        except urllib.error.HTTPError as e:
            out[i] = (e.code, e.headers.get("X-Request-Id"), user, time.monotonic() - t0)
        except OSError as e:
            out[i] = (0, str(e), user, time.monotonic() - t0)

    ths = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(60)
    return out


def verify(env, key):
    return env.run(["audit", "verify"], AUDIT_SIGNING_KEY_FILE=key)


def by_request(env):
    """requestId -> [items] (every copy, to see duplicates)."""
    out = {}
    start = None
    while True:
        args = ["scan", "--table-name", TABLE, "--consistent-read"]
        if start:
            args += ["--starting-token", start]
        r = env.aws(args)
        for i in r.get("Items", []):
            if not i["pk"]["S"].startswith("CHECKPOINT#"):
                out.setdefault(i["requestId"]["S"], []).append(i)
        start = r.get("NextToken")
        if not start:
            return out


def answered_once(env, label, got):
    """Every look-up of got -> 200, and its record is in the table once."""
    check("%s: every look-up -> 200" % label, all(g[0] == 200 for g in got),
          [g for g in got if g[0] != 200][:3])
    recs = by_request(env)
    check("%s: each record there once" % label,
          all(len(recs.get(g[1], [])) == 1 for g in got),
          [g for g in got if len(recs.get(g[1], [])) != 1][:3])


def squatter_checks(env, key, label, sq, got):
    """The taken-key outcome: the squatter's item is not overwritten, every
    answered look-up has its record once, verify names the foreign item, and
    passes once it is deleted (the refused record took no place in a chain)."""
    recs = by_request(env)
    check("%s: the item there is not overwritten" % label,
          sq is not None and [i["status"]["S"] for i in recs.get(sq["requestId"]["S"], [])] ==
          ["SQUATTER"], sq and recs.get(sq["requestId"]["S"]))
    check("%s: every other look-up has its record once" % label,
          all(len(recs.get(g[1], [])) == 1 for g in got if g[0] == 200))
    r = verify(env, key)
    check("%s: verify names the foreign item" % label, r.returncode == 1 and
          "without chain attributes" in r.stdout, r.stdout + r.stderr)
    if sq is not None:
        env.aws(["delete-item", "--table-name", TABLE, "--key",
                 json.dumps({"pk": sq["pk"], "sk": sq["sk"]})])
    r = verify(env, key)
    check("%s: without it verify passes (the refused record took no wseq)" % label,
          r.returncode == 0, r.stdout + r.stderr)


def serve_log(tmp, port):
    with open(os.path.join(tmp, "serve-%d.log" % port)) as f:
        return f.read()


def start_server(script, ddir):
    """The endpoint of scripts/SCRIPT.sh started in ddir, or None (a failed check)."""
    try:
        return getattr(td, script)("start", ddir)
    except RuntimeError as e:
        check("%s starts (scripts/%s.sh)" % (script, script), False, e)
        return None


def on_ddblocal(tmp, key):
    ddir = os.path.join(tmp, "ddblocal")
    upstream = start_server("ddblocal", ddir)
    if not upstream:
        return
    proxy = Proxy(upstream)
    serve = None
    try:
        env = td.Env(tmp, proxy.url)
        r = env.run(["db", "seed"], AUDIT_SIGNING_KEY_FILE=key)
        check("db seed creates the table on DynamoDB Local", r.returncode == 0, r.stderr)
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
        check("group commit: TransactWriteItems of several Puts reached DynamoDB",
              any(n >= 2 for n in proxy.groups), proxy.groups)
        recs = by_request(env)
        check("group commit: every answered look-up has its record, read from DynamoDB Local",
              all(len(recs.get(g[1], [])) == 1 and recs[g[1]][0]["userId"]["S"] == g[2]
                  for g in got), [g for g in got if g[1] not in recs][:3])
        hit = json.loads(json.dumps(proxy.hit)) if proxy.hit else None
        r = verify(env, key)
        check("group commit: audit verify passes", r.returncode == 0, r.stdout + r.stderr)

        # 2. a lost answer
        proxy.mode = "lost"
        got = burst(port, 40, "PROD-102")
        check("lost answer: a group's answer was lost", proxy.hit is not None and proxy.hit != hit,
              proxy.groups[-10:])
        answered_once(env, "lost answer", got)
        check("lost answer: the group was sent again with the same ClientRequestToken",
              proxy.hit and proxy.hit.get("ClientRequestToken") and proxy.groups.count(
                  len(proxy.hit["TransactItems"])) >= 2, proxy.groups[-10:])
        r = verify(env, key)
        check("lost answer: audit verify passes (no duplicate, no fork)", r.returncode == 0,
              r.stdout + r.stderr)

        # 3. a key taken
        proxy.mode = "taken"
        got = burst(port, 30, "PROD-103")
        sq = proxy.squatter
        late = [g for g in got if g[0] != 200]
        check("key taken: a group met a key already there", sq is not None, proxy.groups[-10:])
        check("key taken: that look-up alone -> 503, the others 200",
              sq is not None and len(late) == 1 and late[0][0] == 503 and
              sq["requestId"]["S"] == late[0][1], (late, sq and sq["requestId"]))
        squatter_checks(env, key, "key taken", sq, got)

        # 4. an answer too late
        proxy.delay = td.TIMEOUT_MS / 1000.0 + 0.5
        proxy.mode = "late"
        got = burst(port, 30, "PROD-101")
        late = [g for g in got if g[0] != 200]
        n_hit = len(proxy.hit["TransactItems"]) if proxy.hit else 0
        check("late answer: that group's look-ups -> 503 (and only 503 or 200)",
              n_hit >= 3 and len(late) >= n_hit and all(g[0] == 503 for g in late),
              (n_hit, late[:3]))
        time.sleep(0.5)
        recs = by_request(env)
        check("late answer: the records of the 503 look-ups exist (applied late)",
              sum(1 for g in late if g[1] in recs) >= n_hit, late[:3])
        got = burst(port, 20, "PROD-102")
        check("late answer: later look-ups -> 200", all(g[0] == 200 for g in got),
              [g for g in got if g[0] != 200][:3])
        td.stop(serve)
        r = verify(env, key)
        check("late answer: audit verify passes", r.returncode == 0, r.stdout + r.stderr)
        log = serve_log(tmp, port)
        check("DynamoDB Local: no fallback to PutItem announced", "has no TransactWriteItems"
              not in log)

        # 5. AUDIT_MAX_BATCH=1: one conditional PutItem per record, no transaction
        serve, port = td.start_serve(env, AUDIT_SIGNING_KEY_FILE=key, AUDIT_MAX_BATCH="1")
        groups = len(proxy.groups)
        c0 = metric(port, "pricing_audit_batch_size_count")
        got = burst(port, 20, "PROD-103")
        c1 = metric(port, "pricing_audit_batch_size_count")
        td.stop(serve)
        recs = by_request(env)
        check("AUDIT_MAX_BATCH=1: 20 look-ups -> 200, each record there once",
              all(g[0] == 200 and len(recs.get(g[1], [])) == 1 for g in got),
              [g for g in got if g[0] != 200][:3])
        check("AUDIT_MAX_BATCH=1: no TransactWriteItems, 20 writes of one record",
              len(proxy.groups) == groups and c1 - c0 == 20, (proxy.groups[groups:], c1 - c0))
        r = verify(env, key)
        check("AUDIT_MAX_BATCH=1: audit verify passes", r.returncode == 0, r.stdout + r.stderr)
    finally:
        if serve:
            td.stop(serve)
        proxy.close()
        td.ddblocal("stop", ddir)


class PutProxy(DdbProxy):
    """Forwards to `upstream`; each PutItem of an audit record (not a
    checkpoint) is held `delay` seconds first, and the largest number held at
    once is kept. `mode` ("lost" or "taken", as in Proxy) hits the `after`-th
    record PutItem from when it was set, then clears itself."""

    def __init__(self, upstream):
        self.lock = threading.Lock()
        self.delay = 0.0
        self.inflight = self.max_inflight = 0
        self.mode = None
        self.after = 0
        self.hit = None
        self.squatter = None
        self.hang = 0.0  # every request (checkpoints too) held this long first
        super().__init__(upstream)

    def hook(self, op, body, headers):
        time.sleep(self.hang)
        item = json.loads(body).get("Item", {}) if op == "PutItem" else {}
        if not item or item.get("pk", {}).get("S", "").startswith("CHECKPOINT#"):
            return self.forward(body, headers)
        with self.lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            mode = None
            if self.mode:
                self.after -= 1
                if self.after <= 0:
                    mode, self.mode, self.hit = self.mode, None, item
        try:
            time.sleep(self.delay)
            if mode == "taken":
                sq = {k: v for k, v in item.items()
                      if k not in ("writer", "wseq", "prevHash", "hash")}
                sq["status"] = {"S": "SQUATTER"}
                self.squatter = sq
                self.forward(json.dumps({"TableName": TABLE, "Item": sq}).encode(), headers)
            status, out = self.forward(body, headers)
            if mode == "lost":
                return 500, json.dumps({
                    "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                    "message": "answer lost on the way back"}).encode()
            return status, out
        finally:
            with self.lock:
                self.inflight -= 1


def on_dynalite(tmp, key):
    ddir = os.path.join(tmp, "dynalite")
    endpoint = start_server("dynalite", ddir)
    if not endpoint:
        return
    serve = None
    proxy = PutProxy(endpoint)
    try:
        env = td.Env(tmp, proxy.url)
        r = env.run(["db", "seed"], AUDIT_SIGNING_KEY_FILE=key)
        check("dynalite: db seed", r.returncode == 0, r.stderr)
        serve, port = td.start_serve(env, AUDIT_SIGNING_KEY_FILE=key)
        got = burst(port, 40)
        check("dynalite: 40 look-ups at once -> 200 each", all(g[0] == 200 for g in got),
              [g for g in got if g[0] != 200][:3])
        td.stop(serve)
        recs = by_request(env)
        check("dynalite: every record there once", all(len(recs.get(g[1], [])) == 1 for g in got))
        log = serve_log(tmp, port)
        check("dynalite: the store says once that it writes one PutItem per record",
              log.count("has no TransactWriteItems") == 1, log[-1500:])
        r = verify(env, key)
        check("dynalite: audit verify passes", r.returncode == 0, r.stdout + r.stderr)

        # PutItems in flight together, and what one of them may meet
        serve, port = td.start_serve(env, AUDIT_SIGNING_KEY_FILE=key)
        proxy.delay = 0.2
        proxy.max_inflight = 0
        proxy.mode, proxy.after = "lost", 12
        got = burst(port, 40, "PROD-102")
        check("dynalite: more PutItems in flight at once than the 8 writer threads",
              proxy.max_inflight > 8, proxy.max_inflight)
        check("dynalite lost answer: a record's answer was lost", proxy.hit is not None)
        answered_once(env, "dynalite lost answer", got)
        proxy.mode, proxy.after, proxy.hit = "taken", 12, None
        got = burst(port, 40, "PROD-103")
        sq = proxy.squatter
        refused = [g for g in got if g[0] != 200]
        check("dynalite taken key: only that look-up -> 503",
              sq is not None and len(refused) == 1 and refused[0][0] == 503
              and refused[0][1] == sq["requestId"]["S"], (refused[:3], sq and sq["requestId"]))
        td.stop(serve)
        serve = None
        squatter_checks(env, key, "dynalite taken key", sq, got)

        # A hung endpoint. A chain whose write has no known outcome ends, and
        # its records after its last checkpoint are signed first: that must
        # not hold the 503 back. 40 look-ups one after the other leave such
        # records on the first chain of every writer thread (all but about
        # one in 200 runs), where the next look-up goes. (No verify after it:
        # a held first record of a fresh chain may still land after its chain
        # ended, with no checkpoint to cover it; docs/internals/audit-integrity.md.)
        serve, port = td.start_serve(env, AUDIT_SIGNING_KEY_FILE=key)
        quiet = [burst(port, 1)[0] for _ in range(40)]
        check("dynalite: 40 look-ups one after the other -> 200",
              all(g[0] == 200 for g in quiet), quiet)
        proxy.hang = td.TIMEOUT_MS / 1000.0 + 1.0
        hung = burst(port, 1) + burst(port, 8)
        check("dynalite hung endpoint: look-ups -> 503 each, within the time-out + 0.7 s",
              all(g[0] == 503 and g[3] < td.TIMEOUT_MS / 1000.0 + 0.7 for g in hung),
              [(g[0], round(g[3], 2)) for g in hung])
        td.stop(serve)
        serve = None
        proxy.hang = 0.0
    finally:
        if serve:
            td.stop(serve)
        proxy.close()
        td.dynalite("stop", ddir)


def main():
    if not os.access(td.BIN, os.X_OK):
        print("test_ddb_batch: %s is not an executable (build first)" % td.BIN, file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="px-ddb-batch-")
    try:
        env = td.Env(tmp, "http://127.0.0.1:1")
        key = os.path.join(tmp, "sign")
        r = env.run(["audit", "keygen", "--out", key])
        check("audit keygen", r.returncode == 0, r.stderr)
        on_ddblocal(tmp, key + ".key")
        on_dynalite(tmp, key + ".key")
    finally:
        if TALLY.failed == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("logs kept in %s" % tmp)
    print(TALLY.summary())
    return 1 if TALLY.failed else 0


if __name__ == "__main__":
    sys.exit(main())
