"""The harness itself: a server's sanitizer report fails the test that stopped it,
however it was stopped. The server here is a small stand-in that answers /health
and prints a planted report, because a real one needs a real memory bug."""

import os
import signal
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

import harness

STANDIN = textwrap.dedent(
    """\
    import http.server, signal, sys
    port = int(sys.argv[sys.argv.index("--port") + 1])
    report = sys.argv[-1]

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a):
            pass

    def term(*_):
        sys.stderr.write(report + "\\n")
        sys.stderr.flush()
        sys.exit(0)

    signal.signal(signal.SIGTERM, term)
    if report.startswith("early:"):
        sys.stderr.write(report[6:] + "\\n")
        sys.stderr.flush()
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)

ASAN = "==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010"
UBSAN = "src/x.c:1:2: runtime error: signed integer overflow"
LSAN = "==1==ERROR: LeakSanitizer: detected memory leaks"


class _Dir:
    """The part of harness.Stores a Server uses: a directory and no flags."""

    def __init__(self, d):
        self.dir = Path(d)

    def flags(self):
        return []


class HarnessSanitizerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="px-e2e-harness-")
        exe = Path(self.tmp.name) / "pricing-standin"
        exe.write_text("#!%s\n%s" % (sys.executable, STANDIN))
        exe.chmod(0o755)
        self.saved = harness.binary
        harness.binary = lambda: str(exe)

    def tearDown(self):
        harness.binary = self.saved
        self.tmp.cleanup()

    def start(self, report):
        # Runs [stand-in, "serve", "--host", H, "--port", P, REPORT].
        return harness.Server(_Dir(self.tmp.name), args=[report]).start(timeout=20)

    def test_sigterm_report_fails(self):
        srv = self.start(UBSAN)
        with self.assertRaisesRegex(AssertionError, "sanitizer report"):
            srv.stop()
        srv.kill()  # reported once, not again

    def test_sigkill_report_fails(self):
        srv = self.start("early:" + ASAN)
        with self.assertRaisesRegex(AssertionError, "AddressSanitizer"):
            srv.kill()

    def test_exited_before_stop_fails(self):
        srv = self.start("early:" + LSAN)
        os.kill(srv.pid, signal.SIGKILL)  # a test's own signal, not the harness's
        srv.proc.wait(10)
        with self.assertRaisesRegex(AssertionError, "LeakSanitizer"):
            srv.stop()

    def test_sweep_finds_unstopped(self):
        srv = self.start("early:" + UBSAN)
        os.kill(srv.pid, signal.SIGKILL)
        srv.proc.wait(10)
        self.assertIn(srv, harness._servers)
        reports = harness.sweep_servers([srv])  # only this one: other classes' servers are theirs
        self.assertTrue(any("runtime error" in r for r in reports), reports)

    def test_clean_server_passes(self):
        srv = self.start("nothing to report")
        self.assertEqual(srv.stop(), 0)
        srv.kill()
