#!/usr/bin/python3
"""Counts the cmocka cases of the last ctest run in a build directory.

    scripts/ctest-summary.py BUILD

ctest counts executables; each holds many cmocka cases, and a case that calls
skip() passes as far as ctest can tell. This reads BUILD/Testing/Temporary/
LastTest.log (every test's full output, whatever ctest printed) and prints one
`skipped: TEST/CASE: REASON` line per skipped case, the reason being the last
`skip: ...` line the case printed before cmocka's `[  SKIPPED ]`, then
`N passed, N failed, N skipped`. An executable that failed without a failed
case (a crash, a bad start) counts as one failure of its own.
Exit status: 0, or 2 when there is no log to read.
"""

import re
import sys
from pathlib import Path

CASE = re.compile(r"^\[ +(RUN|OK|FAILED|SKIPPED|ERROR) +\] (.+?)\s*$")
COUNT_LINE = re.compile(r"^\d+ test\(s\)")
START = re.compile(r'^\d+/\d+ Test: (\S+)')
VERDICT = re.compile(r"^Test (Passed|Failed)\.")


def tally(log):
    passed, failed, skips, failures = 0, 0, [], []
    test = None
    ok, bad, skipped, reason = set(), set(), {}, None

    def close(verdict):
        nonlocal passed, failed
        passed += len(ok - bad - set(skipped))
        failed += len(bad)
        failures.extend("%s/%s" % (test, c) for c in sorted(bad))
        skips.extend(("%s/%s" % (test, c), r) for c, r in skipped.items())
        if verdict == "Failed" and not bad:
            failed += 1
            failures.append("%s (exited non-zero, no failed case)" % test)

    for line in log.splitlines():
        m = START.match(line)
        if m:
            test, ok, bad, skipped, reason = m.group(1), set(), set(), {}, None
            continue
        if test is None:
            continue
        m = VERDICT.match(line)
        if m:
            close(m.group(1))
            test = None
            continue
        if line.startswith("skip: "):
            reason = line[len("skip: "):].strip()
            continue
        m = CASE.match(line)
        # "[  ERROR   ] --- message" is an assertion's text, not a case
        if not m or COUNT_LINE.match(m.group(2)) or m.group(2).startswith("---"):
            continue
        what, name = m.group(1), m.group(2)
        if what == "RUN":
            reason = None
        elif what == "OK":
            ok.add(name)
        elif what in ("FAILED", "ERROR"):
            bad.add(name)
        elif name not in skipped:
            skipped[name] = reason or "no reason printed"
    return passed, failed, skips, failures


def main():
    if len(sys.argv) != 2:
        print("usage: scripts/ctest-summary.py BUILD", file=sys.stderr)
        return 2
    path = Path(sys.argv[1]) / "Testing" / "Temporary" / "LastTest.log"
    try:
        log = path.read_text(errors="replace")
    except OSError as e:
        print("ctest-summary: %s" % e, file=sys.stderr)
        print("0 passed, 1 failed, 0 skipped")
        return 2
    passed, failed, skips, failures = tally(log)
    for name in failures:
        print("failed: %s" % name)
    for name, reason in skips:
        print("skipped: %s: %s" % (name, reason))
    print("%d passed, %d failed, %d skipped" % (passed, failed, len(skips)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
