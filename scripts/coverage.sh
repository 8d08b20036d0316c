#!/usr/bin/env bash
# scripts/coverage.sh [BUILD]
#
# Line coverage of src/: BUILD (default build-cov, configured with
# -DPX_COVERAGE=ON) runs what scripts/test.sh runs for one build (unit tests,
# the end-to-end suite per store backend, the integration scripts), starting
# from zeroed counters; gcovr then writes BUILD/coverage/index.html (annotated
# sources), BUILD/coverage/summary.json, and prints the figure per directory of
# src/ and the total. The report is written even when a test failed; the exit
# status is then non-zero.
#
# Servers stopped by SIGTERM write their counters on the way out of main;
# processes killed by SIGKILL (the crash tests) do not, so their lines count
# only when something else runs them too.
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD=${1:-build-cov}
PYTHON=/usr/bin/python3

if ! grep -q '^PX_COVERAGE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  echo "coverage: $BUILD is not a -DPX_COVERAGE=ON build (make coverage configures one)" >&2
  exit 2
fi
if ! command -v gcovr >/dev/null; then
  echo "coverage: gcovr missing (scripts/install-deps.sh installs it)" >&2
  exit 2
fi

# Counters accumulate across runs: start from zero so the figure is this run's.
find "$BUILD" -name '*.gcda' -delete
rm -rf "$BUILD/coverage"
mkdir -p "$BUILD/coverage"

tests_rc=0
scripts/test.sh "$BUILD" || tests_rc=$?

# Both copies of the library (pxcore for the binary, pxcore_test for the unit
# tests) compile the same sources; gcovr merges their counts per source line.
gcovr --root . --filter 'src/' --object-directory "$BUILD" \
  --html-details "$BUILD/coverage/index.html" --html-title "pricing: line coverage of src/" \
  --json-summary-pretty --json-summary "$BUILD/coverage/summary.json" >/dev/null || {
  echo "coverage: gcovr failed" >&2
  exit 1
}

"$PYTHON" - "$BUILD/coverage/summary.json" <<'EOF'
import json, sys
from collections import OrderedDict

summary = json.load(open(sys.argv[1]))
dirs = OrderedDict()
for f in summary["files"]:
    parts = f["filename"].split("/")
    d = "/".join(parts[:2]) if len(parts) > 2 else parts[0]
    c, t = dirs.get(d, (0, 0))
    dirs[d] = (c + f["line_covered"], t + f["line_total"])
print("line coverage of src/:")
for d in sorted(dirs):
    c, t = dirs[d]
    print(f"  {d:<16} {100.0 * c / t:5.1f}%  ({c}/{t} lines)")
c, t = summary["line_covered"], summary["line_total"]
print(f"  {'total':<16} {100.0 * c / t:5.1f}%  ({c}/{t} lines)")
EOF
echo "report: $BUILD/coverage/index.html"
if [ "$tests_rc" -ne 0 ]; then
  echo "coverage: some tests failed (see the summary above); the figures count what ran" >&2
fi
exit "$tests_rc"
