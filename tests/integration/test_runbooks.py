#!/usr/bin/python3
"""Runs the commands of docs/runbooks/*.md that need no AWS account.

Every fenced block whose info string is `sh local` (or `sh local dynamodb`) is
run: the blocks of one runbook concatenated in order, in one `bash -euo
pipefail`, in an empty directory, with the binary on PATH as `pricing` and no
store variables set (the defaults, ./var/*). When a runbook has a `dynamodb`
block, dynalite is started for it (scripts/dynalite.sh), AWS settings point
`pricing` at it, and `aws` on PATH is the Debian AWS CLI with `--endpoint-url`
of that dynalite (AWS CLI 2.9 ignores AWS_ENDPOINT_URL_DYNAMODB). Also checks
that each runbook has the sections the runbooks promise, and that the runner
fails on a broken command (a planted one).

Usage: test_runbooks.py --binary build/pricing
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Tally  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs" / "runbooks"
AWS = os.environ.get("PX_AWS_CLI", "/usr/bin/aws")
SECTIONS = ("## Purpose", "## Prerequisites", "## Steps", "## Verification", "## Troubleshooting",
            "## Escalation")
FENCE = re.compile(r"^( *)```([^\n`]*)\n(.*?)^\1```", re.M | re.S)

T = Tally()


def blocks(text):
    """(tags, code) of every fenced block, in order; tags are the info string's words."""
    out = []
    for m in FENCE.finditer(text):
        indent = len(m.group(1))
        code = "\n".join(line[indent:] for line in m.group(3).splitlines())
        out.append((m.group(2).split(), code + "\n"))
    return out


def local_script(text):
    """The runbook's local blocks as one script, and whether one needs DynamoDB."""
    parts, ddb = [], False
    for tags, code in blocks(text):
        if tags[:2] == ["sh", "local"]:
            parts.append(code)
            ddb |= "dynamodb" in tags[2:]
    return "".join(parts), ddb, len(parts)


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("AWS_") or k.startswith("TABLE_") or k.startswith("PX_")
                   or k in ("PRICE_DB", "AUDIT_STORE", "PRODUCT_STORE", "AUTH_MODE"))}
    return env


def run_script(script, binary, work, endpoint=None):
    bindir = work / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.abspath(binary), bindir / "pricing")
    env = clean_env()
    env["PATH"] = "%s:%s" % (bindir, env.get("PATH", "/usr/bin:/bin"))
    if endpoint:
        wrapper = bindir / "aws"
        wrapper.write_text('#!/bin/sh\nexec %s "$@" --endpoint-url %s\n' % (AWS, endpoint))
        wrapper.chmod(0o755)
        env.update(AWS_ACCESS_KEY_ID="AKIDRUNBOOKLOCAL", AWS_SECRET_ACCESS_KEY="runbook-local",
                   AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
                   AWS_ENDPOINT_URL_DYNAMODB=endpoint, AWS_CONFIG_FILE="/dev/null",
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_PAGER="",
                   AWS_EC2_METADATA_DISABLED="true")
    run_dir = work / "run"
    run_dir.mkdir()
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=run_dir, env=env,
                          capture_output=True, text=True, timeout=600)


def with_dynalite(work, fn):
    ddir = work / "dynalite"
    r = subprocess.run([str(REPO / "scripts" / "dynalite.sh"), "start", str(ddir)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("dynalite: " + r.stderr)
    try:
        return fn(r.stdout.strip())
    finally:
        subprocess.run([str(REPO / "scripts" / "dynalite.sh"), "stop", str(ddir)],
                       capture_output=True, timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    a = ap.parse_args()
    files = sorted(p for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
    T.check("runbooks exist", len(files) >= 5, [p.name for p in files])
    have_dynalite = (REPO / "node_modules" / "dynalite" / "cli.js").exists()
    for p in files:
        text = p.read_text()
        missing = [s for s in SECTIONS if s not in text]
        T.check("%s: sections %s" % (p.name, ", ".join(s[3:] for s in SECTIONS)), not missing,
                missing)
        T.check("%s: numbered steps" % p.name, re.search(r"^(1\.|### 1\.) ", text, re.M) is not None)
        script, ddb, n = local_script(text)
        if not n:
            continue
        if ddb and not have_dynalite:
            T.skip("%s: %d local blocks" % (p.name, n), "dynalite missing (npm ci)")
            continue
        if ddb and not os.path.exists(AWS):
            T.skip("%s: %d local blocks" % (p.name, n), "no AWS CLI at %s (awscli)" % AWS)
            continue
        work = Path(tempfile.mkdtemp(prefix="px-runbook-"))
        try:
            if ddb:
                r = with_dynalite(work, lambda ep: run_script(script, a.binary, work, ep))
            else:
                r = run_script(script, a.binary, work)
            T.check("%s: its %d local blocks run%s" % (p.name, n, " (dynalite)" if ddb else ""),
                    r.returncode == 0, "rc=%d\nstdout:\n%s\nstderr:\n%s"
                    % (r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        finally:
            shutil.rmtree(str(work), ignore_errors=True)

    # the runner is not blind: a broken command in a local block fails it
    planted = "# x\n\n```sh local\npricing db migrate > /dev/null\npricing db migrat\n```\n"
    script, _, n = local_script(planted)
    work = Path(tempfile.mkdtemp(prefix="px-runbook-"))
    try:
        r = run_script(script, a.binary, work)
        T.check("a planted broken command fails its runbook", n == 1 and r.returncode != 0,
                r.returncode)
    finally:
        shutil.rmtree(str(work), ignore_errors=True)
    print(T.summary())
    return 0 if T.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
