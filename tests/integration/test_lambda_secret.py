#!/usr/bin/python3
"""The Lambda runtime's audit signing key from AWS Secrets Manager
(AUDIT_SIGNING_KEY_SECRET_ARN, docs/internals/audit-integrity.md), against
moto's server (moto_server, the Python moto package of the machine image; it
implements Secrets Manager's JSON protocol). The secret is created with the AWS
CLI; `pricing emulate` runs the real runtime loop with the bootstrap; the
record the invocation wrote is covered by checkpoints that verify with the
key's public half; the PEM never appears in the output. moto checks the
requests' SigV4 signatures (its IAM enforcement), so a wrong secret access key
is refused. A missing secret, a secret that is no key and both settings at
once are init errors.

Usage: test_lambda_secret.py [PATH/TO/pricing]   (default: build/pricing)
Prints one line per check and "N passed, N failed, N skipped"; exits non-zero on failure.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Tally, free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                      os.environ.get("PRICING_BIN", os.path.join(ROOT, "build", "pricing")))
TALLY = Tally(3000)
check = TALLY.check


def event(user):
    return json.dumps({
        "version": "2.0", "routeKey": "$default", "rawPath": "/price",
        "rawQueryString": "id=PROD-101&userId=" + user, "headers": {"host": "localhost"},
        "requestContext": {"requestId": "sm-" + user[:8],
                           "http": {"method": "GET", "path": "/price", "sourceIp": "127.0.0.1"},
                           "authorizer": {"jwt": {"claims": {"sub": "client-1",
                                                             "scope": "price:read"}}}},
        "isBase64Encoded": False})


def main():
    moto = shutil.which("moto_server")
    aws = shutil.which("aws")
    if not moto or not aws:
        TALLY.skip("Secrets Manager key", "moto_server or the AWS CLI is not on this machine")
        print(TALLY.summary())
        return 0
    tmp = tempfile.mkdtemp(prefix="px-sm-")
    proc = None
    try:
        port = free_port()
        ep = "http://127.0.0.1:%d" % port
        # moto checks each request's access key and SigV4 signature against its
        # IAM once the first 3 actions (the user, its key, its policy) are done.
        proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3"))
        for _ in range(300):
            try:
                urllib.request.urlopen(ep + "/moto-api/", timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k not in ("AUDIT_STORE", "PRICE_DB", "PRODUCT_STORE",
                                                          "AUDIT_SIGNING_KEY_FILE")}
        env.update({
            "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": ep,
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "PRICE_DB": "sqlite:" + os.path.join(tmp, "prices.db"),
            "PRODUCT_STORE": "sqlite:" + os.path.join(tmp, "products.db"),
            "CONFIG_STORE": "sqlite:" + os.path.join(tmp, "config.db"),
            "AUDIT_STORE": "sqlite:" + os.path.join(tmp, "audit.db"),
        })

        def run(args, **extra):
            return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=120,
                                  env=dict(env, **extra), cwd=tmp)

        def awscli(*args):
            return subprocess.run([aws, "--endpoint-url", ep, "--region", "eu-west-1"] + list(args),
                                  capture_output=True, text=True, timeout=120, env=env, cwd=tmp)

        r = awscli("iam", "create-user", "--user-name", "fn")
        assert r.returncode == 0, r.stderr
        r = awscli("iam", "create-access-key", "--user-name", "fn")
        assert r.returncode == 0, r.stderr
        ak = json.loads(r.stdout)["AccessKey"]
        r = awscli("iam", "put-user-policy", "--user-name", "fn", "--policy-name", "sm",
                   "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
                       {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}]}))
        assert r.returncode == 0, r.stderr
        env.update(AWS_ACCESS_KEY_ID=ak["AccessKeyId"], AWS_SECRET_ACCESS_KEY=ak["SecretAccessKey"])

        for prefix in ("sign", "other"):
            r = run(["audit", "keygen", "--out", os.path.join(tmp, prefix)])
            assert r.returncode == 0, r.stderr
        r = run(["db", "seed"])
        assert r.returncode == 0, r.stderr
        pem = open(os.path.join(tmp, "sign.key")).read()
        r = awscli("secretsmanager", "create-secret", "--name", "pricing/audit-signing-key",
                   "--secret-string", pem)
        check("secret created in moto with the AWS CLI", r.returncode == 0, r.stderr)
        arn = json.loads(r.stdout)["ARN"] if r.returncode == 0 else ""
        r = awscli("secretsmanager", "create-secret", "--name", "not-a-key",
                   "--secret-string", "hello")
        bad_arn = json.loads(r.stdout)["ARN"] if r.returncode == 0 else ""
        bootstrap = os.path.join(tmp, "bootstrap")
        os.symlink(BIN, bootstrap)
        evp = os.path.join(tmp, "ev.json")

        def emulate(user, **extra):
            with open(evp, "w") as f:
                f.write(event(user))
            return run(["emulate", "--bootstrap", bootstrap, "--event", evp], **extra)

        user = str(uuid.uuid4())
        r = emulate(user, AUDIT_SIGNING_KEY_SECRET_ARN=arn)
        ok = r.returncode == 0 and json.loads(r.stdout or "{}").get("statusCode") == 200
        check("invocation with the key from Secrets Manager: 200", ok, r.stdout + r.stderr[-2000:])
        check("init says where the key came from", "audit signing key read from Secrets Manager"
              in r.stderr, r.stderr[-2000:])
        body = pem.split("-----")[2].strip()
        check("the PEM never appears in the output", body[:20] not in r.stdout + r.stderr)
        v = run(["audit", "verify", "--public-key", os.path.join(tmp, "sign.pub")])
        check("its records verify with the secret key's public half, checkpoints signed",
              v.returncode == 0 and "1 records checked" in v.stdout and
              " 0 signed checkpoints" not in v.stdout, v.stdout + v.stderr)
        v = run(["audit", "verify", "--public-key", os.path.join(tmp, "other.pub")])
        check("and not with another key", v.returncode == 1 and "not signed by the given key"
              in v.stdout, v.stdout)

        r = emulate(str(uuid.uuid4()),
                    AUDIT_SIGNING_KEY_SECRET_ARN=arn.replace("audit-signing-key", "missing-key"))
        check("a missing secret: init error naming ResourceNotFoundException",
              r.returncode != 0 and "ResourceNotFoundException" in r.stdout + r.stderr,
              (r.returncode, r.stdout[-1500:], r.stderr[-1500:]))
        r = emulate(str(uuid.uuid4()), AUDIT_SIGNING_KEY_SECRET_ARN=bad_arn)
        check("a secret that is no key: init error, its value not shown",
              r.returncode != 0 and "not an Ed25519 private key" in r.stdout + r.stderr and
              "hello" not in r.stdout + r.stderr, (r.returncode, r.stdout[-1500:], r.stderr[-1500:]))
        r = emulate(str(uuid.uuid4()), AUDIT_SIGNING_KEY_SECRET_ARN=arn,
                    AWS_SECRET_ACCESS_KEY=ak["SecretAccessKey"][:-2] + "xx")
        check("a request signed with the wrong secret key is refused by moto: init error",
              r.returncode != 0 and "Secrets Manager answered HTTP 403" in r.stdout + r.stderr,
              (r.returncode, r.stdout[-1500:], r.stderr[-1500:]))
        r = emulate(str(uuid.uuid4()), AUDIT_SIGNING_KEY_SECRET_ARN=arn,
                    AUDIT_SIGNING_KEY_FILE=os.path.join(tmp, "sign.key"))
        check("both settings: init error", r.returncode != 0 and "both set" in r.stdout + r.stderr,
              (r.returncode, r.stdout[-1500:], r.stderr[-1500:]))
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(TALLY.summary())
    return 0 if TALLY.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
