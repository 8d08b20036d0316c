#!/usr/bin/python3
"""config-service on DynamoDB: the end-to-end config suite against dynalite.

Starts dynalite (scripts/dynalite.sh) on a free loopback port and runs
tests/e2e/test_config.py with CONFIG_STORE=dynamodb:<table> and
AUDIT_STORE=dynamodb:<table>: the same routes, conditional writes (50
writers, one wins: the store's put conditional on the version read), audit
records (queried by key on GSI gsi1), OFREP, maintenance and the cache. The
outage test moves a SQLite file and is skipped here. Then the table's layout
is read back with the AWS CLI.

Usage: test_config_dynamodb.py [PATH/TO/pricing]   (default: build/pricing)
Exits non-zero on failure.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                      os.environ.get("PRICING_BIN", os.path.join(ROOT, "build", "pricing")))
AWS = os.environ.get("PX_AWS_CLI", "/usr/bin/aws")
CONFIG_TABLE, AUDIT_TABLE = "config_e2e", "audit_config_e2e"


def dynalite(cmd, d):
    r = subprocess.run([os.path.join(ROOT, "scripts", "dynalite.sh"), cmd, d],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("dynalite.sh %s: %s" % (cmd, r.stderr))
    return r.stdout.strip()


def main():
    if not os.access(BIN, os.X_OK):
        print("test_config_dynamodb: %s is not an executable (build first)" % BIN, file=sys.stderr)
        return 2
    if not os.path.exists(os.path.join(ROOT, "node_modules", "dynalite", "cli.js")):
        print("test_config_dynamodb: dynalite missing: run 'npm ci'", file=sys.stderr)
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
    finally:
        try:
            dynalite("stop", ddir)
        except RuntimeError as e:
            print(e, file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    print("test_config_dynamodb: %s" % ("passed" if rc == 0 else "FAILED"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
