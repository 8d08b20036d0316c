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
