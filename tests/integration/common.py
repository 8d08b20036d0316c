"""Pieces shared by the integration scripts in this directory.

The scripts run as `python3 tests/integration/X.py` from the repository root;
each puts its own directory first on sys.path before importing this module.
"""

import socket


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
    "N passed, N failed" line the runners look for."""

    def __init__(self, detail_cap=2000):
        self.passed = 0
        self.failed = 0
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

    def summary(self):
        return "%d passed, %d failed" % (self.passed, self.failed)
