#!/usr/bin/python3
"""The tamper-evident audit trail on DynamoDB (docs/internals/audit-integrity.md),
against dynalite: two `serve` processes and `pricing invoke` (the Lambda path's
one-shot writer) write at once, `pricing audit verify` passes; then each kind of
tampering, made directly on the table (changed attribute, deleted item, forged
item with a consistent chain of its own, removed tail, forged checkpoint,
unchained item inserted), makes it exit 1 naming the item. Each change is undone
before the next. Then two tenants on the trail: `audit verify --tenant`.

Usage: test_ddb_integrity.py [PATH/TO/pricing]   (default: build/pricing)
Prints one line per check and "N passed, N failed"; exits non-zero on failure.
"""
import hashlib
import json
import os
import shutil
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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                      os.environ.get("PRICING_BIN", os.path.join(ROOT, "build", "pricing")))
TABLE = "audit_integrity"
TALLY = Tally(2000)
check = TALLY.check


def record_hash(item, writer, wseq, prev):
    """The chain hash, computed here independently of the C code."""
    def s(name):
        v = item.get(name)
        return v["S"] if v else ""

    def field(b):
        if b is None:
            return b"\xff\xff\xff\xff"
        b = b.encode()
        return len(b).to_bytes(4, "big") + b

    h = hashlib.sha256(b"pricing-audit-record/v1\n")
    for f in (writer, str(wseq), s("action"), s("status"), s("userId"), s("productId"),
              s("requestId"), s("correlationId"), s("ts"), item["expiresAt"]["N"], s("principal"),
              s("apiRequestId")):
        h.update(field(f))
    for c in ("before", "after"):
        h.update(field(item[c]["S"] if c in item else None))
    h.update(prev)
    return h.hexdigest()


class Table:
    def __init__(self, endpoint):
        self.ep = endpoint

    def call(self, op, body):
        req = urllib.request.Request(self.ep, data=json.dumps(body).encode(), method="POST", headers={
            "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810." + op,
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/dynamodb/"
                             "aws4_request, SignedHeaders=host, Signature=00",
            "X-Amz-Date": "20260101T000000Z"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def items(self):
        out, start = [], None
        while True:
            body = {"TableName": TABLE}
            if start:
                body["ExclusiveStartKey"] = start
            r = self.call("Scan", body)
            out += r["Items"]
            start = r.get("LastEvaluatedKey")
            if not start:
                return out

    def put(self, item):
        self.call("PutItem", {"TableName": TABLE, "Item": item})

    def delete(self, item):
        self.call("DeleteItem", {"TableName": TABLE, "Key": {"pk": item["pk"], "sk": item["sk"]}})


def ttl_checks(tmp, env, run, table, where, broken, long_writer, long_recs):
    """DynamoDB's TTL deletes expired items on its own. A `serve` with 1-day
    retention writes 40 records through its 8 writer threads (each signs a
    checkpoint after its first record and at close, each signing its segment's
    earliest expiresAt); the verifier's clock is then moved 3 days on with
    faketime (Debian), so those segments may have lost items to TTL while the
    6-year records may not. dynalite has no TTL, so the deletions TTL would make
    are made here."""
    faketime = shutil.which("faketime")
    if not faketime:
        TALLY.skip("TTL deletions", "faketime (Debian) is missing: run make deps")
        return
    later = dict(env, FAKETIME_DONT_FAKE_MONOTONIC="1")
    # faketime preloads its library: an ASan build must accept not coming first.
    later["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                   "verify_asan_link_order=0"]))

    def verify_later():
        return subprocess.run([faketime, "-f", "+3d", BIN, "audit", "verify"], capture_output=True,
                              text=True, timeout=120, env=later, cwd=tmp)

    port = free_port()
    pr = subprocess.Popen([BIN, "serve", "--host", "127.0.0.1", "--port", str(port)],
                          env=dict(env, AUDIT_RETENTION_DAYS="1"), cwd=tmp,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        for i in range(40):
            urllib.request.urlopen("http://127.0.0.1:%d/price?id=PROD-102&userId=%s"
                                   % (port, uuid.uuid4()), timeout=10).read()
    finally:
        pr.terminate()
        pr.wait(30)
    recs = [i for i in table.items() if not i["pk"]["S"].startswith("CHECKPOINT#")]
    short = {}
    for i in recs:
        if int(i["expiresAt"]["N"]) < time.time() + 2 * 86400:
            short.setdefault(i["writer"]["S"], []).append(i)
    for v in short.values():
        v.sort(key=lambda i: int(i["wseq"]["N"]))
    ws = sorted(short, key=lambda k: -len(short[k]))
    check("1-day retention: 40 records by several writers, one with 4 or more",
          sum(len(v) for v in short.values()) == 40 and len(ws) >= 2 and len(short[ws[0]]) >= 4,
          {k: len(v) for k, v in short.items()})
    if len(ws) < 2 or len(short[ws[0]]) < 4:
        return
    a, b = short[ws[0]], short[ws[1]]
    r = verify_later()
    check("TTL: untouched, 3 days later: exit 0", r.returncode == 0, r.stdout + r.stderr)

    # Items TTL may have removed: the first segment whole, and the middle of the
    # second (its last record stays: the chain goes on from the checkpoint's head).
    gone = a[:1] + a[1:-1]
    for i in gone:
        table.delete(i)
    r = verify_later()
    check("TTL: expired items missing 3 days later: still exit 0", r.returncode == 0,
          r.stdout + r.stderr)
    broken("the same items missing today (not yet expired): exit 1 naming the next",
           where(a[-1]), "wseq 1..%d missing" % (len(a) - 1))

    # A record TTL could not have removed yet (6-year retention), at the same moment.
    table.delete(long_recs[1])
    r = verify_later()
    check("TTL: an unexpired record deleted: exit 1 even 3 days later",
          r.returncode == 1 and ("BROKEN at " + where(long_recs[2])) in r.stdout and
          "wseq 2..2 missing" in r.stdout, r.stdout + r.stderr)
    table.put(long_recs[1])

    # A whole writer gone (TTL removed all it wrote): fine later, not today.
    for i in gone:
        table.put(i)
    for i in b:
        table.delete(i)
    r = verify_later()
    check("TTL: a whole expired writer gone 3 days later: exit 0", r.returncode == 0,
          r.stdout + r.stderr)
    r = run(["audit", "verify"])
    check("the same today: exit 1 naming its checkpoint",
          r.returncode == 1 and ("checkpoint item pk CHECKPOINT#" + ws[1]) in r.stdout,
          r.stdout + r.stderr)
    for i in b:
        table.put(i)
    r = run(["audit", "verify"])
    check("TTL checks undone: exit 0", r.returncode == 0, r.stdout + r.stderr)


def idle_checks(tmp, env, run, table):
    """A writer with no traffic still checkpoints its chain head within the
    checkpoint interval (10 s): a `serve` answers 30 look-ups at once, stays
    idle 13 s, then is killed with SIGKILL (no closing checkpoint). Every one of
    its writers must have a signed checkpoint at its last record, so removing
    that record is reported as a removed tail."""
    before = {i["pk"]["S"] for i in table.items()}
    port = free_port()
    pr = subprocess.Popen([BIN, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                          cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        ths = [threading.Thread(target=lambda: [
            urllib.request.urlopen("http://127.0.0.1:%d/price?id=PROD-103&userId=%s"
                                   % (port, uuid.uuid4()), timeout=10).read() for _ in range(6)])
            for _ in range(5)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(60)
        time.sleep(13)
    finally:
        pr.kill()  # SIGKILL: no closing checkpoint
        pr.wait(30)
    items = table.items()
    recs = {}
    for i in items:
        if not i["pk"]["S"].startswith("CHECKPOINT#") and i["pk"]["S"] not in before:
            recs.setdefault(i["writer"]["S"], []).append(i)
    new = {}
    for i in items:
        if not i["pk"]["S"].startswith("CHECKPOINT#") or i["pk"]["S"][11:] not in recs:
            continue
        seq = int(i["sk"]["S"][4:])
        new[i["pk"]["S"][11:]] = max(new.get(i["pk"]["S"][11:], 0), seq)
    heads = {w: max(int(i["wseq"]["N"]) for i in v) for w, v in recs.items()}
    multi = [w for w in heads if heads[w] >= 2]
    check("idle: 30 records by writers of which some wrote 2 or more",
          sum(len(v) for v in recs.values()) >= 30 and multi, {w: heads[w] for w in heads})
    check("idle: every writer's last record is covered by a signed checkpoint after SIGKILL",
          all(new.get(w) == heads[w] for w in heads), (heads, new))
    r = run(["audit", "verify"])
    check("idle: verify passes", r.returncode == 0, r.stdout + r.stderr)
    if multi:
        w = multi[0]
        last = [i for i in recs[w] if int(i["wseq"]["N"]) == heads[w]][0]
        table.delete(last)
        r = run(["audit", "verify"])
        check("idle: its last record removed is reported as a removed tail",
              r.returncode == 1 and "tail removed" in r.stdout, r.stdout + r.stderr)
        table.put(last)


def tenant_checks(tmp, env, run, table):
    """TENANCY=on: two tenants with the same user and product ids on the trail.
    `audit verify --tenant` checks every item and counts the tenant's; an item of
    another tenant that does not verify is named by writer and wseq only."""
    for t in ("ta", "tb"):
        r = run(["db", "seed", "--tenant", t], timeout=300)
        check("tenancy: db seed --tenant %s" % t, r.returncode == 0, r.stderr)
    port = free_port()
    tenv = dict(env, TENANCY="on", AUTH_MODE="none")
    pr = subprocess.Popen([BIN, "serve", "--host", "127.0.0.1", "--port", str(port)], env=tenv,
                          cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    user = str(uuid.uuid4())
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        for t, n in (("ta", 3), ("tb", 2)):
            for _ in range(n):
                req = urllib.request.Request("http://127.0.0.1:%d/price?id=PROD-101&userId=%s"
                                             % (port, user), headers={"X-Tenant-ID": t})
                urllib.request.urlopen(req, timeout=10).read()
    finally:
        pr.terminate()
        pr.wait(30)
    r = run(["audit", "verify"])
    check("tenancy: verify passes", r.returncode == 0, r.stdout + r.stderr)
    total = int(r.stdout.split("OK: ")[1].split()[0]) if r.returncode == 0 else -1
    for t, n in (("ta", 3), ("tb", 2)):
        r = run(["audit", "verify", "--tenant", t])
        check("tenancy: verify --tenant %s counts its %d records of %d" % (t, n, total),
              r.returncode == 0 and "%d records checked" % total in r.stdout and
              "tenant %s: %d of these records are its own; the other %d belong to other tenants"
              % (t, n, total - n) in r.stdout, r.stdout + r.stderr)
    victim = [i for i in table.items() if i["pk"]["S"] == "T#tb#USER#" + user]
    check("tenancy: tenant tb's 2 items under T#tb#", len(victim) == 2, victim)
    if not victim:
        return
    v = victim[0]
    table.put(dict(v, status={"S": "ERROR"}))
    r = run(["audit", "verify", "--tenant", "ta"])
    check("tenancy: another tenant's changed item named by writer and wseq only",
          r.returncode == 1 and "BROKEN at a record of another tenant (writer %s wseq %s): changed"
          % (v["writer"]["S"], v["wseq"]["N"]) in r.stdout and user not in r.stdout and
          "T#tb" not in r.stdout, r.stdout + r.stderr)
    r = run(["audit", "verify", "--tenant", "tb"])
    check("tenancy: the tenant's own changed item named as the store names it",
          r.returncode == 1 and "BROKEN at item pk T#tb#USER#%s" % user in r.stdout,
          r.stdout + r.stderr)
    table.put(v)
    r = run(["audit", "verify", "--tenant", "ta"])
    check("tenancy: undone: exit 0", r.returncode == 0, r.stdout + r.stderr)


def main():
    tmp = tempfile.mkdtemp(prefix="px-ddb-integrity-")
    ddir = os.path.join(tmp, "dynalite")
    procs = []
    try:
        ep = subprocess.run([os.path.join(ROOT, "scripts", "dynalite.sh"), "start", ddir],
                            capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k not in ("AUDIT_STORE", "TABLE_AUDIT", "PRICE_DB",
                                                          "AUDIT_SIGNING_KEY_FILE")}
        env.update({
            "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_DYNAMODB": ep,
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "PRICE_DB": "sqlite:" + os.path.join(tmp, "prices.db"),
            "PRODUCT_STORE": "sqlite:" + os.path.join(tmp, "products.db"),
            "AUDIT_STORE": "dynamodb:" + TABLE,
            "AUDIT_SIGNING_KEY_FILE": os.path.join(tmp, "sign.key"),
        })

        def run(args, timeout=120, **extra):
            e = dict(env, **extra)
            return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout,
                                  env=e, cwd=tmp)

        for prefix in ("sign", "other"):
            r = run(["audit", "keygen", "--out", os.path.join(tmp, prefix)])
            assert r.returncode == 0, r.stderr
        r = run(["db", "seed"], timeout=300)
        assert r.returncode == 0, r.stderr

        # ---- traffic: two servers and one-shot invokes at once
        ports = [free_port(), free_port()]
        for p in ports:
            procs.append(subprocess.Popen([BIN, "serve", "--host", "127.0.0.1", "--port", str(p)],
                                          env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        for p in ports:
            for _ in range(100):
                try:
                    urllib.request.urlopen("http://127.0.0.1:%d/health" % p, timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
        errors = []

        def load(p):
            for i in range(25):
                u = str(uuid.uuid4())
                try:
                    urllib.request.urlopen("http://127.0.0.1:%d/price?id=PROD-10%d&userId=%s"
                                           % (p, 1 + i % 5, u), timeout=10)
                except Exception as e:  # noqa: BLE001 - counted below
                    errors.append(e)

        def invokes():
            for i in range(5):
                ev = json.dumps({"resource": "/price", "httpMethod": "GET", "path": "/price",
                                 "queryStringParameters": {"id": "PROD-101",
                                                           "userId": str(uuid.uuid4())},
                                 "requestContext": {"requestId": "ddb-" + str(uuid.uuid4())}})
                r = subprocess.run([BIN, "invoke", "price-fetcher", "--event", "-"], input=ev,
                                   capture_output=True, text=True, timeout=60, env=env, cwd=tmp)
                if r.returncode != 0:
                    errors.append(r.stderr)

        ths = [threading.Thread(target=load, args=(p,)) for p in ports]
        ths.append(threading.Thread(target=invokes))
        for t in ths:
            t.start()
        for t in ths:
            t.join(300)
        check("traffic: 55 look-ups answered", not errors, errors[:3])
        r = run(["audit", "verify"])
        check("verify while the servers run: exit 0", r.returncode == 0, r.stdout + r.stderr)
        for pr in procs:
            pr.terminate()
        for pr in procs:
            pr.wait(30)
        procs.clear()

        table = Table(ep)
        items = table.items()
        recs = [i for i in items if not i["pk"]["S"].startswith("CHECKPOINT#")]
        cps = [i for i in items if i["pk"]["S"].startswith("CHECKPOINT#")]
        check("55 record items, each chained", len(recs) == 55 and all("hash" in i for i in recs),
              len(recs))
        r = run(["audit", "verify"])
        check("untouched: exit 0 and a summary", r.returncode == 0 and
              "55 records checked (55 chained by " in r.stdout, r.stdout + r.stderr)
        r = run(["audit", "verify", "--public-key", os.path.join(tmp, "other.pub")])
        check("another key: exit 1", r.returncode == 1 and "not signed by the given key" in r.stdout,
              r.stdout)

        # The hash is what the design says, recomputed here.
        by = {}
        for i in recs:
            by.setdefault(i["writer"]["S"], []).append(i)
        for w in by:
            by[w].sort(key=lambda i: int(i["wseq"]["N"]))
        w = max(by, key=lambda k: len(by[k]))
        mine = by[w]
        prev, good = bytes(32), True
        for i in mine:
            good = good and i["prevHash"]["S"] == prev.hex() and \
                i["hash"]["S"] == record_hash(i, w, int(i["wseq"]["N"]), prev)
            prev = bytes.fromhex(i["hash"]["S"])
        check("hashes recomputed independently match", good)
        check("a writer with several records", len(mine) >= 3, len(mine))

        def where(i):
            return "item pk %s sk %s" % (i["pk"]["S"], i["sk"]["S"])

        def broken(name, want_where, want_what):
            r = run(["audit", "verify"])
            check(name, r.returncode == 1 and ("BROKEN at " + want_where) in r.stdout and
                  want_what in r.stdout, r.stdout + r.stderr)

        # changed attribute
        victim = mine[1]
        table.put(dict(victim, status={"S": "ERROR"}))
        broken("changed status -> exit 1 naming the item", where(victim), "changed")
        table.put(victim)
        # deleted item
        table.delete(victim)
        broken("deleted item -> the next of its writer named", where(mine[2]),
               "wseq 2..2 missing")
        table.put(victim)
        # forged item with a consistent chain of its own
        forged = dict(mine[0])
        rid = str(uuid.uuid4())
        forged["requestId"] = {"S": rid}
        forged["sk"] = forged["gsi1sk"] = {"S": "AUDIT#%s#%s" % (forged["ts"]["S"], rid)}
        fw = "w" + "cd" * 8
        forged.update(writer={"S": fw}, wseq={"N": "1"}, prevHash={"S": "00" * 32})
        forged["hash"] = {"S": record_hash(forged, fw, 1, bytes(32))}
        table.put(forged)
        broken("forged writer -> no signed checkpoint", where(forged), "no signed checkpoint")
        table.delete(forged)
        # an unchained item inserted, dated as the latest record (so after the
        # chain began, whichever writer's record was the first)
        plain = {k: v for k, v in forged.items() if k not in ("writer", "wseq", "prevHash", "hash")}
        plain["ts"] = {"S": max(i["ts"]["S"] for i in recs)}
        plain["sk"] = plain["gsi1sk"] = {"S": "AUDIT#%s#%s" % (plain["ts"]["S"], rid)}
        table.put(plain)
        broken("unchained item dated after the chain began", where(plain),
               "without chain attributes dated after the chain began")
        table.delete(plain)
        # the tail of a writer removed (its checkpoint at close covers it)
        table.delete(mine[-1])
        broken("removed tail -> the checkpoint named", "checkpoint item pk CHECKPOINT#" + w,
               "tail removed")
        table.put(mine[-1])
        # a checkpoint's text changed (its signature no longer holds)
        cp = [c for c in cps if c["pk"]["S"] == "CHECKPOINT#" + w][-1]
        note = cp["note"]["S"].split("\n")
        note[1] = str(int(note[1]) + 5)
        table.put(dict(cp, note={"S": "\n".join(note)}))
        broken("forged checkpoint -> exit 1 naming it", "checkpoint item pk CHECKPOINT#" + w,
               "not signed by the given key")
        table.put(cp)
        r = run(["audit", "verify"])
        check("every change undone: exit 0 again", r.returncode == 0, r.stdout + r.stderr)
        ttl_checks(tmp, env, run, table, where, broken, w, mine)
        idle_checks(tmp, env, run, table)
        tenant_checks(tmp, env, run, table)
    finally:
        for pr in procs:
            pr.kill()
            pr.wait()
        subprocess.run([os.path.join(ROOT, "scripts", "dynalite.sh"), "stop", ddir],
                       capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    print(TALLY.summary())
    return 1 if TALLY.failed else 0


if __name__ == "__main__":
    sys.exit(main())
