"""Small helpers shared by the plugin's own tests."""

from __future__ import annotations

import os


def gone(pid: int) -> bool:
    """True when process `pid` no longer runs (a zombie child of this process counts as gone once reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:  # alive, and not our child
        return False
