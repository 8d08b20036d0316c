#!/usr/bin/env bash
# scripts/build-static-deps.sh [--cache DIR] [--arch x86_64|arm64 --sysroot DIR]
#
# Builds the static libcurl and libpq the Lambda artifact links (scripts/package.sh),
# from Debian's own source packages, with only what the service uses:
#   libcurl: HTTP and HTTPS over OpenSSL (Debian's libssl.a); no HTTP/2, IDN, PSL,
#            brotli, zstd, zlib, SSH, RTMP, LDAP, GSSAPI or other protocols;
#   libpq:   OpenSSL for sslmode; no GSSAPI, LDAP, readline, zlib, ICU.
# Prints the install prefix (DIR/<arch>/<key>) on stdout: include/ and lib/ with
# libcurl.a, libpq.a, libpgcommon_shlib.a, libpgport_shlib.a.
#
# Sources: `apt-get source curl postgresql-15`. apt checks the signed Release file of
# the mirror and every file's checksum (a source package that fails the check is not
# unpacked). A deb-src entry is added for each `deb` entry of the system's mirrors
# when missing (/etc/apt/sources.list.d/pricing-deb-src.sources, same URIs, suites and
# keyring), then `apt-get update` fetches the source lists. Nothing of the sources is
# committed: they live under DIR/src/.
#
# Cache: DIR (default build-deps/ under the repository, git-ignored) keeps one prefix
# per key = Debian versions of both source packages + a hash of the architecture, the
# compiler version and every flag; a build with the same key reuses it, a new Debian
# version, compiler or flag builds afresh. Reproducible: SOURCE_DATE_EPOCH from the Debian changelog, the source and
# install paths mapped away (-ffile-prefix-map), deterministic archives (ar D).
#
# Native builds, or arm64 cross-built on x86_64 with gcc-aarch64-linux-gnu against the
# sysroot of scripts/arm64-sysroot.sh (--arch arm64 --sysroot DIR). Needs dpkg-dev
# (scripts/install-deps.sh); root or sudo for the apt steps.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
CACHE=$ROOT/build-deps
ARCH=""
SYSROOT=""
usage() { echo "usage: $0 [--cache DIR] [--arch x86_64|arm64 --sysroot DIR]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) [ $# -ge 2 ] || usage; CACHE=$2; shift 2 ;;
    --arch) [ $# -ge 2 ] || usage; ARCH=$2; shift 2 ;;
    --sysroot) [ $# -ge 2 ] || usage; SYSROOT=$2; shift 2 ;;
    *) usage ;;
  esac
done
export LC_ALL=C TZ=UTC
umask 022
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { echo "build-static-deps: $*" >&2; }

case "$(uname -m)" in
  x86_64) NATIVE=x86_64 ;;
  aarch64|arm64) NATIVE=arm64 ;;
  *) NATIVE=$(uname -m) ;;
esac
ARCH=${ARCH:-$NATIVE}
JOBS=$(nproc)
HOST_ARGS=()
CC_DEPS=${CC:-cc}
if [ "$ARCH" != "$NATIVE" ]; then
  [ "$ARCH" = arm64 ] && [ -n "$SYSROOT" ] && [ -d "$SYSROOT" ] || usage
  SYSROOT=$(cd "$SYSROOT" && pwd -P)
  HOST_ARGS=(--host=aarch64-linux-gnu)
  CC_DEPS="aarch64-linux-gnu-gcc --sysroot=$SYSROOT"
  export PKG_CONFIG_SYSROOT_DIR=$SYSROOT
  export PKG_CONFIG_LIBDIR=$SYSROOT/usr/lib/aarch64-linux-gnu/pkgconfig:$SYSROOT/usr/share/pkgconfig
  export AR=aarch64-linux-gnu-ar RANLIB=aarch64-linux-gnu-ranlib
fi

CURL_FLAGS=(--disable-shared --enable-static --with-openssl --without-zlib --without-brotli
  --without-zstd --without-libpsl --without-libidn2 --without-librtmp --without-libssh2
  --without-libssh --without-wolfssh --without-nghttp2 --without-ngtcp2 --without-nghttp3
  --without-quiche --without-msh3 --without-hyper --without-gssapi --without-libgsasl
  --disable-ldap --disable-ldaps --disable-rtsp --disable-dict --disable-telnet --disable-tftp
  --disable-pop3 --disable-imap --disable-smb --disable-smtp --disable-gopher --disable-mqtt
  --disable-ftp --disable-file --disable-manual --disable-ntlm --disable-ntlm-wb
  --disable-docs --disable-alt-svc --disable-hsts --disable-cookies --disable-netrc
  --disable-progress-meter --disable-dependency-tracking --enable-threaded-resolver
  --without-ca-bundle --without-ca-path --with-ca-fallback)
PG_FLAGS=(--without-readline --without-zlib --without-lz4 --without-zstd --without-icu
  --without-gssapi --without-ldap --without-pam --without-libxml --without-libxslt
  --without-llvm --without-perl --without-python --without-tcl --without-systemd
  --without-selinux --with-openssl --disable-nls --disable-rpath)

# ---- deb-src entries -------------------------------------------------------------
ensure_deb_src() {
  local want
  want=$(/usr/bin/python3 - <<'EOF'
import glob, re
def stanzas(text):
    return [dict((k.strip().lower(), v.strip()) for k, _, v in
                 (l.partition(":") for l in s.splitlines() if ":" in l and not l.lstrip().startswith("#")))
            for s in re.split(r"\n\s*\n", text)]
have, deb = set(), []
for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for s in stanzas(open(f).read()):
        if s.get("enabled", "yes") == "no":
            continue
        for t in s.get("types", "").split():
            for u in s.get("uris", "").split():
                for su in s.get("suites", "").split():
                    if t == "deb-src":
                        have.add((u.rstrip("/"), su))
                    elif t == "deb":
                        deb.append((u.rstrip("/"), su, s.get("components", "main"), s.get("signed-by", "")))
for f in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(f).read().splitlines()
    except OSError:
        continue
    for l in lines:
        w = re.sub(r"\[[^]]*\]", "", l.split("#")[0]).split()
        if len(w) >= 3 and w[0] in ("deb", "deb-src"):
            if w[0] == "deb-src":
                have.add((w[1].rstrip("/"), w[2]))
            else:
                deb.append((w[1].rstrip("/"), w[2], " ".join(w[3:]) or "main", ""))
out = []
for u, su, comp, key in deb:
    if "debian.org" not in u or (u, su) in have:
        continue
    have.add((u, su))
    out.append("Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n%s" %
               (u, su, comp, ("Signed-By: %s\n" % key) if key else ""))
print("\n".join(out), end="")
EOF
)
  if [ -n "$want" ]; then
    log "adding deb-src entries (/etc/apt/sources.list.d/pricing-deb-src.sources)"
    printf '%s' "$want" | $SUDO tee -a /etc/apt/sources.list.d/pricing-deb-src.sources >/dev/null
    $SUDO apt-get update -qq
  elif ! apt-cache showsrc curl >/dev/null 2>&1 || [ -z "$(apt-cache showsrc curl 2>/dev/null)" ]; then
    $SUDO apt-get update -qq
  fi
}

srcvers() { # srcvers PKG: the versions the source lists offer, newest first
  apt-cache showsrc "$1" 2>/dev/null | awk '/^Version:/ { print $2 }' | sort -rVu
}
ensure_deb_src
mkdir -p "$CACHE/src"
CACHE=$(cd "$CACHE" && pwd -P)
SRC=$CACHE/src
# The newest source version the mirror serves (a security mirror may list a version it
# does not serve). Once fetched, a version is kept (SRC/.PKG-VERSION.ok) and preferred.
pick() { # pick PKG: prints the version, its source unpacked under SRC
  local v
  while IFS= read -r v; do
    if [ -f "$SRC/.$1-$v.ok" ]; then echo "$v"; return 0; fi
  done < <(srcvers "$1")
  while IFS= read -r v; do
    log "apt-get source $1=$v"
    if (cd "$SRC" && apt-get source -qq "$1=$v" >"$SRC/.$1.log" 2>&1); then
      touch "$SRC/.$1-$v.ok"
      echo "$v"
      return 0
    fi
    log "$1=$v not served by the mirror: $(grep -m1 '^E:' "$SRC/.$1.log" || true)"
  done < <(srcvers "$1")
  return 1
}
CURL_V=$(pick curl) || { log "no source of curl could be fetched"; exit 1; }
PG_V=$(pick postgresql-15) || { log "no source of postgresql-15 could be fetched"; exit 1; }
# What decides the output besides the sources: architecture, compiler, flags.
DEPS_OPT="-O2 -g0 -fPIC -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fno-ident"
SELF=$(printf '%s\n' "$ARCH" "$($CC_DEPS -dumpfullversion 2>/dev/null)" "$DEPS_OPT" \
  "${CURL_FLAGS[*]}" "${PG_FLAGS[*]}" "${HOST_ARGS[*]}" | sha256sum | cut -c1-12)
KEY="curl-${CURL_V//[:~+]/_}-pg-${PG_V//[:~+]/_}-$SELF"
PREFIX=$CACHE/$ARCH/$KEY
if [ -f "$PREFIX/.done" ]; then
  echo "$PREFIX"
  exit 0
fi

upstream() { local u=${2#*:}; echo "$SRC/$1-${u%-*}"; }
CURL_SRC=$(upstream curl "$CURL_V")
PG_SRC=$(upstream postgresql-15 "$PG_V")
[ -d "$CURL_SRC" ] && [ -d "$PG_SRC" ] || { log "sources not unpacked under $SRC"; exit 1; }

STAGE=$CACHE/$ARCH/.tmp-$KEY
rm -rf "$STAGE" "$PREFIX"
mkdir -p "$STAGE/include" "$STAGE/lib"
BUILD=$CACHE/$ARCH/.build-$KEY
rm -rf "$BUILD"
mkdir -p "$BUILD"
export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(cd "$CURL_SRC" && dpkg-parsechangelog -STimestamp)
CFLAGS_DEPS="$DEPS_OPT -ffile-prefix-map=$CURL_SRC=curl -ffile-prefix-map=$PG_SRC=postgresql -ffile-prefix-map=$BUILD=build"
[ -z "$SYSROOT" ] || CFLAGS_DEPS="$CFLAGS_DEPS -ffile-prefix-map=$SYSROOT=sysroot"
export ARFLAGS=crD AR_FLAGS=crD

# ---- libcurl ----------------------------------------------------------------------
log "building libcurl $CURL_V (HTTP/HTTPS, OpenSSL) in $BUILD/curl"
cp -a "$CURL_SRC" "$BUILD/curl"
(cd "$BUILD/curl" &&
  CC="$CC_DEPS" CFLAGS="$CFLAGS_DEPS" ./configure --prefix=/ "${HOST_ARGS[@]}" "${CURL_FLAGS[@]}" >configure.out 2>&1 &&
  make -C lib -j"$JOBS" >make.out 2>&1) || { log "libcurl build failed: see $BUILD/curl/{configure,make}.out"; exit 1; }
cp "$BUILD/curl/lib/.libs/libcurl.a" "$STAGE/lib/"
mkdir -p "$STAGE/include/curl"
cp "$BUILD"/curl/include/curl/*.h "$STAGE/include/curl/"

# ---- libpq ------------------------------------------------------------------------
log "building libpq $PG_V (OpenSSL; no GSSAPI, LDAP) in $BUILD/pg"
cp -a "$PG_SRC" "$BUILD/pg"
(cd "$BUILD/pg" &&
  CC="$CC_DEPS" CFLAGS="$CFLAGS_DEPS" ./configure --prefix=/usr "${HOST_ARGS[@]}" "${PG_FLAGS[@]}" >configure.out 2>&1 &&
  make -C src/include -j"$JOBS" >make.out 2>&1 &&
  # The headers src/common includes (utils/errcodes.h, fmgroids.h, ...) are
  # generated under src/backend; a parallel make of src/common alone may reach
  # them first (the release tarball ships the parser output: no bison needed).
  make -C src/backend generated-headers >>make.out 2>&1 &&
  make -C src/common -j"$JOBS" >>make.out 2>&1 &&
  make -C src/port -j"$JOBS" >>make.out 2>&1 &&
  make -C src/interfaces/libpq -j"$JOBS" all-static-lib >>make.out 2>&1) ||
  { log "libpq build failed: see $BUILD/pg/{configure,make}.out"; exit 1; }
cp "$BUILD/pg/src/interfaces/libpq/libpq.a" "$BUILD/pg/src/common/libpgcommon_shlib.a" \
  "$BUILD/pg/src/port/libpgport_shlib.a" "$STAGE/lib/"
cp "$BUILD/pg/src/interfaces/libpq/libpq-fe.h" "$BUILD/pg/src/interfaces/libpq/libpq-events.h" \
  "$BUILD/pg/src/include/postgres_ext.h" "$BUILD/pg/src/include/pg_config_ext.h" "$STAGE/include/"

{
  echo "curl $CURL_V: ${CURL_FLAGS[*]}"
  echo "postgresql-15 $PG_V: ${PG_FLAGS[*]}"
} >"$STAGE/FLAGS"
(cd "$STAGE" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum) >"$STAGE/SHA256SUMS"
touch "$STAGE/.done"
mv "$STAGE" "$PREFIX"
rm -rf "$BUILD"
log "ready: $PREFIX"
echo "$PREFIX"
