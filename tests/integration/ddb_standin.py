#!/usr/bin/python3
"""A stand-in DynamoDB endpoint for the operations dynalite lacks.

Answers DescribeTable (an ACTIVE table with the audit layout),
DescribeTimeToLive and UpdateTimeToLive as the DynamoDB API Reference
documents them, and checks every request on the way in: POST /, the
awsJson1_0 headers, a SigV4 signature recomputed here independently of the
service's C signer (with the secret given on the command line), X-Amz-Date
near now, the session token signed when one is sent. Each request is appended
to the log file as one JSON line {op, ok, why, body, token}.

Usage: ddb_standin.py PORTFILE LOGFILE SECRET [CERTFILE KEYFILE]
Writes the port it listens on (127.0.0.1, free port) into PORTFILE. With
CERTFILE and KEYFILE (PEM) it speaks HTTPS only, as DynamoDB does.
"""
import datetime
import hashlib
import hmac
import json
import re
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTFILE, LOGFILE, SECRET = sys.argv[1], sys.argv[2], sys.argv[3]
CERTFILE, KEYFILE = (sys.argv[4], sys.argv[5]) if len(sys.argv) >= 6 else (None, None)
lock = threading.Lock()
ttl = {}  # table -> attribute name once enabled


def sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def check_signature(handler, body):
    auth = handler.headers.get("Authorization", "")
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", auth)
    if not m:
        return "Authorization header malformed: %r" % auth
    _akid, date, region, service, signed, signature = m.groups()
    if service != "dynamodb":
        return "service in scope is %s" % service
    amz_date = handler.headers.get("X-Amz-Date", "")
    try:
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "X-Amz-Date malformed: %r" % amz_date
    if abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) > 300:
        return "X-Amz-Date too far from now"
    if amz_date[:8] != date:
        return "scope date differs from X-Amz-Date"
    names = signed.split(";")
    if names != sorted(names):
        return "SignedHeaders not sorted"
    need = {"host", "x-amz-date", "x-amz-target", "content-type"}
    if handler.headers.get("X-Amz-Security-Token") is not None:
        need.add("x-amz-security-token")
    if not need.issubset(names):
        return "SignedHeaders %s lacks %s" % (signed, sorted(need - set(names)))
    lines = []
    for n in names:
        vals = handler.headers.get_all(n)
        if not vals:
            return "signed header %s not sent" % n
        lines.append("%s:%s\n" % (n, ",".join(" ".join(v.split()) for v in vals)))
    creq = "\n".join([handler.command, "/", "", "".join(lines), signed,
                      hashlib.sha256(body).hexdigest()])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, "%s/%s/%s/aws4_request" % (date, region, service),
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = sign(("AWS4" + SECRET).encode(), date)
    k = hmac.new(k, region.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    k = hmac.new(k, b"aws4_request", hashlib.sha256).digest()
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, signature):
        return "signature mismatch"
    return None


def table_description(name):
    key = lambda h, r: [{"AttributeName": h, "KeyType": "HASH"}, {"AttributeName": r, "KeyType": "RANGE"}]
    return {"Table": {
        "TableName": name, "TableStatus": "ACTIVE", "ItemCount": 0,
        "KeySchema": key("pk", "sk"),
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"}
                                 for a in ("pk", "sk", "gsi1pk", "gsi1sk")],
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "GlobalSecondaryIndexes": [{"IndexName": "gsi1", "IndexStatus": "ACTIVE",
                                    "KeySchema": key("gsi1pk", "gsi1sk"),
                                    "Projection": {"ProjectionType": "ALL"}}]}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, doc, errtype=None):
        raw = json.dumps(doc, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("x-amz-crc32", str(zlib.crc32(raw) & 0xFFFFFFFF))
        if errtype:
            self.send_header("X-Amzn-Errortype", errtype)
        self.end_headers()
        self.wfile.write(raw)

    def error(self, status, name, message):
        ns = "com.amazon.coral.service#" if name.endswith("SignatureException") else \
             "com.amazon.coral.validate#" if name == "ValidationException" else \
             "com.amazonaws.dynamodb.v20120810#"
        self.answer(status, {"__type": ns + name, "message": message})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n) if 0 < n <= 1 << 20 else b""
        target = self.headers.get("X-Amz-Target", "")
        op = target[len("DynamoDB_20120810."):] if target.startswith("DynamoDB_20120810.") else ""
        why = None
        if self.path != "/":
            why = "path is %s" % self.path
        elif self.headers.get("Content-Type") != "application/x-amz-json-1.0":
            why = "Content-Type is %r" % self.headers.get("Content-Type")
        else:
            why = check_signature(self, body)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if why is None and not isinstance(doc, dict):
            why = "body is not a JSON object"
        with lock:
            with open(LOGFILE, "a") as f:
                f.write(json.dumps({"op": op, "ok": why is None, "why": why, "body": doc,
                                    "token": self.headers.get("X-Amz-Security-Token")}) + "\n")
        if why is not None:
            return self.error(400, "InvalidSignatureException", why)
        table = doc.get("TableName")
        if op == "DescribeTable":
            return self.answer(200, table_description(table))
        if op == "DescribeTimeToLive":
            with lock:
                attr = ttl.get(table)
            if attr:
                return self.answer(200, {"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED",
                                                                   "AttributeName": attr}})
            return self.answer(200, {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}})
        if op == "UpdateTimeToLive":
            spec = doc.get("TimeToLiveSpecification")
            if set(doc) != {"TableName", "TimeToLiveSpecification"} or not isinstance(spec, dict) \
                    or set(spec) != {"AttributeName", "Enabled"} or spec["Enabled"] is not True \
                    or not isinstance(spec["AttributeName"], str):
                return self.error(400, "ValidationException", "bad UpdateTimeToLive request")
            with lock:
                if table in ttl:
                    return self.error(400, "ValidationException", "TimeToLive is already enabled")
                ttl[table] = spec["AttributeName"]
            return self.answer(200, {"TimeToLiveSpecification": spec})
        self.answer(400, {"__type": "com.amazon.coral.service#UnknownOperationException"})


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    if CERTFILE:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(CERTFILE, KEYFILE)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(PORTFILE + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(PORTFILE + ".tmp", PORTFILE)
    srv.serve_forever()


if __name__ == "__main__":
    main()
