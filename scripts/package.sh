#!/usr/bin/env bash
# scripts/package.sh [--arch x86_64|arm64] [--build-dir DIR] [--out DIR] [--sysroot DIR]
#
# Builds the Lambda deployment artifact dist/pricing-<version>-linux-<arch>.zip:
#   bootstrap        the stripped `pricing` executable (Lambda runs it as the
#                    custom runtime; the name alone selects `pricing lambda`),
#                    built without the HTTP server (PX_SERVER=OFF), the lsm store and
#                    the amqp:// event sink (PX_AMQP=OFF: SQS and SNS remain)
#   lib/*.so*        only with PX_PACKAGE_DYNAMIC=1: every shared library it needs
#                    except glibc's, with their own dependencies; bootstrap finds
#                    them through DT_RPATH=$ORIGIN/lib
#   SHA256SUMS       checksums of the files above
#
# Every library is linked statically except glibc: libcurl and libpq rebuilt minimal
# from Debian's source packages by scripts/build-static-deps.sh (cached under
# PX_DEPS_CACHE, default build-deps/; cross-built against the sysroot for arm64),
# OpenSSL, SQLite and jansson from Debian's static archives. The dynamic loader
# then maps glibc alone: that is most of the cold start saved
# (docs/internals/lambda.md). PX_PACKAGE_DYNAMIC=1 bundles shared libraries instead.
# and writes OUT/SHA256SUMS over every pricing-*.zip in OUT: the artifact is
# promoted dev -> QA -> UAT -> PROD by that checksum (docs/deployment.md).
#
# Reproducible: two runs from the same sources give the same bytes, whatever the
# build or source directory. SOURCE_DATE_EPOCH (default: time of the last git
# commit) fixes every timestamp; paths are mapped away (-ffile-prefix-map);
# the executable is stripped; zip entries are sorted, carry fixed mtimes and
# modes and no extra fields (zip -X); the build has its own directory.
#
# Refuses (scripts/check-artifact.sh) an artifact whose executable or bundled
# libraries need a glibc newer than 2.34 (Amazon Linux 2023), or that bundles
# the dynamic loader or glibc. PX_MAX_GLIBC overrides the limit.
#
# arm64 is cross-built with Debian's gcc-aarch64-linux-gnu against a sysroot of
# Debian arm64 packages made by scripts/arm64-sysroot.sh (default
# build-sysroot-arm64).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$ROOT"
export LC_ALL=C TZ=UTC
umask 022

case "$(uname -m)" in
  x86_64) NATIVE=x86_64 ;;
  aarch64|arm64) NATIVE=arm64 ;;
  *) NATIVE=$(uname -m) ;;
esac
ARCH=$NATIVE
BUILD=""
OUT=dist
SYSROOT=""
usage() {
  echo "usage: scripts/package.sh [--arch x86_64|arm64] [--build-dir DIR] [--out DIR] [--sysroot DIR]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) [ $# -ge 2 ] || usage; ARCH=$2; shift 2 ;;
    --build-dir) [ $# -ge 2 ] || usage; BUILD=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
    --sysroot) [ $# -ge 2 ] || usage; SYSROOT=$2; shift 2 ;;
    -h|--help) usage ;;
    *) usage ;;
  esac
done
case "$ARCH" in
  x86_64) TRIPLET=x86_64-linux-gnu ;;
  arm64) TRIPLET=aarch64-linux-gnu ;;
  *) echo "package: unsupported --arch $ARCH (x86_64 or arm64)" >&2; exit 2 ;;
esac
if [ -z "$BUILD" ]; then
  BUILD=build-release
  [ "$ARCH" = "$NATIVE" ] || BUILD=build-release-$ARCH
fi
mkdir -p "$BUILD" "$OUT"
BUILD=$(cd "$BUILD" && pwd -P)
OUT=$(cd "$OUT" && pwd -P)
MAX_GLIBC=${PX_MAX_GLIBC:-2.34}

for tool in cmake readelf zip sha256sum; do
  command -v "$tool" >/dev/null || { echo "package: $tool missing (scripts/install-deps.sh)" >&2; exit 2; }
done

VERSION=$(sed -n 's/^project(pricing VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$VERSION" ] || { echo "package: no version in CMakeLists.txt" >&2; exit 2; }

# Timestamps: the last commit, so the same commit packs the same bytes. zip
# cannot store dates before 1980.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || true)
  if [ -z "$SOURCE_DATE_EPOCH" ]; then
    SOURCE_DATE_EPOCH=315532800
    echo "package: no git commit; SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH (1980-01-01)" >&2
  fi
fi
[[ "$SOURCE_DATE_EPOCH" =~ ^[0-9]+$ ]] || { echo "package: bad SOURCE_DATE_EPOCH" >&2; exit 2; }
[ "$SOURCE_DATE_EPOCH" -ge 315532800 ] || SOURCE_DATE_EPOCH=315532800
export SOURCE_DATE_EPOCH

# ---- configure and build --------------------------------------------------------
CFLAGS_REL="-O2 -g0 -fstack-protector-strong -D_FORTIFY_SOURCE=2 -ffile-prefix-map=$ROOT=. -ffile-prefix-map=$BUILD=build -fdebug-prefix-map=$ROOT=. -fno-ident"
LDFLAGS_REL="-Wl,--disable-new-dtags -Wl,-z,relro -Wl,-z,now -Wl,--build-id=sha1"
cmake_args=(-S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPX_TESTS=OFF -DPX_FUZZ=OFF -DPX_LSM=OFF -DPX_AMQP=OFF
  -DPX_SERVER=OFF -DPX_SANITIZE=OFF -DPX_WERROR=ON "-DCMAKE_C_FLAGS=$CFLAGS_REL"
  "-DCMAKE_C_FLAGS_RELEASE=" "-DCMAKE_EXE_LINKER_FLAGS=$LDFLAGS_REL")
STRIP=strip
SEARCH_ROOT=""
EXTRA_LD=""
if [ "$ARCH" != "$NATIVE" ]; then
  [ "$ARCH" = arm64 ] && [ "$NATIVE" = x86_64 ] || {
    echo "package: cross-building $ARCH on $NATIVE is not supported" >&2; exit 2; }
  command -v aarch64-linux-gnu-gcc >/dev/null || {
    echo "package: aarch64-linux-gnu-gcc missing (apt-get install gcc-aarch64-linux-gnu)" >&2; exit 2; }
  SYSROOT=${SYSROOT:-$ROOT/build-sysroot-arm64}
  [ -f "$SYSROOT/usr/lib/$TRIPLET/libc.so" ] || {
    echo "package: no arm64 sysroot at $SYSROOT (scripts/arm64-sysroot.sh makes one)" >&2; exit 2; }
  SYSROOT=$(cd "$SYSROOT" && pwd -P)
  cat > "$BUILD/toolchain-$ARCH.cmake" <<EOF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_SYSROOT "$SYSROOT")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
EOF
  cmake_args+=("-DCMAKE_TOOLCHAIN_FILE=$BUILD/toolchain-$ARCH.cmake")
  # The linker follows indirect dependencies of the libraries we link inside the sysroot.
  EXTRA_LD="-Wl,-rpath-link,$SYSROOT/usr/lib/$TRIPLET:$SYSROOT/lib/$TRIPLET"
  export PKG_CONFIG_SYSROOT_DIR=$SYSROOT
  export PKG_CONFIG_LIBDIR=$SYSROOT/usr/lib/$TRIPLET/pkgconfig:$SYSROOT/usr/share/pkgconfig
  STRIP=aarch64-linux-gnu-strip
  SEARCH_ROOT=$SYSROOT
fi
STATIC=0
if [ "${PX_PACKAGE_DYNAMIC:-0}" != 1 ]; then
  STATIC=1
  deps_args=(--cache "${PX_DEPS_CACHE:-$ROOT/build-deps}")
  [ "$ARCH" = "$NATIVE" ] || deps_args+=(--arch "$ARCH" --sysroot "$SYSROOT")
  DEPS=$("$ROOT/scripts/build-static-deps.sh" "${deps_args[@]}") || {
    echo "package: scripts/build-static-deps.sh failed" >&2; exit 1; }
  # Only glibc stays shared: no search path, nothing under lib/.
  # Not position-independent unless PX_PACKAGE_PIE=1: a PIE carries ~21,600 relative
  # relocations (OpenSSL's tables, mostly) that the loader applies at every start,
  # copy-on-write faulting ~100 pages: 1.5-2 ms of a cold start. DT_RELR would make
  # them cheap but needs glibc 2.36. The trade-off (docs/security.md): the
  # executable's own code and data sit at a fixed address; glibc, the heap, the
  # stack and mmap are still randomised.
  PIE_C="-fno-pie"; PIE_L="-no-pie"
  [ "${PX_PACKAGE_PIE:-0}" != 1 ] || { PIE_C="-fpie"; PIE_L="-pie"; }
  cmake_args+=("-DPX_STATIC_DEPS=$DEPS" -DCMAKE_SKIP_RPATH=ON "-DCMAKE_C_FLAGS=$CFLAGS_REL $PIE_C"
    "-DCMAKE_EXE_LINKER_FLAGS=$LDFLAGS_REL $EXTRA_LD -Wl,--as-needed $PIE_L")
else
  cmake_args+=(-DPX_STATIC_DEPS= -DCMAKE_SKIP_RPATH=OFF -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON
    '-DCMAKE_INSTALL_RPATH=$ORIGIN/lib' -DCMAKE_SKIP_INSTALL_RPATH=OFF
    "-DCMAKE_EXE_LINKER_FLAGS=$LDFLAGS_REL $EXTRA_LD")
fi
echo "package: building pricing $VERSION for linux-$ARCH in $BUILD" >&2
cmake "${cmake_args[@]}" >/dev/null
cmake --build "$BUILD" --target pricing -j"$(nproc)" >/dev/null

# ---- stage: bootstrap + lib/ -------------------------------------------------------
STAGE=$BUILD/stage
rm -rf "$STAGE"
mkdir -p "$STAGE/lib"
cp "$BUILD/pricing" "$STAGE/bootstrap"
"$STRIP" --strip-all --remove-section=.comment --remove-section=.note.gnu.gold-version "$STAGE/bootstrap"

# is_glibc_name: libraries of glibc and the loader, never bundled.
. "$ROOT/scripts/glibc-names.sh"
needed() {
  readelf -W -d "$1" | awk '$2 == "(NEEDED)" { s = $0; sub(/^[^[]*\[/, "", s); sub(/\].*$/, "", s); print s }'
}
find_lib() { # find_lib SONAME: the file the target's loader would pick, from the build machine's copy
  local d
  for d in "/lib/$TRIPLET" "/usr/lib/$TRIPLET" /lib64 /usr/lib64 /lib /usr/lib; do
    if [ -e "$SEARCH_ROOT$d/$1" ]; then
      readlink -f "$SEARCH_ROOT$d/$1"
      return 0
    fi
  done
  return 1
}
# Breadth-first over DT_NEEDED, bounded by the number of libraries a system has.
queue=("$STAGE/bootstrap")
declare -A seen=()
for ((i = 0; i < ${#queue[@]} && i < 500; i++)); do
  while IFS= read -r lib; do
    [ -n "$lib" ] || continue
    is_glibc_name "$lib" && continue
    [ -z "${seen[$lib]:-}" ] || continue
    seen[$lib]=1
    src=$(find_lib "$lib") || { echo "package: cannot find $lib (needed by ${queue[$i]##*/})" >&2; exit 1; }
    cp "$src" "$STAGE/lib/$lib"
    queue+=("$STAGE/lib/$lib")
  done < <(needed "${queue[$i]}")
done
rmdir "$STAGE/lib" 2>/dev/null || true

# ---- refuse what Amazon Linux 2023 cannot load -----------------------------------
"$ROOT/scripts/check-artifact.sh" --max-glibc "$MAX_GLIBC" --arch "$ARCH" "$STAGE"

# ---- normalise and zip -------------------------------------------------------------
chmod 0755 "$STAGE/bootstrap"
[ ! -d "$STAGE/lib" ] || { chmod 0755 "$STAGE/lib"; find "$STAGE/lib" -type f -exec chmod 0644 {} +; }
(cd "$STAGE" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | sort | xargs sha256sum > SHA256SUMS)
chmod 0644 "$STAGE/SHA256SUMS"
find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

NAME=pricing-$VERSION-linux-$ARCH.zip
TMPZIP=$OUT/.$NAME.tmp
rm -f "$TMPZIP"
(cd "$STAGE" && find . -type f | sed 's|^\./||' | sort | zip -X -D -9 -q "$TMPZIP" -@)
mv -f "$TMPZIP" "$OUT/$NAME"
touch -d "@$SOURCE_DATE_EPOCH" "$OUT/$NAME"
(cd "$OUT" && find . -maxdepth 1 -name 'pricing-*.zip' -type f | sed 's|^\./||' | sort | xargs sha256sum > SHA256SUMS)

nlibs=$(find "$STAGE" -path "$STAGE/lib/*" -type f | wc -l)
if [ "$STATIC" = 1 ]; then
  echo "package: $OUT/$NAME ($(stat -c %s "$OUT/$NAME") bytes, static but for glibc: $(needed "$STAGE/bootstrap" | tr '\n' ' '))" >&2
else
  echo "package: $OUT/$NAME ($(stat -c %s "$OUT/$NAME") bytes, $nlibs bundled libraries)" >&2
fi
echo "package: sha256 $(sha256sum "$OUT/$NAME" | cut -d' ' -f1)" >&2
