#!/usr/bin/python3
"""config-service on DynamoDB: the end-to-end config suite against DynamoDB Local.

Starts AWS's DynamoDB Local 1.25 (scripts/ddblocal.sh: a config change is one
TransactWriteItems with its event's outbox item, which dynalite does not implement)
on a free port and runs
tests/e2e/test_config.py with CONFIG_STORE=dynamodb:<table> and
AUDIT_STORE=dynamodb:<table>: the same routes, conditional writes (50
writers, one wins: the store's put conditional on the version read), audit
records (queried by key on GSI gsi1), OFREP, maintenance and the cache. The
suite's outage test moves a SQLite file and is skipped there; here DynamoDB Local is
stopped under a running server instead: the last known flags (maintenance on)
until CONFIG_STALE_MAX_S, then the defaults, each answer bounded in time. Then
the table's layout is read back with the AWS CLI.

Usage: test_config_dynamodb.py [PATH/TO/pricing]   (default: build/pricing)
Exits non-zero on failure.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                      os.environ.get("PRICING_BIN", os.path.join(ROOT, "build", "pricing")))
AWS = os.environ.get("PX_AWS_CLI", "/usr/bin/aws")
CONFIG_TABLE, AUDIT_TABLE = "config_e2e", "audit_config_e2e"


def dynalite(cmd, d):
    """scripts/ddblocal.sh CMD D (the name is kept from when this was dynalite)."""
    r = subprocess.run([os.path.join(ROOT, "scripts", "ddblocal.sh"), cmd, d],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("ddblocal.sh %s: %s" % (cmd, r.stderr))
    return r.stdout.strip()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(port, method, path, body=None, headers=None, timeout=10):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def outage(env, tmp, ddir):
    """DynamoDB Local stopped under a running server: last known values, then defaults."""
    stale_max = 8
    flags = ["--price-db", "sqlite:%s/p.db" % tmp, "--audit-store", "sqlite:%s/a.db" % tmp,
             "--product-store", "sqlite:%s/pr.db" % tmp, "--config-store", "dynamodb:cfg_outage"]
    r = subprocess.run([BIN, "db", "seed"] + flags, env=env, capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        print("FAIL db seed: %s" % r.stderr)
        return 1
    port = free_port()
    log = open(os.path.join(tmp, "serve.log"), "w")
    p = subprocess.Popen([BIN, "serve", "--port", str(port), "--config-cache-ttl", "1",
                          "--config-stale-max", str(stale_max), "--audit-timeout-ms", "500"]
                         + flags, env=env, stdout=log, stderr=subprocess.STDOUT)
    fails = 0
    try:
        for _ in range(100):
            try:
                if http(port, "GET", "/health", timeout=1)[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        st, _ = http(port, "PUT", "/config/flags.maintenance", b'{"default":true}',
                     {"Content-Type": "application/json", "If-None-Match": "*"})
        price = "/price?id=PROD-101&userId=3f9c2a4e-1111-4222-8333-944455556666"
        st1, body = http(port, "GET", price)
        ok = st == 201 and st1 == 503 and b"MAINTENANCE" in body
        print("%s maintenance on through the DynamoDB config store" % ("ok  " if ok else "FAIL"))
        fails += not ok
        # The bound runs from the last good read, just before the stop (which
        # itself takes a moment): times are measured from here.
        t_stop = time.monotonic()
        dynalite("stop", ddir)
        seen, slowest = [], 0.0
        while time.monotonic() - t_stop < stale_max + 8:
            t0 = time.monotonic()
            st, _ = http(port, "GET", price)
            slowest = max(slowest, time.monotonic() - t0)
            seen.append((round(time.monotonic() - t_stop, 1), st))
            time.sleep(0.2)
        early = [s for t, s in seen if t < stale_max - 1.2]
        late = [s for t, s in seen if t > stale_max + 2]
        ok = early and all(s == 503 for s in early) and late and all(s == 200 for s in late)
        print("%s outage: last known values (503 MAINTENANCE) then the defaults (200): %s"
              % ("ok  " if ok else "FAIL", seen))
        fails += not ok
        ok = slowest < 3.0
        print("%s outage: slowest answer %.2f s (a refresh is bounded by AUDIT_TIMEOUT_MS)"
              % ("ok  " if ok else "FAIL", slowest))
        fails += not ok
        with open(os.path.join(tmp, "serve.log")) as f:
            text = f.read()
        ok = "serving the last known values" in text and "serving the defaults" in text
        print("%s outage: WARN lines for stale and defaults" % ("ok  " if ok else "FAIL"))
        fails += not ok
    finally:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()
    return fails


def main():
    if not os.access(BIN, os.X_OK):
        print("test_config_dynamodb: %s is not an executable (build first)" % BIN, file=sys.stderr)
        return 2
    if not os.path.exists(os.path.join(ROOT, "node_modules", "amplify-dynamodb-simulator",
                                       "emulator", "DynamoDBLocal.jar")):
        print("test_config_dynamodb: DynamoDB Local missing: run 'npm ci'", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="px-cfg-ddb-")
    ddir = os.path.join(tmp, "dynalite")
    rc = 1
    try:
        endpoint = dynalite("start", ddir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "AWS_ACCESS_KEY_ID": "AKIDCONFIGLOCAL", "AWS_SECRET_ACCESS_KEY": "config/local+secret",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_PAGER": "",
            "AWS_EC2_METADATA_DISABLED": "true",
            "PX_E2E_CONFIG_STORE": "dynamodb:" + CONFIG_TABLE,
            "PX_E2E_AUDIT_STORE": "dynamodb:" + AUDIT_TABLE,
        })
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "e2e", "run.py"),
                            "--binary", BIN, "-k", "test_config"], env=env, timeout=1800)
        rc = r.returncode
        if shutil.which(AWS):
            d = subprocess.run([AWS, "dynamodb", "describe-table", "--table-name", CONFIG_TABLE,
                                "--endpoint-url", endpoint, "--region", "us-east-1", "--output",
                                "json"], capture_output=True, text=True, env=env, timeout=60)
            keys = sorted((k["AttributeName"], k["KeyType"])
                          for k in json.loads(d.stdout or "{}").get("Table", {}).get("KeySchema", []))
            ok = keys == [("pk", "HASH"), ("sk", "RANGE")]
            print("%s config table key pk/sk: %s" % ("ok  " if ok else "FAIL", keys))
            rc = rc or (0 if ok else 1)
            # the outbox's sent events carry expiresAt: the table must expire them
            t = subprocess.run([AWS, "dynamodb", "describe-time-to-live", "--table-name",
                                CONFIG_TABLE, "--endpoint-url", endpoint, "--region", "us-east-1",
                                "--output", "json"], capture_output=True, text=True, env=env,
                               timeout=60)
            ttl = json.loads(t.stdout or "{}").get("TimeToLiveDescription", {})
            ok = (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")) == ("ENABLED", "expiresAt")
            print("%s config table TTL on expiresAt (sent events expire): %s" %
                  ("ok  " if ok else "FAIL", ttl or t.stderr.strip()))
            rc = rc or (0 if ok else 1)
        rc = rc or (1 if outage(env, tmp, ddir) else 0)
    finally:
        try:
            if os.path.exists(os.path.join(ddir, "ddblocal.pid")):
                dynalite("stop", ddir)
        except RuntimeError as e:
            print(e, file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    print("test_config_dynamodb: %s" % ("passed" if rc == 0 else "FAILED"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
