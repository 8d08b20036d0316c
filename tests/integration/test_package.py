#!/usr/bin/python3
"""Packaging and infrastructure as code, checked for real.

- scripts/package.sh run twice, from two copies of the sources at different
  paths into different build directories (one static libcurl/libpq cache, built
  here from Debian's sources by scripts/build-static-deps.sh unless PX_DEPS_CACHE
  names one): the zips and SHA256SUMS are the same bytes; the zip holds an
  executable bootstrap that needs glibc's libraries only (no lib/, no search
  path), with OpenSSL, libcurl, SQLite and libpq linked in and neither
  libmicrohttpd nor GnuTLS; sorted entries with fixed times, a SHA256SUMS
  matching its members; the unpacked artifact maps nothing but glibc even with
  the system directories first in LD_LIBRARY_PATH (as on Lambda), runs, and says
  `serve` / `emulate` are not in this build.
- TLS to DynamoDB from the packaged executable: a local HTTPS stand-in
  (ddb_standin.py) with a certificate from a test CA made by the openssl CLI is
  accepted with SSL_CERT_FILE naming the CA, refused without it, with another
  CA, or when the certificate names another host.
- scripts/check-artifact.sh refuses a binary that needs arc4random@GLIBC_2.36, a
  bundled libc (also under another name), a missing dependency, a DT_RUNPATH;
  package.sh refuses to write a zip when the glibc limit is below what it needs.
- infra/template.yaml parsed with a loader that knows CloudFormation's tags:
  runtime, architectures, handler, environment, routes and their JWT scopes,
  the settings of the audit, products and config tables, least-privilege IAM
  per role, log retention, tracing, tags; the same checks find the faults
  planted in altered copies.
- infra/Dockerfile's structure, with planted faults found the same way.
- yamllint with the repository's .yamllint.
- `pricing smoke` against a real `pricing serve` on a free loopback port with
  seeded temporary stores (passes), and failing against: a product without a
  price, a port where nothing listens, a server giving wrong answers, a server
  that never answers (bounded by --timeout-ms).

Usage: tests/integration/test_package.py [--binary build/pricing]
Prints one line per check and "N passed, N failed"; exits non-zero on failure.
Only processes started here are signalled, by PID.
"""

import copy
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Tally  # noqa: E402
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGE_SH = REPO / "scripts" / "package.sh"
CHECK_SH = REPO / "scripts" / "check-artifact.sh"
TEMPLATE = REPO / "infra" / "template.yaml"
DOCKERFILE = REPO / "infra" / "Dockerfile"
HANDLERS = ("price-fetcher", "product-service", "config-service", "event-relay")  # CONTRACT §2, §10
SDE = 1700000000  # SOURCE_DATE_EPOCH for the reproducibility runs
GLIBC_NAMES = re.compile(
    r"^(ld-linux.*|ld64\.so.*|libc\.so.*|libm\.so.*|libpthread\.so.*|libdl\.so.*|librt\.so.*"
    r"|libresolv\.so.*|libutil\.so.*|libanl\.so.*|libmvec\.so.*|libnss_.*)$"
)
DEPS_CACHE = Path(tempfile.gettempdir()) / "px-pkg-deps"  # set in main()
SMOKE_USER = "5e1f7e57-0000-4000-8000-000000000000"

TALLY = Tally(3000)
check = TALLY.check
skip = TALLY.skip
procs = []  # Popen objects started here


def run(args, timeout=600, env=None, cwd=None):
    return subprocess.run(
        [str(a) for a in args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stop(p):
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)
        except ProcessLookupError:
            pass


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------ packaging

def snapshot_sources(dest):
    """Copies the files git would see (tracked + untracked, not ignored) to dest."""
    r = run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    if r.returncode != 0:
        raise RuntimeError("git ls-files: " + r.stderr)
    n = 0
    for rel in sorted(set(x for x in r.stdout.split("\0") if x)):
        src = REPO / rel
        if not src.is_file() or rel.startswith("node_modules/"):
            continue
        dst = Path(dest) / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        n += 1
    return n


def package(src, build, out, extra_env=None):
    env = dict(os.environ)
    env["SOURCE_DATE_EPOCH"] = str(SDE)
    # One cache of the static libcurl/libpq for every run here, outside both source copies:
    # built once from Debian's sources (scripts/build-static-deps.sh), then shared, as
    # build-deps/ is shared between builds of one checkout.
    env.setdefault("PX_DEPS_CACHE", str(DEPS_CACHE))
    env.pop("PX_MAX_GLIBC", None)
    if extra_env:
        env.update(extra_env)
    return run(["bash", Path(src) / "scripts" / "package.sh", "--build-dir", build, "--out", out],
               env=env, timeout=900)


def test_packaging(tmp):
    a_src, b_src = tmp / "a" / "src", tmp / "b" / "other-source-path"
    for d in (a_src, b_src):
        n = snapshot_sources(d)
    check("sources snapshot (%d files)" % n, n > 50)
    ra = package(a_src, tmp / "a" / "build-release", tmp / "a" / "dist")
    if not check("package.sh (first run)", ra.returncode == 0, ra.stderr[-3000:]):
        return None
    rb = package(b_src, tmp / "b" / "rel", tmp / "b" / "out")
    if not check("package.sh (second run, other paths)", rb.returncode == 0, rb.stderr[-3000:]):
        return None
    zips_a = sorted((tmp / "a" / "dist").glob("pricing-*-linux-*.zip"))
    zips_b = sorted((tmp / "b" / "out").glob("pricing-*-linux-*.zip"))
    check("one zip per run, named pricing-<version>-linux-<arch>.zip",
          len(zips_a) == 1 and len(zips_b) == 1
          and re.match(r"^pricing-\d+\.\d+\.\d+-linux-(x86_64|arm64)\.zip$", zips_a[0].name),
          [z.name for z in zips_a + zips_b])
    if not zips_a or not zips_b:
        return None
    za, zb = zips_a[0], zips_b[0]
    check("reproducible: both zips are the same bytes", za.read_bytes() == zb.read_bytes(),
          "%s vs %s" % (sha256(za), sha256(zb)))
    sa, sb = tmp / "a" / "dist" / "SHA256SUMS", tmp / "b" / "out" / "SHA256SUMS"
    check("reproducible: SHA256SUMS the same bytes",
          sa.is_file() and sb.is_file() and sa.read_bytes() == sb.read_bytes())
    r = run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp / "a" / "dist")
    check("dist/SHA256SUMS verifies the zip (sha256sum -c)",
          r.returncode == 0 and (za.name + ": OK") in r.stdout, r.stdout + r.stderr)
    m = re.search(r"sha256 ([0-9a-f]{64})", ra.stderr)
    check("package.sh prints the zip's sha256", m and m.group(1) == sha256(za), ra.stderr[-500:])
    check("package.sh reports the glibc check", "check: ok:" in ra.stderr, ra.stderr[-800:])
    return za


def test_zip(za, tmp):
    with zipfile.ZipFile(za) as z:
        infos = z.infolist()
        names = [i.filename for i in infos]
        check("zip entries sorted, files only", names == sorted(names)
              and all(not n.endswith("/") for n in names), names)
        check("zip holds bootstrap and SHA256SUMS, no lib/ (static but for glibc)",
              "bootstrap" in names and "SHA256SUMS" in names
              and not any(n.startswith("lib/") for n in names), names)
        boot = z.getinfo("bootstrap")
        mode = boot.external_attr >> 16
        check("bootstrap is a regular executable file (0755)",
              stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755, oct(mode))
        lt = time.gmtime(SDE)
        want_dt = (lt.tm_year, lt.tm_mon, lt.tm_mday, lt.tm_hour, lt.tm_min, lt.tm_sec - lt.tm_sec % 2)
        check("every entry has the SOURCE_DATE_EPOCH time and no extra fields",
              all(i.date_time == want_dt and not i.extra for i in infos),
              [(i.filename, i.date_time, i.extra) for i in infos][:5])
        sums = {}
        for line in z.read("SHA256SUMS").decode().splitlines():
            h, _, f = line.partition("  ")
            sums[f] = h
        members = {n: hashlib.sha256(z.read(n)).hexdigest() for n in names if n != "SHA256SUMS"}
        check("SHA256SUMS inside the zip matches every member", sums == members,
              set(sums.items()) ^ set(members.items()))
        dest = tmp / "unzipped"
        z.extractall(dest)
    for n in names:  # zipfile drops the modes
        os.chmod(dest / n, 0o755 if n == "bootstrap" else 0o644)
    r = run(["bash", CHECK_SH, dest])
    check("check-artifact.sh accepts the unpacked artifact", r.returncode == 0, r.stderr)
    m = re.search(r"GLIBC_([0-9.]+) \(limit 2\.34\)", r.stderr)
    print("   glibc: %s" % (m.group(0) if m else r.stderr.strip()), flush=True)
    d = run(["readelf", "-d", dest / "bootstrap"]).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", d)
    check("bootstrap needs glibc's libraries only (DT_NEEDED)",
          needed and all(GLIBC_NAMES.match(n) for n in needed), needed)
    check("bootstrap carries no search path (no DT_RPATH, no DT_RUNPATH)",
          "(RPATH)" not in d and "(RUNPATH)" not in d, d[:1500])
    # What is linked in: the minimal libcurl (HTTP/HTTPS on OpenSSL) and libpq, not the server.
    boot = (dest / "bootstrap").read_bytes()
    present = {m: m.encode() in boot for m in ("OpenSSL 3.", "CURLSHcode unknown", "SQLite format 3",
                                                  "libpq is incorrectly linked")}
    absent = {m: m.encode() in boot for m in ("MHD_", "GnuTLS", "gnutls", "nghttp2", "librtmp",
                                                 "libssh2", "krb5_")}
    check("OpenSSL, libcurl, SQLite, libpq linked in; no libmicrohttpd, GnuTLS, HTTP/2, RTMP, SSH, "
          "Kerberos", all(present.values()) and not any(absent.values()), (present, absent))
    return dest


LOADS_CHECKS = ("every library the loader maps is glibc's, despite LD_LIBRARY_PATH",
                "the packaged executable runs (pricing version)", "bootstrap --help exits 0")


def test_loads(dest):
    # Lambda puts the system directories ahead of /var/task/lib in LD_LIBRARY_PATH;
    # here: this machine's (the artifact is built for it), e.g. x86_64-linux-gnu.
    triplet = run(["gcc", "-print-multiarch"]).stdout.strip()
    if not triplet:
        for name in LOADS_CHECKS:
            skip(name, "gcc -print-multiarch names no library directory for this machine")
        return
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = "/lib/%s:/usr/lib/%s:/lib64:/usr/lib64" % (triplet, triplet)
    r = run(["ldd", dest / "bootstrap"], env=env)
    outside = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if not m or GLIBC_NAMES.match(m.group(1)):
            continue
        outside.append(line.strip())
    check("every library the loader maps is glibc's, despite LD_LIBRARY_PATH",
          r.returncode == 0 and not outside and "not found" not in r.stdout, outside or r.stdout)
    # Same file under another name, so the sub-command is read whatever bootstrap does.
    shutil.copy2(dest / "bootstrap", dest / "pricing")
    v = run([dest / "pricing", "version"], env=env, timeout=30)
    check("the packaged executable runs (pricing version)",
          v.returncode == 0 and re.match(r"^pricing \d+\.\d+\.\d+", v.stdout), v)
    os.unlink(dest / "pricing")
    h = run([dest / "bootstrap", "--help"], env=env, timeout=30)
    check("bootstrap --help exits 0", h.returncode == 0, h)
    shutil.copy2(dest / "bootstrap", dest / "pricing")
    for name in ("serve", "emulate"):
        v = run([dest / "pricing", name], env=env, timeout=30)
        check("the packaged executable has no `%s`: says it is not in this build" % name,
              v.returncode == 2 and "not in this build" in v.stderr, v)
    os.unlink(dest / "pricing")


def cc(src_text, out, tmp, extra=()):
    c = tmp / (out.name + ".c")
    c.write_text(src_text)
    r = run(["gcc", "-O0", "-o", out, c] + list(extra))
    if r.returncode != 0:
        raise RuntimeError("gcc: " + r.stderr)
    return out


def artifact_dir(tmp, name, boot, libs=()):
    d = tmp / name
    (d / "lib").mkdir(parents=True)
    shutil.copy2(boot, d / "bootstrap")
    os.chmod(d / "bootstrap", 0o755)
    for src, as_name in libs:
        shutil.copy2(src, d / "lib" / as_name)
    if not libs:
        os.rmdir(d / "lib")
    return d


def test_glibc_check(tmp, za_dir):
    new = cc('#include <stdio.h>\n#include <stdlib.h>\n'
             'int main(void) { printf("%u\\n", arc4random()); return 0; }\n', tmp / "newsym", tmp)
    syms = run(["readelf", "-W", "--dyn-syms", new]).stdout
    check("the probe binary really needs arc4random@GLIBC_2.36", "arc4random@GLIBC_2.36" in syms,
          syms[-800:])
    d = artifact_dir(tmp, "art-new", new)
    r = run(["bash", CHECK_SH, "--max-glibc", "2.34", d])
    check("check refuses a bootstrap needing GLIBC_2.36 (names arc4random)",
          r.returncode == 1 and "arc4random@GLIBC_2.36" in r.stderr and "REFUSED" in r.stderr,
          r.stderr)
    r = run(["bash", CHECK_SH, "--max-glibc", "2.36", d])
    check("the same binary passes with a 2.36 limit (the version is what is refused)",
          r.returncode == 0, r.stderr)

    old = cc('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n', tmp / "oldsym", tmp)
    libc = run(["gcc", "-print-file-name=libc.so.6"]).stdout.strip()
    libc = os.path.realpath(libc) if os.path.exists(libc) else "/lib/x86_64-linux-gnu/libc.so.6"
    d = artifact_dir(tmp, "art-libc", old, [(libc, "libc.so.6")])
    r = run(["bash", CHECK_SH, d])
    check("check refuses a bundled libc.so.6",
          r.returncode == 1 and "lib/libc.so.6" in r.stderr and "must not be bundled" in r.stderr,
          r.stderr)
    d = artifact_dir(tmp, "art-libc-renamed", old, [(libc, "libfoo.so.1")])
    r = run(["bash", CHECK_SH, d])
    check("check refuses glibc under another file name (SONAME)",
          r.returncode == 1 and "libc.so.6 under another name" in r.stderr, r.stderr)
    # The dynamic loader this machine's executables name (PT_INTERP).
    m = re.search(r"program interpreter: (\S+?)\]", run(["readelf", "-l", old]).stdout)
    ld = m.group(1) if m else ""
    if check("the probe binary names its dynamic loader (PT_INTERP)", os.path.exists(ld), ld):
        d = artifact_dir(tmp, "art-ld", old, [(os.path.realpath(ld), os.path.basename(ld))])
        r = run(["bash", CHECK_SH, d])
        check("check refuses a bundled dynamic loader",
              r.returncode == 1 and os.path.basename(ld) in r.stderr, r.stderr)
    else:
        skip("check refuses a bundled dynamic loader", "no dynamic loader found to bundle")

    if not za_dir:
        for name in ARTIFACT_CHECKS:
            skip(name, "no artifact: package.sh failed")
    else:
        jansson = cc('#include <jansson.h>\nint main(void) { json_decref(json_object()); return 0; }\n',
                     tmp / "needs-jansson", tmp, ["-Wl,--no-as-needed", "-ljansson"])
        d = artifact_dir(tmp, "art-missing", jansson)
        r = run(["bash", CHECK_SH, d])
        check("check refuses a bootstrap whose libraries are not bundled",
              r.returncode == 1 and "neither glibc nor bundled" in r.stderr, r.stderr[-600:])
        runpath = cc('#include <stdio.h>\nint main(void) { puts("x"); return 0; }\n',
                     tmp / "runpath", tmp,
                     ["-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/lib", "-Wl,--no-as-needed",
                      "-ljansson"])
        sys_jansson = run(["gcc", "-print-file-name=libjansson.so.4"]).stdout.strip()
        d = artifact_dir(tmp, "art-runpath", runpath,
                         [(os.path.realpath(sys_jansson), "libjansson.so.4")])
        r = run(["bash", CHECK_SH, d])
        check("check refuses DT_RUNPATH (Lambda's LD_LIBRARY_PATH would win)",
              r.returncode == 1 and "DT_RUNPATH" in r.stderr, r.stderr)
        # The artifact is built for this machine: ask for the other architecture.
        host_arm = os.uname().machine in ("aarch64", "arm64")
        other, want = ("x86_64", "want Advanced Micro Devices X86-64") if host_arm else \
            ("arm64", "want AArch64")
        r = run(["bash", CHECK_SH, "--arch", other, za_dir])
        check("check refuses an artifact of the wrong architecture",
              r.returncode == 1 and want in r.stderr, r.stderr[-600:])


ARTIFACT_CHECKS = ("check refuses a bootstrap whose libraries are not bundled",
                   "check refuses DT_RUNPATH (Lambda's LD_LIBRARY_PATH would win)",
                   "check refuses an artifact of the wrong architecture")


def test_package_refuses(tmp):
    src = tmp / "a" / "src"
    out = tmp / "refused-out"
    r = package(src, tmp / "a" / "build-release", out, {"PX_MAX_GLIBC": "2.30"})
    zips = list(out.glob("*.zip")) if out.exists() else []
    check("package.sh refuses (no zip) when the binary needs a glibc above the limit",
          r.returncode != 0 and "REFUSED" in r.stderr and not zips, r.stderr[-1500:])


ARM64_CHECKS = ("package.sh --arch arm64 (cross-built)",
                "arm64 artifact: AArch64 ELF files, glibc <= 2.34, nothing of glibc bundled",
                "arm64 bootstrap is static but for glibc (no lib/, glibc's DT_NEEDED only)",
                "arm64 executable runs under qemu (glibc from the sysroot)")


def test_arm64(tmp):
    """Cross-built Graviton artifact, when this machine has what it takes
    (scripts/arm64-sysroot.sh, gcc-aarch64-linux-gnu, qemu-user to run it)."""
    sysroot = REPO / "build-sysroot-arm64"
    tools = [shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "qemu-aarch64")]
    if not (sysroot / "usr" / "lib" / "aarch64-linux-gnu" / "libc.so").exists() or not all(tools):
        for name in ARM64_CHECKS:
            skip(name, "no build-sysroot-arm64 / aarch64-linux-gnu-gcc / qemu-aarch64 "
                 "(scripts/arm64-sysroot.sh, apt-get install qemu-user)")
        return
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(SDE))
    env.pop("PX_MAX_GLIBC", None)
    # The arm64 static libcurl/libpq come from the repository's cache (build-deps/arm64),
    # built on first use: cross-building them takes minutes.
    r = run(["bash", PACKAGE_SH, "--arch", "arm64", "--sysroot", sysroot,
             "--build-dir", tmp / "arm64-build", "--out", tmp / "arm64-dist"], env=env, timeout=1800)
    zips = sorted((tmp / "arm64-dist").glob("pricing-*-linux-arm64.zip"))
    if not check(ARM64_CHECKS[0], r.returncode == 0 and len(zips) == 1, r.stderr[-2000:]):
        for name in ARM64_CHECKS[1:]:
            skip(name, "the arm64 build failed")
        return
    dest = tmp / "arm64-unzipped"
    with zipfile.ZipFile(zips[0]) as z:
        names = z.namelist()
        z.extractall(dest)
    for n in names:
        os.chmod(dest / n, 0o755 if n == "bootstrap" else 0o644)
    r = run(["bash", CHECK_SH, "--arch", "arm64", dest])
    check(ARM64_CHECKS[1], r.returncode == 0, r.stderr)
    d = run(["readelf", "-d", dest / "bootstrap"]).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", d)
    check(ARM64_CHECKS[2], not any(n.startswith("lib/") for n in names) and needed
          and all(GLIBC_NAMES.match(n) for n in needed), (names, needed))
    shutil.copy2(dest / "bootstrap", dest / "pricing")
    qenv = dict(os.environ, QEMU_LD_PREFIX=str(sysroot))
    qenv.pop("LD_LIBRARY_PATH", None)
    v = run(["qemu-aarch64", dest / "pricing", "version"], env=qenv, timeout=60)
    check(ARM64_CHECKS[3], v.returncode == 0 and re.match(r"^pricing \d+\.\d+\.\d+", v.stdout), v)


# ------------------------------------------------------------------ template

class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags into their long form."""


def _cfn_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        val = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        val = loader.construct_sequence(node, deep=True)
    else:
        val = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": val}
    if suffix == "GetAtt" and isinstance(val, str):
        val = val.split(".", 1)
    if suffix == "Condition":
        return {"Condition": val}
    return {"Fn::" + suffix: val}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template():
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def walk(x):
    yield x
    if isinstance(x, dict):
        for v in x.values():
            yield from walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from walk(v)


def as_list(x):
    return x if isinstance(x, list) else [x]


def tags_of(props):
    t = props.get("Tags")
    if isinstance(t, dict):
        return t
    if isinstance(t, list):
        return {e.get("Key"): e.get("Value") for e in t if isinstance(e, dict)}
    return {}


TAGGABLE = {"AWS::DynamoDB::Table", "AWS::Logs::LogGroup", "AWS::KMS::Key", "AWS::IAM::Role",
            "AWS::CloudWatch::Alarm", "AWS::Serverless::HttpApi", "AWS::Serverless::Function",
            "AWS::Serverless::Api", "AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::S3::Bucket"}
# Logical id -> (attributes, GSIs, TTL on expiresAt) of the tables the stack owns.
TABLES = {
    "AuditTable": ({"pk": "S", "sk": "S", "gsi1pk": "S", "gsi1sk": "S"}, ("gsi1",), True),
    "ProductsTable": ({n: "S" for n in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk",
                                        "gsi3pk", "gsi3sk")}, ("gsi1", "gsi2", "gsi3"), True),
    # config items live until changed (no expiresAt); TTL removes the outbox's sent events
    "ConfigTable": ({"pk": "S", "sk": "S"}, (), True),
}
# product-service's routes and the one scope the JWT authorizer requires (CONTRACT §8).
PRODUCT_ROUTES = {
    ("GET", "/products"): "product:read",
    ("POST", "/products"): "product:write",
    ("GET", "/products/{id}"): "product:read",
    ("PUT", "/products/{id}"): "product:write",
    ("DELETE", "/products/{id}"): "product:write",
    ("PUT", "/products/{id}/price"): "price:write",
    ("GET", "/products/{id}/price-history"): "price:read",
}
# config-service's routes and their scopes (CONTRACT §9).
CONFIG_ROUTES = {
    ("GET", "/config"): "config:read",
    ("GET", "/config/{key}"): "config:read",
    ("PUT", "/config/{key}"): "config:write",
    ("POST", "/ofrep/v1/evaluate/flags/{key}"): "config:read",
    ("POST", "/ofrep/v1/evaluate/flags"): "config:read",
}
# A TransactWriteItems is authorised per action inside it (PutItem, UpdateItem,
# DeleteItem), so denying those denies them in transactions too.
DENY_ACTIONS = {"dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
                "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"}


def template_problems(t):
    """Every way t falls short of what the deployment needs; [] when it is right."""
    p = []
    if t.get("Transform") != "AWS::Serverless-2016-10-31":
        p.append("not a SAM template")
    params = t.get("Parameters", {})
    res = t.get("Resources", {})
    arch = params.get("Architecture", {})
    if arch.get("Default") != "arm64" or set(arch.get("AllowedValues", [])) != {"arm64", "x86_64"}:
        p.append("Architecture parameter: default arm64, allowed arm64/x86_64")
    for name in ("JwtIssuer", "JwtAudience", "PriceDbSecretId", "Environment", "ArtifactSha256"):
        if name not in params:
            p.append("parameter %s missing" % name)
    gf = t.get("Globals", {}).get("Function", {})
    if gf.get("Runtime") != "provided.al2023":
        p.append("Globals.Function.Runtime is not provided.al2023")
    if gf.get("Tracing") != "Active":
        p.append("X-Ray tracing not Active")
    if gf.get("Architectures") != [{"Ref": "Architecture"}]:
        p.append("Globals.Function.Architectures is not [!Ref Architecture]")
    genv = gf.get("Environment", {}).get("Variables", {})

    def tag_problem(where, tags):
        missing = [k for k in ("owner", "env", "cost-center") if k not in tags]
        if missing:
            p.append("%s lacks tags %s" % (where, missing))
        elif tags["env"] != {"Ref": "Environment"}:
            p.append("%s: env tag is not !Ref Environment" % where)

    tag_problem("Globals.Function", tags_of(gf))
    by_type = {}
    for lid, r in res.items():
        by_type.setdefault(r.get("Type"), []).append((lid, r))
        if r.get("Type") in TAGGABLE and r.get("Type") != "AWS::Serverless::Function":
            tag_problem(lid, tags_of(r.get("Properties", {})))

    # ---- function(s)
    fns = by_type.get("AWS::Serverless::Function", [])
    if not fns:
        p.append("no AWS::Serverless::Function")
    routes = set()
    scopes = {}
    for lid, r in fns:
        fp = r.get("Properties", {})
        if fp.get("Handler") not in HANDLERS:
            p.append("%s: Handler %r is not a function of the binary" % (lid, fp.get("Handler")))
        if fp.get("Runtime", gf.get("Runtime")) != "provided.al2023":
            p.append("%s: runtime is not provided.al2023" % lid)
        if fp.get("Tracing", gf.get("Tracing")) != "Active":
            p.append("%s: tracing not Active" % lid)
        code = fp.get("CodeUri", {})
        key = json.dumps(code.get("Key")) if isinstance(code, dict) else json.dumps(code)
        if "pricing-${ArtifactVersion}-linux-${Architecture}.zip" not in key:
            p.append("%s: CodeUri is not the packaged zip for the architecture" % lid)
        env = dict(genv)
        env.update(fp.get("Environment", {}).get("Variables", {}))
        if env.get("AUTH_MODE") != "apigw":
            p.append("%s: AUTH_MODE is not apigw" % lid)
        if env.get("LOG_LEVEL") != {"Ref": "LogLevel"}:
            p.append("%s: LOG_LEVEL is not the LogLevel parameter" % lid)
        pdb = json.dumps(env.get("PRICE_DB"))
        if "{{resolve:secretsmanager:${PriceDbSecretId}" not in pdb:
            p.append("%s: PRICE_DB is not a Secrets Manager dynamic reference" % lid)
        if fp.get("Handler") == "event-relay":
            pass  # publishes the outbox: no audit trail, no routes
        elif "dynamodb:${AuditTable}" not in json.dumps(env.get("AUDIT_STORE")):
            p.append("%s: AUDIT_STORE is not dynamodb:<audit table>" % lid)
        if env.get("TABLE_AUDIT") != {"Ref": "AuditTable"} and fp.get("Handler") != "event-relay":
            p.append("%s: TABLE_AUDIT is not the audit table" % lid)
        if fp.get("Handler") == "product-service" and \
                "dynamodb:${ProductsTable}" not in json.dumps(env.get("PRODUCT_STORE")):
            p.append("%s: PRODUCT_STORE is not dynamodb:<products table>" % lid)
        if fp.get("Handler") in ("price-fetcher", "config-service") and \
                "dynamodb:${ConfigTable}" not in json.dumps(env.get("CONFIG_STORE")):
            p.append("%s: CONFIG_STORE is not dynamodb:<config table>" % lid)
        if fp.get("Handler") == "price-fetcher" and \
                env.get("CONFIG_CACHE_TTL_S") != {"Ref": "ConfigCacheTtlSeconds"}:
            p.append("%s: CONFIG_CACHE_TTL_S is not the ConfigCacheTtlSeconds parameter" % lid)
        for ev in fp.get("Events", {}).values():
            ep = ev.get("Properties", {})
            if ev.get("Type") == "HttpApi":
                api = ep.get("ApiId", {}).get("Ref")
                if res.get(api, {}).get("Type") != "AWS::Serverless::HttpApi":
                    p.append("%s: route %s not on the template's HTTP API" % (lid, ep.get("Path")))
                routes.add((ep.get("Method"), ep.get("Path")))
                scopes[(ep.get("Method"), ep.get("Path"))] = \
                    ep.get("Auth", {}).get("AuthorizationScopes", [])
        fname = fp.get("FunctionName")
        fname = fname.get("Fn::Sub") if isinstance(fname, dict) else fname
        groups = []
        for _, g in by_type.get("AWS::Logs::LogGroup", []):
            gname = g.get("Properties", {}).get("LogGroupName")
            groups.append(gname.get("Fn::Sub") if isinstance(gname, dict) else gname)
        if not isinstance(fname, str) or "/aws/lambda/" + fname not in groups:
            p.append("%s: no log group /aws/lambda/<function name>" % lid)
    for want in (("GET", "/price"), ("GET", "/audit")):
        if want not in routes:
            p.append("route %s %s missing" % want)
    for (method, path), scope in list(PRODUCT_ROUTES.items()) + list(CONFIG_ROUTES.items()):
        if (method, path) not in routes:
            p.append("route %s %s missing" % (method, path))
        elif scopes.get((method, path)) != [scope]:
            p.append("route %s %s: scopes %r, want [%s]" % (method, path,
                                                          scopes.get((method, path)), scope))

    # ---- HTTP API and its JWT authorizer
    apis = by_type.get("AWS::Serverless::HttpApi", [])
    if not apis:
        p.append("no HTTP API")
    for lid, r in apis:
        auth = r.get("Properties", {}).get("Auth", {})
        dflt = auth.get("DefaultAuthorizer")
        jwt = auth.get("Authorizers", {}).get(dflt, {}).get("JwtConfiguration", {})
        if jwt.get("issuer") != {"Ref": "JwtIssuer"} or \
                {"Ref": "JwtAudience"} not in as_list(jwt.get("audience", [])):
            p.append("%s: default authorizer is not a JWT authorizer with issuer/audience "
                     "parameters" % lid)

    # ---- log groups
    for lid, r in by_type.get("AWS::Logs::LogGroup", []):
        if "RetentionInDays" not in r.get("Properties", {}):
            p.append("%s: no retention" % lid)

    # ---- tables: the audit trail, the product catalogue and the config
    tables = dict(by_type.get("AWS::DynamoDB::Table", []))
    if set(tables) != set(TABLES):
        p.append("DynamoDB tables are %s, want %s" % (sorted(tables), sorted(TABLES)))
    for lid, r in tables.items():
        want_attrs, want_gsis, want_ttl = TABLES.get(lid, ({}, (), True))
        tp = r.get("Properties", {})
        attrs = {a["AttributeName"]: a["AttributeType"] for a in tp.get("AttributeDefinitions", [])}
        if attrs != want_attrs:
            p.append("%s: attributes are not %s (S)" % (lid, "/".join(want_attrs)))
        ks = [(k["AttributeName"], k["KeyType"]) for k in tp.get("KeySchema", [])]
        if ks != [("pk", "HASH"), ("sk", "RANGE")]:
            p.append("%s: key is not pk/sk" % lid)
        gsis = {g["IndexName"]: [(k["AttributeName"], k["KeyType"]) for k in g["KeySchema"]]
                for g in tp.get("GlobalSecondaryIndexes", [])}
        for g in want_gsis:
            if gsis.get(g) != [(g + "pk", "HASH"), (g + "sk", "RANGE")]:
                p.append("%s: no GSI %s (%spk/%ssk)" % (lid, g, g, g))
        ttl = tp.get("TimeToLiveSpecification", {})
        if want_ttl and (ttl.get("AttributeName") != "expiresAt" or ttl.get("Enabled") is not True):
            p.append("%s: TTL not on expiresAt" % lid)
        if tp.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            p.append("%s: point-in-time recovery off" % lid)
        if tp.get("DeletionProtectionEnabled") is not True:
            p.append("%s: deletion protection off" % lid)
        sse = tp.get("SSESpecification", {})
        if sse.get("SSEEnabled") is not True or sse.get("SSEType") != "KMS" or \
                not sse.get("KMSMasterKeyId"):
            p.append("%s: not encrypted with a KMS key" % lid)
        if tp.get("BillingMode") != "PAY_PER_REQUEST":
            p.append("%s: not PAY_PER_REQUEST" % lid)
        if r.get("DeletionPolicy") != "Retain" or r.get("UpdateReplacePolicy") != "Retain":
            p.append("%s: DeletionPolicy/UpdateReplacePolicy not Retain" % lid)

    # ---- IAM: no wildcard or NotAction anywhere; per role, exactly its grants
    for node in walk(res):
        if not (isinstance(node, dict) and "Effect" in node and ("Action" in node or "NotAction" in node)):
            continue
        if "NotAction" in node:
            p.append("a statement uses NotAction")
        for a in as_list(node.get("Action", [])):
            if isinstance(a, str) and (a == "*" or (a.lower().startswith("dynamodb:")
                                                    and ("*" in a or "?" in a))):
                p.append("wildcard action %s" % a)
    audit_arn = {"Fn::GetAtt": ["AuditTable", "Arn"]}
    audit_gsi = {"Fn::Sub": "${AuditTable.Arn}/index/gsi1"}
    products_arn = {"Fn::GetAtt": ["ProductsTable", "Arn"]}
    products_gsis = [{"Fn::Sub": "${ProductsTable.Arn}/index/gsi%d" % i} for i in (1, 2, 3)]
    config_arn = {"Fn::GetAtt": ["ConfigTable", "Arn"]}
    want_roles = {
        "PriceFetcherRole": {"dynamodb:PutItem": [audit_arn],
                             "dynamodb:Query": [audit_arn, audit_gsi, config_arn]},
        "ProductServiceRole": {"dynamodb:GetItem": [products_arn],
                               "dynamodb:PutItem": [products_arn, audit_arn],
                               "dynamodb:UpdateItem": [products_arn],
                               "dynamodb:DeleteItem": [products_arn],
                               "dynamodb:Query": products_gsis},
        "ConfigServiceRole": {"dynamodb:GetItem": [config_arn],
                              "dynamodb:Query": [config_arn],
                              "dynamodb:PutItem": [config_arn, audit_arn]},
        # the outboxes in the products and config tables: read, lease, mark
        "EventRelayRole": {"dynamodb:Query": [products_arn, config_arn],
                           "dynamodb:UpdateItem": [products_arn, config_arn],
                           "dynamodb:DescribeTable": [products_arn, config_arn]},
    }
    for lid, r in by_type.get("AWS::IAM::Role", []):
        allowed, denied = {}, set()
        for node in walk(r.get("Properties", {}).get("Policies", [])):
            if not (isinstance(node, dict) and "Effect" in node and "Action" in node):
                continue
            ddb = [a for a in as_list(node["Action"])
                   if isinstance(a, str) and a.lower().startswith("dynamodb:")]
            if node["Effect"] == "Deny":
                denied.update(ddb)
            else:
                for a in ddb:
                    allowed.setdefault(a, []).extend(as_list(node.get("Resource")))
        want = want_roles.get(lid)
        if want is None:
            if allowed:
                p.append("%s: DynamoDB actions %s on a role of no function" % (lid, sorted(allowed)))
            continue
        if set(allowed) != set(want):
            p.append("%s: allowed DynamoDB actions are %s, want %s" % (lid, sorted(allowed),
                                                                       sorted(want)))
        for a, resources in allowed.items():
            if a in want and sorted(map(json.dumps, resources)) != sorted(map(json.dumps, want[a])):
                p.append("%s: %s is not limited to %s" % (lid, a, want[a]))
        # what a role needs (the relay's UpdateItem) is allowed; the rest is denied
        if not DENY_ACTIONS - set(want) <= denied:
            p.append("%s: not denied explicitly: %s" % (lid, sorted(DENY_ACTIONS - set(want)
                                                                     - denied)))
    for lid in want_roles:
        if lid not in res:
            p.append("role %s missing" % lid)
    if "ApiUrl" not in t.get("Outputs", {}):
        p.append("no ApiUrl output")
    return p


def test_template():
    try:
        t = load_template()
    except yaml.YAMLError as e:
        check("infra/template.yaml parses", False, e)
        skip("template contents and planted faults", "infra/template.yaml does not parse")
        return
    check("infra/template.yaml parses (CloudFormation tags)", isinstance(t, dict))
    probs = template_problems(t)
    check("template: runtime, arch, handler, env, routes, JWT, table, IAM, logs, tracing, tags",
          not probs, probs)

    def planted(name, mutate, expect):
        m = copy.deepcopy(t)
        mutate(m)
        pr = template_problems(m)
        check("template check finds a planted fault: " + name,
              any(expect in x for x in pr), pr)

    res = "Resources"

    def add_wildcard(m):
        role = m[res]["PriceFetcherRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        role["Statement"].append({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"})

    planted("dynamodb:* allowed", add_wildcard, "wildcard action dynamodb:*")

    def add_update(m):
        role = m[res]["PriceFetcherRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        role["Statement"][0]["Action"].append("dynamodb:UpdateItem")

    planted("UpdateItem allowed", add_update, "allowed DynamoDB actions")
    planted("tracing off", lambda m: m["Globals"]["Function"].pop("Tracing"), "tracing")
    planted("table untagged", lambda m: m[res]["AuditTable"]["Properties"].pop("Tags"),
            "AuditTable lacks tags")
    planted("no TTL", lambda m: m[res]["AuditTable"]["Properties"].pop("TimeToLiveSpecification"),
            "TTL")
    planted("table deletable", lambda m: m[res]["AuditTable"].pop("DeletionPolicy"), "Retain")
    planted("bad handler",
            lambda m: m[res]["PriceFetcherFunction"]["Properties"].update(Handler="index.handler"),
            "Handler")
    planted("no JWT", lambda m: m[res]["PricingApi"]["Properties"].pop("Auth"), "JWT")
    planted("log group without retention",
            lambda m: m[res]["PriceFetcherLogGroup"]["Properties"].pop("RetentionInDays"),
            "no retention")
    def product_scan(m):
        role = m[res]["ProductServiceRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        role["Statement"].append({"Effect": "Allow", "Action": "dynamodb:Scan",
                                  "Resource": {"Fn::GetAtt": ["ProductsTable", "Arn"]}})

    planted("product-service may Scan", product_scan, "ProductServiceRole: allowed DynamoDB actions")

    def product_updates_audit(m):
        role = m[res]["ProductServiceRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        role["Statement"][0]["Resource"] = [role["Statement"][0]["Resource"],
                                            {"Fn::GetAtt": ["AuditTable", "Arn"]}]

    planted("product-service may update the audit table", product_updates_audit,
            "ProductServiceRole: dynamodb:UpdateItem is not limited")
    planted("products table without PITR",
            lambda m: m[res]["ProductsTable"]["Properties"].pop("PointInTimeRecoverySpecification"),
            "ProductsTable: point-in-time recovery off")
    planted("products table without gsi3",
            lambda m: m[res]["ProductsTable"]["Properties"]["GlobalSecondaryIndexes"].pop(),
            "ProductsTable: no GSI gsi3")
    planted("price route without its scope",
            lambda m: m[res]["ProductServiceFunction"]["Properties"]["Events"]["SetPrice"]
            ["Properties"].pop("Auth"), "route PUT /products/{id}/price: scopes")
    planted("product-service on SQLite",
            lambda m: m[res]["ProductServiceFunction"]["Properties"]["Environment"]["Variables"]
            .update(PRODUCT_STORE="sqlite:/tmp/products.db"), "PRODUCT_STORE")

    def config_get_audit(m):
        role = m[res]["ConfigServiceRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        role["Statement"][1]["Action"].append("dynamodb:GetItem")

    planted("config-service reads audit items one by one", config_get_audit,
            "ConfigServiceRole: dynamodb:GetItem is not limited")

    def fetcher_writes_config(m):
        role = m[res]["PriceFetcherRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        role["Statement"][0]["Resource"] = [role["Statement"][0]["Resource"],
                                            {"Fn::GetAtt": ["ConfigTable", "Arn"]}]

    planted("price-fetcher may write the config table", fetcher_writes_config,
            "PriceFetcherRole: dynamodb:PutItem is not limited")
    planted("no config table", lambda m: m[res].pop("ConfigTable"), "ConfigTable")
    planted("config table without deletion protection",
            lambda m: m[res]["ConfigTable"]["Properties"].pop("DeletionProtectionEnabled"),
            "ConfigTable: deletion protection off")
    planted("config-service handler",
            lambda m: m[res]["ConfigServiceFunction"]["Properties"].update(Handler="config"),
            "Handler")
    planted("config write route with the read scope",
            lambda m: m[res]["ConfigServiceFunction"]["Properties"]["Events"]["PutConfig"]
            ["Properties"]["Auth"].update(AuthorizationScopes=["config:read"]),
            "route PUT /config/{key}: scopes")
    planted("OFREP route missing",
            lambda m: m[res]["ConfigServiceFunction"]["Properties"]["Events"]
            .pop("OfrepEvaluateFlags"), "route POST /ofrep/v1/evaluate/flags missing")
    planted("price-fetcher without CONFIG_STORE",
            lambda m: m[res]["PriceFetcherFunction"]["Properties"]["Environment"]["Variables"]
            .pop("CONFIG_STORE"), "PriceFetcherFunction: CONFIG_STORE")
    planted("no config-service role",
            lambda m: m[res].pop("ConfigServiceRole"), "role ConfigServiceRole missing")
    planted("plain PRICE_DB",
            lambda m: m[res]["PriceFetcherFunction"]["Properties"]["Environment"]["Variables"]
            .update(PRICE_DB="postgresql://u:p@db/prices"), "dynamic reference")


# ------------------------------------------------------------------ Dockerfile

SECRET_KEY_RE = re.compile(r"(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|PASSWORD|"
                           r"PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|PRICE_DB)", re.I)
SECRET_VALUE_RE = re.compile(r"(AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|://[^/\s:@]+:[^/\s@]+@|"
                             r"-----BEGIN [A-Z ]*PRIVATE KEY-----)")


def dockerfile_instructions(text):
    """(INSTRUCTION, args) with continuation lines joined and comments dropped."""
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        ins, _, args = cur.strip().partition(" ")
        out.append((ins.upper(), args.strip()))
        cur = ""
    if cur:
        ins, _, args = cur.strip().partition(" ")
        out.append((ins.upper(), args.strip()))
    return out


def dockerfile_problems(text):
    p = []
    ins = dockerfile_instructions(text)
    froms = [(i, a) for i, (n, a) in enumerate(ins) if n == "FROM"]
    if len(froms) < 2:
        p.append("not multi-stage (%d FROM lines)" % len(froms))
    for _, a in froms:
        words = [w for w in a.split() if not w.startswith("--")]
        image = words[0] if words else ""
        if ":" not in image.split("/")[-1] and "@sha256:" not in image or image.endswith(":latest"):
            p.append("FROM %s: no pinned tag" % image)
    for _, a in froms[:-1]:
        if " AS " not in (" " + a.upper() + " "):
            p.append("build stage FROM %s is not named (AS ...)" % a)
    if not froms:
        return p
    last_from = froms[-1][0]
    final_image = [w for w in ins[last_from][1].split() if not w.startswith("--")][0]
    if final_image != "public.ecr.aws/lambda/provided:al2023":
        p.append("final stage is FROM %s, want public.ecr.aws/lambda/provided:al2023" % final_image)
    final = ins[last_from + 1:]
    boot_dest = ("${LAMBDA_RUNTIME_DIR}/bootstrap", "$LAMBDA_RUNTIME_DIR/bootstrap",
                 "/var/runtime/bootstrap")
    boot = [a for n, a in final if n in ("COPY", "ADD") and a.split()[-1] in boot_dest]
    if not boot:
        p.append("bootstrap is not copied to ${LAMBDA_RUNTIME_DIR}/bootstrap in the final stage")
    else:
        chmod_flag = any(re.search(r"--chmod=0?755\b", a) for a in boot)
        chmod_run = any(n == "RUN" and re.search(r"chmod\s+(0?755|\+x|a\+x)\s+\S*bootstrap", a)
                        for n, a in final)
        if not (chmod_flag or chmod_run):
            p.append("bootstrap is not made executable (COPY --chmod=0755 or RUN chmod)")
    if not any(n == "COPY" and a.split()[-1].rstrip("/") in ("${LAMBDA_RUNTIME_DIR}/lib",
                                                              "/var/runtime/lib")
               for n, a in final):
        p.append("the bundled lib/ is not copied next to bootstrap")
    if any(n == "ENTRYPOINT" for n, _ in final):
        p.append("final stage overrides the base image's ENTRYPOINT")
    cmds = [a for n, a in final if n == "CMD"]
    if len(cmds) != 1:
        p.append("want exactly one CMD in the final stage")
    else:
        try:
            cmd = json.loads(cmds[0])
        except ValueError:
            cmd = None
        if not (isinstance(cmd, list) and len(cmd) == 1 and cmd[0] in HANDLERS):
            p.append("CMD %s is not [\"<handler>\"] with a handler of the binary" % cmds[0])
    for n, a in ins:
        if n in ("ENV", "ARG"):
            keys = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", a) if "=" in a else a.split()[:1]
            for k in keys:
                if SECRET_KEY_RE.search(k):
                    p.append("%s %s: credentials do not belong in the image" % (n, k))
    if SECRET_VALUE_RE.search(text):
        p.append("something that looks like a credential is in the Dockerfile")
    return p


def test_dockerfile():
    text = DOCKERFILE.read_text()
    probs = dockerfile_problems(text)
    check("Dockerfile: multi-stage, provided.al2023, bootstrap 0755 + lib/, CMD handler, "
          "no credentials", not probs, probs)
    for name, mutated, expect in (
        ("credential ENV", text + "\nENV AWS_SECRET_ACCESS_KEY=abc\n", "credentials"),
        ("access key value", text + "\nLABEL k=AKIAABCDEFGHIJKLMNOP\n", "credential"),
        ("wrong final base",
         text.replace("public.ecr.aws/lambda/provided:al2023", "debian:12"), "final stage"),
        ("bad handler", text.replace('CMD ["price-fetcher"]', 'CMD ["app.handler"]'), "CMD"),
        ("bootstrap not executable", text.replace("--chmod=0755 /artifact/bootstrap",
                                                  "/artifact/bootstrap"), "executable"),
        ("single stage", "\n".join(l for l in text.splitlines()
                                   if not l.startswith("FROM debian")), "multi-stage"),
    ):
        pr = dockerfile_problems(mutated)
        check("Dockerfile lint finds a planted fault: " + name, any(expect in x for x in pr), pr)


def test_yamllint():
    exe = shutil.which("yamllint")
    if not check("yamllint installed (scripts/install-deps.sh)", exe is not None):
        skip("yamllint runs", "yamllint is not installed")
        return
    r = run([exe, "-s", "-c", REPO / ".yamllint", TEMPLATE, REPO / ".yamllint"])
    check("yamllint -s infra/template.yaml .yamllint", r.returncode == 0, r.stdout + r.stderr)
    bad = "---\nkey: value   \nother:  [1,2]\n"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(bad)
    r = run([exe, "-s", "-c", REPO / ".yamllint", f.name])
    os.unlink(f.name)
    check("yamllint with .yamllint refuses trailing spaces", r.returncode != 0, r.stdout)


# ------------------------------------------------------------------ smoke

def wait_http(port, deadline_s=20):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.1)
    return False


class WrongHandler(http.server.BaseHTTPRequestHandler):
    """Answers like a broken deployment: a price as a string, no X-Request-Id."""

    def do_GET(self):
        body = b'{"productId":"PROD-101","price":"99.99","currency":"usd"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class NoAuditHandler(http.server.BaseHTTPRequestHandler):
    """Right price answers, but /audit never shows the record."""

    n = 0

    def do_GET(self):
        NoAuditHandler.n += 1
        if self.path.startswith("/price?id=PROD-101"):
            status, body = 200, b'{"productId":"PROD-101","price":99.99,"currency":"USD"}'
        elif self.path.startswith("/price"):
            status, body = 400, (b'{"error":{"code":"VALIDATION_FAILED","message":"x",'
                                 b'"requestId":"r","details":[{"field":"id","reason":"bad"}]}}')
        elif self.path.startswith("/audit"):
            status, body = 200, b'{"items":[],"nextCursor":null}'
        else:
            status, body = 404, b'{"message":"Not Found"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Request-Id", "req-%d" % NoAuditHandler.n)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def serve_in_thread(handler):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_smoke(binary, tmp):
    env = dict(os.environ)
    for k in ("PRICE_DB", "AUDIT_STORE", "TABLE_AUDIT", "AUTH_MODE", "LOG_LEVEL", "_HANDLER",
              "AWS_LAMBDA_RUNTIME_API", "SMOKE_TOKEN"):
        env.pop(k, None)
    env["PRICE_DB"] = "sqlite:%s" % (tmp / "prices.db")
    env["AUDIT_STORE"] = "sqlite:%s" % (tmp / "audit.db")
    r = run([binary, "db", "seed"], env=env, cwd=REPO, timeout=120)
    if not check("db seed (temporary stores)", r.returncode == 0, r.stderr):
        skip("smoke checks", "db seed failed")
        return

    def smoke(args, timeout=60):
        t0 = time.time()
        res = run([binary, "smoke"] + args, env=env, timeout=timeout)
        return res, time.time() - t0

    r, _ = smoke([])
    check("smoke without --base-url: usage, exit 2", r.returncode == 2 and "--base-url" in r.stderr,
          r)
    r, _ = smoke(["--base-url", "http://127.0.0.1:1", "--user", "alice"])
    check("smoke --user alice: exit 2", r.returncode == 2, r)
    r, _ = smoke(["--base-url", "ftp://127.0.0.1/"])
    check("smoke with a non-HTTP URL: exit 2", r.returncode == 2, r)

    port = free_port()
    log = open(tmp / "serve.log", "wb")
    p = subprocess.Popen([binary, "serve", "--port", str(port)], env=env, cwd=tmp,
                         stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    try:
        if not check("pricing serve answers /health", wait_http(port), (tmp / "serve.log")):
            skip("smoke checks against pricing serve", "pricing serve did not answer")
            return
        base = "http://127.0.0.1:%d" % port
        r, _ = smoke(["--base-url", base + "/"])
        lines = r.stdout.splitlines()
        check("smoke against pricing serve passes (exit 0)", r.returncode == 0, r.stdout + r.stderr)
        for name in ("health", "price", "audit", "invalid"):
            check("smoke prints an ok line for %s" % name,
                  any(re.match(r"^ok\s+%s\s" % name, ln) for ln in lines), r.stdout)
        m = re.search(r"X-Request-Id (\S+)\)", r.stdout)
        q = run([binary, "audit", "query", "--user", SMOKE_USER], env=env, timeout=60)
        recs = [json.loads(ln) for ln in q.stdout.splitlines() if ln.strip()]
        check("the smoke look-up is in the audit trail under the smoke user",
              m and any(x.get("requestId") == m.group(1) and x.get("userId") == SMOKE_USER
                        for x in recs), q.stdout[-800:])

        user = "0b7c3c1e-1111-4222-8333-444455556666"
        r, _ = smoke(["--base-url", base, "--user", user.upper(), "--product", "PROD-103",
                      "--token", "not-checked-locally"])
        check("smoke with --user/--product/--token passes", r.returncode == 0, r.stdout + r.stderr)

        r, _ = smoke(["--base-url", base, "--product", "PROD-NOPE-404"])
        check("smoke fails (exit 1) when the product has no price",
              r.returncode == 1 and re.search(r"^FAIL\s+price\s.*404", r.stdout, re.M)
              and re.search(r"^FAIL\s+audit\s", r.stdout, re.M), r.stdout)
    finally:
        stop(p)
        log.close()

    dead = free_port()
    r, took = smoke(["--base-url", "http://127.0.0.1:%d" % dead, "--timeout-ms", "1000"])
    check("smoke against a port with nothing listening: non-zero exit, quickly",
          r.returncode == 1 and took < 15 and "FAIL" in r.stdout, (took, r.stdout))

    srv = serve_in_thread(WrongHandler)
    try:
        r, _ = smoke(["--base-url", "http://127.0.0.1:%d" % srv.server_address[1]])
        check("smoke against a server with wrong answers fails",
              r.returncode == 1 and re.search(r"^FAIL\s+price\s", r.stdout, re.M)
              and re.search(r"^FAIL\s+invalid\s", r.stdout, re.M), r.stdout)
    finally:
        srv.shutdown()
        srv.server_close()

    srv = serve_in_thread(NoAuditHandler)
    try:
        r, took = smoke(["--base-url", "http://127.0.0.1:%d" % srv.server_address[1]])
        check("smoke fails when the look-up has no audit record",
              r.returncode == 1 and re.search(r"^ok\s+price\s", r.stdout, re.M)
              and re.search(r"^FAIL\s+audit\s", r.stdout, re.M)
              and re.search(r"^skip\s+health\s", r.stdout, re.M)
              and re.search(r"^ok\s+invalid\s", r.stdout, re.M), r.stdout)
    finally:
        srv.shutdown()
        srv.server_close()

    # Accepts connections and never answers: every request ends at --timeout-ms.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    try:
        r, took = smoke(["--base-url", "http://127.0.0.1:%d" % silent.getsockname()[1],
                         "--timeout-ms", "300"])
        check("smoke against a server that never answers: exit 1 within the bound",
              r.returncode == 1 and took < 10 and re.search(r"timed out|Timeout", r.stdout),
              (took, r.stdout))
    finally:
        silent.close()


# ------------------------------------------------------------------ TLS to DynamoDB

TLS_CHECKS = ("TLS: the packaged bootstrap reaches an HTTPS DynamoDB whose CA is SSL_CERT_FILE",
              "TLS: refused without SSL_CERT_FILE (the test CA is in no system store)",
              "TLS: refused with SSL_CERT_FILE naming another CA",
              "TLS: refused when the certificate names another host (CA trusted)")


def make_ca(d, name):
    key, crt = d / (name + ".key"), d / (name + ".pem")
    r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
             "-days", "2", "-subj", "/CN=pricing test CA " + name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    if r.returncode != 0:
        raise RuntimeError("openssl req (CA): " + r.stderr)
    return key, crt


def make_leaf(d, name, ca_key, ca_crt, san):
    key, csr, crt, ext = (d / (name + ".key"), d / (name + ".csr"), d / (name + ".pem"),
                          d / (name + ".ext"))
    ext.write_text("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n" % san)
    r = run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
             "-subj", "/CN=" + name])
    if r.returncode == 0:
        r = run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
                 "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext])
    if r.returncode != 0:
        raise RuntimeError("openssl (leaf): " + r.stderr)
    return key, crt


def start_tls_standin(d, name, key, crt):
    portfile, logfile = d / (name + ".port"), d / (name + ".log")
    p = subprocess.Popen(["/usr/bin/python3", str(REPO / "tests" / "integration" / "ddb_standin.py"),
                          str(portfile), str(logfile), "tls/secret+key", str(crt), str(key)])
    procs.append(p)
    for _ in range(200):
        if portfile.exists():
            break
        time.sleep(0.05)
    return p, int(portfile.read_text()), logfile


def test_tls(dest, tmp):
    """The artifact's own libcurl + OpenSSL verify DynamoDB's certificate chain and name."""
    if not dest or not shutil.which("openssl"):
        for name in TLS_CHECKS:
            skip(name, "no artifact" if not dest else "openssl CLI missing")
        return
    d = tmp / "tls"
    d.mkdir()
    ca_key, ca = make_ca(d, "ca")
    _, other_ca = make_ca(d, "other")
    good_key, good = make_leaf(d, "good", ca_key, ca, "IP:127.0.0.1,DNS:localhost")
    bad_key, badname = make_leaf(d, "wrongname", ca_key, ca, "DNS:dynamodb.example.invalid")
    exe = d / "pricing"
    shutil.copy2(dest / "bootstrap", exe)  # same bytes; the name selects the sub-command

    def seed(port, logfile, **extra):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "SSL_CERT", "CURL_CA")) and k not in ("AUDIT_STORE", "PRICE_DB")}
        env.update({"AWS_ACCESS_KEY_ID": "AKIDTLSTEST", "AWS_SECRET_ACCESS_KEY": "tls/secret+key",
                    "AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
                    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                    "AWS_ENDPOINT_URL_DYNAMODB": "https://127.0.0.1:%d" % port,
                    "PRICE_DB": "sqlite:%s" % (d / "prices.db"), "AUDIT_STORE": "dynamodb:audit_tls",
                    "AUDIT_TIMEOUT_MS": "3000", "LOG_LEVEL": "info"})
        env.update(extra)
        if logfile.exists():
            logfile.unlink()
        r = run([exe, "db", "seed"], env=env, timeout=60, cwd=d)
        ops = [json.loads(l)["op"] for l in logfile.read_text().splitlines()] if logfile.exists() else []
        return r, ops

    p, port, log = start_tls_standin(d, "good", good_key, good)
    try:
        r, ops = seed(port, log, SSL_CERT_FILE=str(ca))
        check(TLS_CHECKS[0], r.returncode == 0 and ops[:1] == ["DescribeTable"], (ops, r.stderr[-800:]))
        r, ops = seed(port, log)
        check(TLS_CHECKS[1], r.returncode != 0 and not ops and "certificate" in r.stderr.lower(),
              (ops, r.stderr[-800:]))
        r, ops = seed(port, log, SSL_CERT_FILE=str(other_ca))
        check(TLS_CHECKS[2], r.returncode != 0 and not ops and "certificate" in r.stderr.lower(),
              (ops, r.stderr[-800:]))
    finally:
        stop(p)
    p, port, log = start_tls_standin(d, "wrongname", bad_key, badname)
    try:
        r, ops = seed(port, log, SSL_CERT_FILE=str(ca))
        check(TLS_CHECKS[3], r.returncode != 0 and not ops, (ops, r.stderr[-800:]))
    finally:
        stop(p)


# ------------------------------------------------------------------ main

def main():
    binary = os.environ.get("PX_PRICING_BIN", str(REPO / "build" / "pricing"))
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--binary":
        binary = args[1]
    elif args:
        print("usage: tests/integration/test_package.py [--binary build/pricing]", file=sys.stderr)
        return 2
    binary = str(Path(binary).resolve())
    if not os.access(binary, os.X_OK):
        print("test_package: %s is not an executable (build first)" % binary, file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="px-pkg-"))
    global DEPS_CACHE
    DEPS_CACHE = Path(os.environ.get("PX_DEPS_CACHE") or tmp / "deps-cache")
    try:
        za = test_packaging(tmp)
        dest = None
        if za:
            dest = test_zip(za, tmp)
            test_loads(dest)
        else:
            skip("reproducibility, zip contents, loader and glibc-limit checks",
                 "no artifact: package.sh failed")
        test_tls(dest, tmp)
        test_glibc_check(tmp, dest)
        if za:
            test_package_refuses(tmp)
        test_arm64(tmp)
        test_template()
        test_dockerfile()
        test_yamllint()
        test_smoke(binary, tmp)
    finally:
        for p in procs:
            stop(p)
        if TALLY.failed == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("work files kept in %s" % tmp)
    print(TALLY.summary())
    return 1 if TALLY.failed else 0


if __name__ == "__main__":
    sys.exit(main())
