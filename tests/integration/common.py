"""Pieces shared by the integration scripts in this directory.

The scripts run as `python3 tests/integration/X.py` from the repository root;
each puts its own directory first on sys.path before importing this module.
"""

import socket
import unittest


def free_port():
    """A loopback TCP port nobody listened on a moment ago."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Tally:
    """Counts checks and prints one line each; `summary()` is the closing
    report the runners look for: one `skipped: NAME: REASON` line per skipped
    check, then "N passed, N failed, N skipped"."""

    def __init__(self, detail_cap=2000):
        self.passed = 0
        self.failed = 0
        self.skipped = []  # (name, reason)
        self.detail_cap = detail_cap

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok - %s" % name, flush=True)
        else:
            self.failed += 1
            shown = (": " + str(detail)[: self.detail_cap]) if detail else ""
            print("FAIL - %s%s" % (name, shown), flush=True)
        return cond

    def skip(self, name, reason):
        """A check that did not run; reason says why (a missing tool, a failed
        prerequisite), so the skip shows in the summary instead of vanishing."""
        self.skipped.append((name, reason))
        print("skip - %s: %s" % (name, reason), flush=True)

    def summary(self):
        lines = ["skipped: %s: %s" % s for s in self.skipped]
        lines.append("%d passed, %d failed, %d skipped" % (self.passed, self.failed, len(self.skipped)))
        return "\n".join(lines)


def run_unittest(suite, verbosity=1):
    """Runs a unittest suite and prints the same closing report as Tally:
    `skipped: TEST: REASON` lines, then "N passed, N failed, N skipped".
    Returns the exit status: 0 when something ran and nothing failed."""
    res = unittest.TextTestRunner(verbosity=verbosity).run(suite)
    failed_ids = {t.id() for t, _ in res.failures + res.errors}
    failed_ids |= {t.id() for t in res.unexpectedSuccesses}
    skipped = len(res.skipped)
    passed = max(0, res.testsRun - len(failed_ids) - skipped)  # setUpClass errors are not runs
    for t, reason in res.skipped:
        print("skipped: %s: %s" % (t.id(), reason or "no reason given"))
    print("%d passed, %d failed, %d skipped" % (passed, len(failed_ids), skipped), flush=True)
    return 0 if not failed_ids and res.testsRun > 0 else 1
