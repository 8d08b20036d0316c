#!/usr/bin/env bash
# Runs every libFuzzer harness of a PX_FUZZ=ON build for a bounded time.
#
#   scripts/fuzz.sh BUILD_DIR SECONDS
#
# Each harness first runs every seed of tests/fuzz/corpus/<name>/ (a harness
# without seeds fails: it would start from nothing), then SECONDS of new
# inputs, in a temporary directory (the committed corpus is never written); it
# fails on a non-zero exit or any crash, leak, timeout or OOM artifact.
# Artifacts of a failed run are kept and their directory printed. The last
# line counts harnesses: `N passed, N failed, 0 skipped`.
set -euo pipefail

usage() {
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
}
[ $# -eq 2 ] || usage
build=$1
secs=$2
[[ $secs =~ ^[1-9][0-9]*$ ]] || usage
[ -d "$build" ] || { echo "fuzz: no build directory $build" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
mapfile -t fuzzers < <(find "$build" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x | sort)
if [ ${#fuzzers[@]} -eq 0 ]; then
  echo "fuzz: no fuzz_* executables in $build (configure with CC=clang -DPX_FUZZ=ON)" >&2
  exit 1
fi

failed=0
passed=0
for bin in "${fuzzers[@]}"; do
  name=$(basename "$bin")
  seeds=$(find "$root/tests/fuzz/corpus/$name" -type f 2>/dev/null | wc -l)
  if [ "$seeds" -eq 0 ]; then
    echo "fuzz: $name FAILED: no seeds in tests/fuzz/corpus/$name" >&2
    failed=$((failed + 1))
    continue
  fi
  work=$(mktemp -d "${TMPDIR:-/tmp}/px-fuzz-$name.XXXXXX")
  mkdir -p "$work/corpus" "$work/artifacts"
  cp -R "$root/tests/fuzz/corpus/$name/." "$work/corpus/"
  echo "fuzz: $name for ${secs}s ($seeds seeds)"
  rc=0
  # Two extra minutes of wall clock bound a harness that stops making progress.
  timeout --kill-after=10 $((secs + 120)) "$bin" "$work/corpus" \
    -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1 \
    >"$work/log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
  artifacts=$(find "$work/artifacts" -type f | wc -l)
  echo "fuzz: $name: ${execs:-?} executions, exit $rc, $artifacts artifact(s)"
  if [ "$rc" -ne 0 ] || [ "$artifacts" -ne 0 ]; then
    echo "fuzz: $name FAILED; log and artifacts kept in $work" >&2
    tail -n 40 "$work/log" >&2
    find "$work/artifacts" -type f >&2
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
    rm -rf "$work"
  fi
done
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
