"""Small helpers shared by the plugin's own tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


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


def linked_copy(source: Path, out: Path, keep: Callable[[Path], bool] = lambda file: True) -> Path:
    """`out` holding links to `source`'s files (hidden ones and those `keep` refuses left out): an edited
    copy of a real checkpoint without copying its weights. Replace a link before writing to it."""
    out.mkdir()
    for file in source.iterdir():
        if file.is_file() and not file.name.startswith(".") and keep(file):
            (out / file.name).symlink_to(file)
    return out
