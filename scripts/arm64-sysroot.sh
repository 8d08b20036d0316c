#!/usr/bin/env bash
# scripts/arm64-sysroot.sh [DIR]
#
# Makes the sysroot that `scripts/package.sh --arch arm64` cross-builds against
# (default build-sysroot-arm64): Debian's arm64 builds of glibc's development
# files and of every library `pricing` links, with their dependencies, unpacked
# with dpkg-deb. Nothing arm64 is installed on this machine: the arm64 -dev
# packages cannot be installed next to the native ones (libpq-dev is not
# Multi-Arch: same, so apt would remove the native libpq-dev).
#
# Needs: the arm64 package lists (`dpkg --add-architecture arm64` and
# `apt-get update`, done here when missing) and gcc-aarch64-linux-gnu (installed
# here when missing). Uses sudo when not root. Idempotent: starts afresh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
DIR=${1:-$ROOT/build-sysroot-arm64}
export LC_ALL=C
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

DEV=(libc6-dev libmicrohttpd-dev libjansson-dev libsqlite3-dev libpq-dev libcurl4-openssl-dev
     libssl-dev zlib1g-dev)

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "arm64-sysroot: adding the arm64 architecture to dpkg (package lists only)" >&2
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  echo "arm64-sysroot: installing gcc-aarch64-linux-gnu" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    gcc-aarch64-linux-gnu >/dev/null
fi

# The arm64 packages an installation would bring, with their exact versions
# (a simulation: -s changes nothing).
mapfile -t PKGS < <(apt-get install -s --no-install-recommends "${DEV[@]/%/:arm64}" 2>/dev/null |
  awk '$1 == "Inst" && $2 ~ /:arm64$/ {
         for (i = 3; i <= NF; i++) if (substr($i, 1, 1) == "(") { v = substr($i, 2); break }
         sub(/:arm64$/, "", $2); print $2 ":arm64=" v }' | sort -u)
if [ ${#PKGS[@]} -lt ${#DEV[@]} ]; then
  echo "arm64-sysroot: apt found no arm64 packages (is the arm64 package list there?)" >&2
  exit 1
fi

rm -rf "$DIR"
mkdir -p "$DIR/.debs"
echo "arm64-sysroot: downloading ${#PKGS[@]} arm64 packages" >&2
(cd "$DIR/.debs" && apt-get download -q "${PKGS[@]}" >/dev/null 2>&1) || {
  echo "arm64-sysroot: apt-get download failed" >&2
  exit 1
}
for deb in "$DIR"/.debs/*.deb; do
  dpkg-deb -x "$deb" "$DIR"
done
# Absolute symbolic links point into this machine's root: make them relative.
while IFS= read -r link; do
  target=$(readlink "$link")
  case "$target" in
    /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$DIR$target")" "$link" ;;
  esac
done < <(find "$DIR" -type l)
[ -f "$DIR/usr/lib/aarch64-linux-gnu/libc.so" ] || {
  echo "arm64-sysroot: no libc.so in the sysroot" >&2
  exit 1
}
echo "arm64-sysroot: $DIR ready (${#PKGS[@]} packages); next: make package PACKAGE_ARCH=arm64" >&2
