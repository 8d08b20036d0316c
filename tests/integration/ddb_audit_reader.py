#!/usr/bin/python3
"""Reads audit records from a DynamoDB table with the AWS CLI, not with `pricing`.

An independent reader for the end-to-end suite (PX_E2E_AUDIT_READER): the same
arguments and output as `pricing audit query` (JSON lines, oldest first), but
the records come straight from the table or GSI gsi1 through `aws dynamodb
query`, so a fault in the service's own query path cannot hide one in its
write path.

Usage: ddb_audit_reader.py --user UUID | --product ID [--from TS] [--to TS] [--limit N]
Environment: AUDIT_STORE=dynamodb:TABLE (or TABLE_AUDIT), AWS_REGION,
AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL, AWS credentials.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

# The AWS CLI from Debian (v2), not whatever else is first on PATH.
AWS = os.environ.get("PX_AWS_CLI", "/usr/bin/aws")

FIELDS = ["pk", "sk", "gsi1pk", "gsi1sk", "action", "status", "userId", "productId",
          "requestId", "correlationId", "ts", "principal", "apiRequestId", "before", "after",
          "expiresAt"]


def ms(ts):
    """RFC 3339 -> epoch milliseconds, fraction truncated to milliseconds."""
    t = ts.replace("z", "Z").replace("t", "T")
    frac = 0
    if "." in t:
        head, rest = t.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac = int((digits + "000")[:3])
        t = head + rest
    d = datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
    return int(d.timestamp()) * 1000 + frac


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--user")
    ap.add_argument("--product")
    ap.add_argument("--from", dest="from_")
    ap.add_argument("--to")
    ap.add_argument("--limit", type=int, default=100)
    a = ap.parse_args()
    if (a.user is None) == (a.product is None):
        ap.error("exactly one of --user or --product")
    spec = os.environ.get("AUDIT_STORE", "")
    table = spec[len("dynamodb:"):] if spec.startswith("dynamodb:") else os.environ.get("TABLE_AUDIT")
    if not table:
        ap.error("AUDIT_STORE must be dynamodb:TABLE")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")
    cmd = [AWS, "dynamodb", "query", "--table-name", table, "--output", "json",
           "--region", os.environ.get("AWS_REGION", "us-east-1")]
    if endpoint:
        cmd += ["--endpoint-url", endpoint]
    if a.user:
        cmd += ["--consistent-read", "--key-condition-expression", "pk = :k",
                "--expression-attribute-values",
                json.dumps({":k": {"S": "USER#" + a.user.lower()}})]
    else:
        cmd += ["--index-name", "gsi1", "--key-condition-expression", "gsi1pk = :k",
                "--expression-attribute-values", json.dumps({":k": {"S": "PRODUCT#" + a.product}})]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        print(p.stderr.strip(), file=sys.stderr)
        return 1
    now = int(time.time())
    lo = ms(a.from_) if a.from_ else None
    hi = ms(a.to) if a.to else None
    out = []
    for item in json.loads(p.stdout)["Items"]:
        rec = {}
        for k, v in item.items():
            rec[k] = int(v["N"]) if "N" in v else v["S"]
        if rec["expiresAt"] <= now:
            continue
        t = ms(rec["ts"])
        if (lo is not None and t < lo) or (hi is not None and t > hi):
            continue
        rec.setdefault("correlationId", "")
        # A write's changed fields are stored as JSON text: the record carries them as objects.
        for k in ("before", "after"):
            if k in rec:
                rec[k] = json.loads(rec[k])
        out.append(rec)
    out.sort(key=lambda r: r["sk"])
    for rec in out[:a.limit]:
        print(json.dumps({k: rec[k] for k in FIELDS if k in rec}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
