#!/usr/bin/python3
"""`pricing audit export --out s3://BUCKET/PREFIX` (CONTRACT §11,
docs/internals/audit-integrity.md) against s3rver (npm, pinned in
package.json) on loopback: two exports upload their files and signed digests
(the second chained to the first, read back from the bucket), the AWS CLI
downloads them, `pricing audit verify --export` passes on the copy; an object
changed, a digest removed or a file added in the bucket makes it fail, naming
the file. A third export after the tampering still chains to the bucket's last
digest. `--tenant` exports under a prefix of their own, refused under another
tenant's (or the whole trail's). s3rver is stopped by its PID.

Usage: test_s3_export.py [PATH/TO/pricing]   (default: build/pricing)
Prints one line per check and "N passed, N failed, N skipped"; exits non-zero on failure.
"""
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Tally, free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                      os.environ.get("PRICING_BIN", os.path.join(ROOT, "build", "pricing")))
S3RVER = os.path.join(ROOT, "node_modules", "s3rver", "bin", "s3rver.js")
BUCKET = "audit-archive"
PREFIX = "pricing/trail"
TALLY = Tally(2000)
check = TALLY.check


def main():
    aws = shutil.which("aws")
    if not os.path.exists(S3RVER) or not aws:
        TALLY.skip("s3 export", "s3rver (npm ci) or the AWS CLI is missing: run make deps")
        print(TALLY.summary())
        return 1
    tmp = tempfile.mkdtemp(prefix="px-s3-")
    s3proc = None
    try:
        port = free_port()
        ep = "http://127.0.0.1:%d" % port
        s3proc = subprocess.Popen(["node", S3RVER, "-d", os.path.join(tmp, "s3"), "-a", "127.0.0.1",
                                   "-p", str(port), "--silent", "--no-vhost-buckets"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                urllib.request.urlopen(ep + "/", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # it answers (403 without credentials)
            except OSError:
                time.sleep(0.1)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k not in ("AUDIT_STORE", "PRICE_DB",
                                                          "AUDIT_SIGNING_KEY_FILE")}
        env.update({
            "AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": ep,
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "PRICE_DB": "sqlite:" + os.path.join(tmp, "prices.db"),
            "PRODUCT_STORE": "sqlite:" + os.path.join(tmp, "products.db"),
            "CONFIG_STORE": "sqlite:" + os.path.join(tmp, "config.db"),
            "AUDIT_STORE": "sqlite:" + os.path.join(tmp, "audit.db"),
            "AUDIT_SIGNING_KEY_FILE": os.path.join(tmp, "sign.key"),
        })

        def run(args, timeout=120, **extra):
            return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout,
                                  env=dict(env, **extra), cwd=tmp)

        def awscli(*args):
            return subprocess.run([aws, "--endpoint-url", ep, "--region", "us-east-1"] + list(args),
                                  capture_output=True, text=True, timeout=120, env=env, cwd=tmp)

        def records(n):
            for _ in range(n):
                ev = json.dumps({"resource": "/price", "httpMethod": "GET", "path": "/price",
                                 "queryStringParameters": {"id": "PROD-101",
                                                           "userId": str(uuid.uuid4())},
                                 "requestContext": {"requestId": "s3-" + str(uuid.uuid4())}})
                r = subprocess.run([BIN, "invoke", "price-fetcher", "--event", "-"], input=ev,
                                   capture_output=True, text=True, timeout=60, env=env, cwd=tmp)
                assert r.returncode == 0, r.stderr

        for prefix in ("sign", "other"):
            r = run(["audit", "keygen", "--out", os.path.join(tmp, prefix)])
            assert r.returncode == 0, r.stderr
        r = run(["db", "seed"], timeout=300)
        assert r.returncode == 0, r.stderr
        r = awscli("s3api", "create-bucket", "--bucket", BUCKET)
        assert r.returncode == 0, r.stderr
        dest = "s3://%s/%s" % (BUCKET, PREFIX)

        def download(name):
            d = os.path.join(tmp, name)
            r = awscli("s3", "cp", "--recursive", dest + "/", d)
            assert r.returncode == 0, r.stderr
            return d

        def verify(d, pub="sign.pub"):
            return run(["audit", "verify", "--export", d, "--public-key", os.path.join(tmp, pub)])

        # ---- two exports, the second chained to the first through the bucket
        records(4)
        r1 = run(["audit", "export", "--out", dest])
        check("first export to s3:// succeeds", r1.returncode == 0, r1.stderr)
        check("it names the digest in the bucket",
              "digest s3://%s/%s/digest-000001.txt (export 1" % (BUCKET, PREFIX) in r1.stdout,
              r1.stdout)
        records(3)
        r2 = run(["audit", "export", "--out", dest + "/", "--from", "2000-01-01T00:00:00Z"])
        check("second export to s3:// succeeds", r2.returncode == 0, r2.stderr)
        check("second export is export 2 (previous digest read from the bucket)",
              "digest-000002.txt (export 2" in r2.stdout, r2.stdout)
        ls = awscli("s3", "ls", "--recursive", "s3://%s/" % BUCKET)
        keys = sorted(line.split()[-1] for line in ls.stdout.splitlines() if line.strip())
        check("bucket holds the data files and the digests under the prefix",
              keys == ["%s/%s" % (PREFIX, k) for k in
                       ("digest-000001.txt", "digest-000002.txt", "records-000001-0001.jsonl.gz",
                        "records-000002-0001.jsonl.gz")], keys)
        d = download("copy1")
        v = verify(d)
        check("verify --export passes on the objects read back with the AWS CLI",
              v.returncode == 0 and "2 digest(s) chained, 2 file(s)" in v.stdout, v.stdout + v.stderr)
        with gzip.open(os.path.join(d, "records-000001-0001.jsonl.gz"), "rt") as f:
            lines = [json.loads(line) for line in f]
        check("the uploaded records are JSON lines with the §5 fields",
              len(lines) >= 4 and {"pk", "sk", "action", "userId", "ts", "expiresAt"} <= set(lines[0]),
              lines[:1])
        v = verify(d, "other.pub")
        check("another public key fails", v.returncode == 1 and "not signed by the given key" in v.stdout,
              v.stdout)

        # ---- an object changed in the bucket
        p = os.path.join(tmp, "changed.jsonl.gz")
        with gzip.open(os.path.join(d, "records-000002-0001.jsonl.gz"), "rt") as f:
            text = f.read()
        with gzip.open(p, "wt") as f:
            f.write(text.replace('"SUCCESS"', '"ERROR"', 1))
        r = awscli("s3", "cp", p, dest + "/records-000002-0001.jsonl.gz")
        assert r.returncode == 0, r.stderr
        d2 = download("copy2")
        v = verify(d2)
        check("an object changed in the bucket fails verify, naming it",
              v.returncode == 1 and "records-000002-0001.jsonl.gz: changed" in v.stdout, v.stdout)
        r = awscli("s3", "cp", os.path.join(d, "records-000002-0001.jsonl.gz"),
                   dest + "/records-000002-0001.jsonl.gz")
        assert r.returncode == 0, r.stderr

        # ---- a digest removed from the bucket
        r = awscli("s3", "rm", dest + "/digest-000001.txt")
        assert r.returncode == 0, r.stderr
        d3 = download("copy3")
        v = verify(d3)
        check("a digest removed from the bucket fails verify",
              v.returncode == 1 and "digest-000001.txt: missing" in v.stdout, v.stdout)
        r = awscli("s3", "cp", os.path.join(d, "digest-000001.txt"), dest + "/digest-000001.txt")
        assert r.returncode == 0, r.stderr

        # ---- a data file added to the bucket
        r = awscli("s3", "cp", os.path.join(d, "records-000001-0001.jsonl.gz"),
                   dest + "/records-000007-0001.jsonl.gz")
        assert r.returncode == 0, r.stderr
        v = verify(download("copy4"))
        check("a file added to the bucket fails verify",
              v.returncode == 1 and "records-000007-0001.jsonl.gz: not listed by any digest"
              in v.stdout, v.stdout)
        r = awscli("s3", "rm", dest + "/records-000007-0001.jsonl.gz")
        assert r.returncode == 0, r.stderr

        # ---- a third export chains to digest 2 as it is in the bucket
        records(2)
        r3 = run(["audit", "export", "--out", dest, "--from", "2000-01-01T00:00:00Z"])
        check("third export is export 3", r3.returncode == 0 and "(export 3" in r3.stdout,
              r3.stdout + r3.stderr)
        v = verify(download("copy5"))
        check("three chained exports verify", v.returncode == 0 and "3 digest(s) chained" in v.stdout,
              v.stdout)

        # ---- one tenant's exports under a prefix of their own (TENANCY=on)
        r = run(["db", "seed", "--tenant", "ta"], timeout=300)
        assert r.returncode == 0, r.stderr
        user = str(uuid.uuid4())
        for tenant in ("ta", "ta", "default"):
            ev = json.dumps({"resource": "/price", "httpMethod": "GET", "path": "/price",
                             "headers": {"X-Tenant-ID": tenant},
                             "queryStringParameters": {"id": "PROD-101", "userId": user},
                             "requestContext": {"requestId": "s3t-" + str(uuid.uuid4())}})
            r = subprocess.run([BIN, "invoke", "price-fetcher", "--event", "-"], input=ev,
                               capture_output=True, text=True, timeout=60, cwd=tmp,
                               env=dict(env, TENANCY="on", AUTH_MODE="none"))
            assert r.returncode == 0, r.stderr
        tdest = "s3://%s/tenants/ta" % BUCKET
        for n in (1, 2):
            r = run(["audit", "export", "--out", tdest, "--tenant", "ta"])
            check("tenant export %d to s3://" % n, r.returncode == 0 and
                  "2 records of tenant ta" in r.stdout and "(export %d" % n in r.stdout,
                  r.stdout + r.stderr)
        r = run(["audit", "export", "--out", tdest])
        check("a whole-trail export under the tenant's prefix is refused", r.returncode == 2 and
              "one digest chain holds one tenant" in r.stderr, (r.returncode, r.stderr))
        r = run(["audit", "export", "--out", dest, "--tenant", "ta"])
        check("a tenant export under the whole trail's prefix is refused", r.returncode == 2 and
              "one digest chain holds one tenant" in r.stderr, (r.returncode, r.stderr))
        d = os.path.join(tmp, "copy-ta")
        r = awscli("s3", "cp", "--recursive", tdest + "/", d)
        assert r.returncode == 0, r.stderr
        v = verify(d)
        check("the tenant's exports verify, of that tenant only",
              v.returncode == 0 and "2 digest(s) chained, 2 file(s), 4 records of tenant ta"
              in v.stdout, v.stdout + v.stderr)
        with gzip.open(os.path.join(d, "records-000001-0001.jsonl.gz"), "rt") as f:
            lines = [json.loads(line) for line in f]
        check("its records are the tenant's", [x.get("tenantId") for x in lines] == ["ta", "ta"],
              lines)

        # ---- usage
        r = run(["audit", "export", "--out", "s3://Bad_Bucket/x"])
        check("a bad bucket name is a usage error", r.returncode == 2 and "s3://" in r.stderr,
              (r.returncode, r.stderr))
        r = run(["audit", "export", "--out", "s3://%s/a//b" % BUCKET])
        check("an empty prefix segment is a usage error", r.returncode == 2, (r.returncode, r.stderr))
        r = run(["audit", "export", "--out", "s3://no-such-bucket/x"])
        check("a missing bucket fails and says so",
              r.returncode == 1 and "NoSuchBucket" in r.stderr, (r.returncode, r.stderr))
    finally:
        if s3proc:
            s3proc.terminate()
            try:
                s3proc.wait(10)
            except subprocess.TimeoutExpired:
                s3proc.kill()
                s3proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(TALLY.summary())
    return 0 if TALLY.failed == 0 and TALLY.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
