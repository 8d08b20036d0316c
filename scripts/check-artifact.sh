#!/usr/bin/env bash
# scripts/check-artifact.sh [--max-glibc 2.34] [--arch x86_64|arm64] DIR
#
# Checks a staged Lambda artifact (DIR/bootstrap plus the shared libraries under
# DIR/lib/) before it is zipped, so that what we ship loads on Amazon Linux 2023
# (provided.al2023, glibc 2.34). Refuses, with one line per reason:
# - any ELF file whose symbol version references (.gnu.version_r, what the
#   dynamic loader checks) name a GLIBC_x.y newer than --max-glibc, or
#   GLIBC_PRIVATE (ties the file to one exact glibc build); the offending
#   symbols are named (readelf --dyn-syms);
# - a bundled dynamic loader or glibc library (by file name or SONAME): the
#   system's glibc must be the one in use;
# - a DT_NEEDED entry that is neither a glibc library nor bundled under lib/;
# - a bootstrap that is not executable, has the wrong machine or interpreter, or
#   whose search path is not DT_RPATH=$ORIGIN/lib (see below), and bundled
#   libraries carrying a search path of their own.
# Why DT_RPATH and not DT_RUNPATH: Lambda sets LD_LIBRARY_PATH with /lib64 and
# /usr/lib64 first; the loader searches DT_RPATH before LD_LIBRARY_PATH but
# DT_RUNPATH after it, and DT_RUNPATH does not apply to indirect dependencies.
# With DT_RPATH every non-glibc library comes from lib/, never from the image.
#
# Uses readelf only (binutils' readelf reads any ELF machine), so it also checks
# cross-built artifacts. Exits 0 when the artifact passes, 1 when refused,
# 2 on usage errors.
set -uo pipefail

MAX_GLIBC=2.34
ARCH=""
usage() {
  echo "usage: scripts/check-artifact.sh [--max-glibc X.Y] [--arch x86_64|arm64] DIR" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --max-glibc) [ $# -ge 2 ] || usage; MAX_GLIBC=$2; shift 2 ;;
    --arch) [ $# -ge 2 ] || usage; ARCH=$2; shift 2 ;;
    -h|--help) usage ;;
    --*) usage ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || usage
DIR=$1
[[ "$MAX_GLIBC" =~ ^2\.[0-9]+$ ]] || { echo "check: bad --max-glibc $MAX_GLIBC" >&2; exit 2; }
case "$ARCH" in
  ""|x86_64|arm64) ;;
  *) echo "check: bad --arch $ARCH" >&2; exit 2 ;;
esac
command -v readelf >/dev/null || { echo "check: readelf missing (binutils)" >&2; exit 2; }

export LC_ALL=C
REFUSED=0
refuse() {
  echo "check: REFUSED: $*" >&2
  REFUSED=1
}

# is_glibc_name: libraries of glibc and the loader, never bundled.
. "$(dirname "$0")/glibc-names.sh"

# version_gt A B: true when glibc version A is newer than B.
version_gt() {
  [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n 1)" = "$1" ]
}

# glibc_needs FILE: the GLIBC_* version names FILE needs, one a line.
glibc_needs() {
  readelf -W -V "$1" 2>/dev/null | awk '
    /^Version needs section/ { on = 1; next }
    /^Version (symbols|definition) section/ { on = 0 }
    on && /Name: GLIBC_/ { for (i = 1; i <= NF; i++) if ($i == "Name:") print $(i + 1) }' |
    sort -uV
}

# symbols_at FILE VERSION: the undefined dynamic symbols FILE takes at VERSION.
symbols_at() {
  readelf -W --dyn-syms "$1" 2>/dev/null |
    awk -v v="@$2" '$7 == "UND" { n = $8; if (index(n, v) && substr(n, length(n) - length(v) + 1) == v) print n }' |
    sort -u | tr '\n' ' '
}

dyn_entries() { # dyn_entries FILE TAG: values of one dynamic tag (NEEDED, RPATH, ...)
  readelf -W -d "$1" 2>/dev/null | awk -v t="($2)" '$2 == t { s = $0; sub(/^[^[]*\[/, "", s); sub(/\][^]]*$/, "", s); print s }'
}

is_elf() {
  [ -f "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]
}

[ -d "$DIR" ] || { echo "check: $DIR is not a directory" >&2; exit 2; }
BOOT="$DIR/bootstrap"
if [ ! -f "$BOOT" ] || [ -L "$BOOT" ]; then
  refuse "no regular file bootstrap in $DIR"
  exit 1
fi
[ -x "$BOOT" ] || refuse "bootstrap is not executable"
is_elf "$BOOT" || { refuse "bootstrap is not an ELF file"; exit 1; }

files=("$BOOT")
if [ -d "$DIR/lib" ]; then
  while IFS= read -r f; do files+=("$f"); done < <(find "$DIR/lib" -mindepth 1 | sort)
fi

declare -A bundled=()
for f in "${files[@]:1}"; do
  name=${f#"$DIR/lib/"}
  if [ -d "$f" ] || [ -L "$f" ] || [[ "$name" == */* ]]; then
    refuse "lib/$name: only regular files directly under lib/"
    continue
  fi
  is_elf "$f" || { refuse "lib/$name is not an ELF file"; continue; }
  bundled[$name]=1
  is_glibc_name "$name" && refuse "lib/$name: the dynamic loader and glibc must not be bundled"
  soname=$(dyn_entries "$f" SONAME | head -n 1)
  [ -n "$soname" ] && [ "$soname" != "$name" ] && is_glibc_name "$soname" &&
    refuse "lib/$name is glibc's $soname under another name"
done

case "$ARCH" in
  x86_64) want_machine="Advanced Micro Devices X86-64"; want_interp=/lib64/ld-linux-x86-64.so.2 ;;
  arm64) want_machine="AArch64"; want_interp=/lib/ld-linux-aarch64.so.1 ;;
  *) want_machine=""; want_interp="" ;;
esac

max_seen=""
for f in "${files[@]}"; do
  [ -n "${bundled[${f#"$DIR/lib/"}]:-}" ] || [ "$f" = "$BOOT" ] || continue
  rel=${f#"$DIR/"}
  if [ -n "$want_machine" ]; then
    machine=$(readelf -h "$f" | sed -n 's/^ *Machine: *//p')
    [ "$machine" = "$want_machine" ] || refuse "$rel: machine is $machine, want $want_machine"
  fi
  while IFS= read -r v; do
    [ -n "$v" ] || continue
    if [ "$v" = GLIBC_PRIVATE ]; then
      refuse "$rel needs GLIBC_PRIVATE ($(symbols_at "$f" GLIBC_PRIVATE)): tied to one glibc build"
      continue
    fi
    n=${v#GLIBC_}
    if [ -z "$max_seen" ] || version_gt "$n" "$max_seen"; then max_seen=$n; fi
    if version_gt "$n" "$MAX_GLIBC"; then
      refuse "$rel needs $v, newer than glibc $MAX_GLIBC of Amazon Linux 2023: $(symbols_at "$f" "$v")"
    fi
  done < <(glibc_needs "$f")
  while IFS= read -r need; do
    [ -n "$need" ] || continue
    is_glibc_name "$need" && continue
    [ -n "${bundled[$need]:-}" ] || refuse "$rel needs $need, which is neither glibc nor bundled under lib/"
  done < <(dyn_entries "$f" NEEDED)
  if [ "$f" != "$BOOT" ]; then
    for tag in RPATH RUNPATH; do
      p=$(dyn_entries "$f" "$tag")
      [ -z "$p" ] || [ "$p" = '$ORIGIN' ] || refuse "$rel has DT_$tag $p (would bypass lib/)"
    done
  fi
done

if [ -n "$(dyn_entries "$BOOT" NEEDED)" ]; then
  [ -z "$(dyn_entries "$BOOT" RUNPATH)" ] ||
    refuse "bootstrap has DT_RUNPATH; want DT_RPATH \$ORIGIN/lib (Lambda's LD_LIBRARY_PATH would win)"
  rp=$(dyn_entries "$BOOT" RPATH)
  if [ "${#bundled[@]}" -gt 0 ] && [ "$rp" != '$ORIGIN/lib' ]; then
    refuse "bootstrap DT_RPATH is '${rp}', want \$ORIGIN/lib"
  fi
  if [ -n "$want_interp" ]; then
    interp=$(readelf -W -l "$BOOT" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]$/\1/p')
    [ "$interp" = "$want_interp" ] || refuse "bootstrap interpreter is '$interp', want $want_interp"
  fi
fi

if [ "$REFUSED" -ne 0 ]; then
  echo "check: $DIR refused (glibc limit $MAX_GLIBC)" >&2
  exit 1
fi
echo "check: ok: ${#files[@]} ELF files, newest glibc symbol version needed: GLIBC_${max_seen:-none} (limit $MAX_GLIBC), ${#bundled[@]} bundled libraries" >&2
exit 0
