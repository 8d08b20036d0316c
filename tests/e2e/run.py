#!/usr/bin/python3
"""Runs the end-to-end suite against one `pricing` binary.

    /usr/bin/python3 tests/e2e/run.py --binary build/pricing [-k PATTERN ...] [-v]

It closes with one `skipped: TEST: REASON` line per skipped test, then
`N passed, N failed, N skipped` as the last line; the exit status is non-zero
when anything failed.
"""

import argparse
import os
import sys
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Result(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = 0
        self.failed_ids = []
        self._t0 = {}

    def startTest(self, test):
        self._t0[test.id()] = time.monotonic()
        super().startTest(test)

    def _took(self, test):
        return time.monotonic() - self._t0.get(test.id(), time.monotonic())

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        self._line("ok", test)

    def _fail(self, test):
        if test.id() not in self.failed_ids:
            self.failed_ids.append(test.id())
            self._line("FAIL", test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test)

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._fail(test)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line("skip", test, reason)

    def _line(self, what, test, extra=""):
        took = self._took(test) if hasattr(test, "_testMethodName") else 0.0
        msg = "%-4s %s (%.1fs)" % (what, test.id(), took)
        if extra:
            msg += ": " + extra
        print(msg, file=sys.stderr, flush=True)


def flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True, help="path of the pricing executable")
    ap.add_argument("-k", action="append", default=[], help="run tests whose id contains this")
    ap.add_argument("-v", action="store_true", help="unittest's verbose output as well")
    args = ap.parse_args()

    binary = Path(args.binary).resolve()
    if not (binary.is_file() and os.access(str(binary), os.X_OK)):
        print("run.py: %s is not an executable" % binary, file=sys.stderr)
        print("0 passed, 1 failed, 0 skipped")
        return 2
    os.environ["PX_E2E_BINARY"] = str(binary)
    sys.path.insert(0, str(HERE))

    loader = unittest.TestLoader()
    suite = loader.discover(str(HERE), pattern="test_*.py", top_level_dir=str(HERE))
    tests = list(flatten(suite))
    if args.k:
        tests = [t for t in tests if any(k in t.id() for k in args.k)]
    # Keep classes together so setUpClass runs once per class.
    selected = unittest.TestSuite(tests)

    t0 = time.monotonic()
    runner = unittest.TextTestRunner(
        stream=sys.stderr, verbosity=2 if args.v else 0, resultclass=Result
    )
    result = runner.run(selected)
    elapsed = time.monotonic() - t0

    failed = len(result.failed_ids)
    import harness  # after the tests: the same module object they used

    for report in harness.sweep_servers():
        print("FAIL server left running by a test:\n%s" % report, file=sys.stderr, flush=True)
        failed += 1
    skipped = len(result.skipped)
    print("e2e: %s, %.1fs" % (binary, elapsed), file=sys.stderr)
    for test, reason in result.skipped:
        print("skipped: %s: %s" % (test.id(), reason or "no reason given"))
    print("%d passed, %d failed, %d skipped" % (result.passed, failed, skipped), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
