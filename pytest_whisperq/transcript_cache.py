"""Transcripts cached by content, so gating a second checkpoint does not transcribe the base again.

The key is everything that decides a transcript: the sha256 of every file in the checkpoint
(weights, config, tokenizer), the evaluation data's content hash, the backend's decoding settings
(device, dtype, batch size, language, greedy) and the versions of the libraries that run it. Change
any of these and the entry is simply another one; nothing is reused that could differ.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_whisperq.backends import Hypothesis
from pytest_whisperq.cache import MANIFEST_NAME, Cache, is_complete, sha256_file
from pytest_whisperq.errors import CacheError

if TYPE_CHECKING:
    from pytest_whisperq.backends import Backend
    from pytest_whisperq.data import Utterance

TRANSCRIPTS_FILE = "transcripts.json"
# Bump when decoding or post-processing code changes in a way the package version does not show
# (an editable install keeps its version): old entries then stop matching.
SCHEMA = 1
LIBRARIES = ("pytest-whisperq", "torch", "transformers", "compressed-tensors", "tokenizers", "numpy")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def checkpoint_fingerprint(directory: Path) -> dict[str, str]:
    """sha256 of each regular file at the checkpoint's top level (hub snapshots are symlinks: followed)."""
    files = sorted(p for p in Path(directory).iterdir() if p.is_file() and p.name != MANIFEST_NAME
                   and not p.name.startswith("."))
    hashes = {}
    for p in files:
        stat = p.stat()
        hashes[p.name] = _sha256_cached(p.resolve(), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    return hashes


@lru_cache(maxsize=256)
def _sha256_cached(path: Path, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """Hashed once a process per file state: any rewrite changes size, times or inode."""
    return sha256_file(path)


def transcript_inputs(backend: Backend, data_fingerprint: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "checkpoint": checkpoint_fingerprint(backend.model.path),
        "data": data_fingerprint,
        "decoding": backend.identity(),
        "versions": library_versions(),
    }


def cached_transcribe(
    cache: Cache, backend: Backend, utterances: Sequence[Utterance], data_fingerprint: str,
) -> tuple[list[Hypothesis], bool]:
    """The backend's transcripts of `utterances`, from the cache when an identical run made them.
    Returns them and whether they came from the cache."""
    inputs = transcript_inputs(backend, data_fingerprint)
    name = f"{backend.name}-{backend.model.path.name}"
    reused = is_complete(cache.entry_dir("transcripts", name, inputs))

    def build(directory: Path) -> None:
        hypotheses = backend.transcribe(utterances)
        rows = [{**asdict(h), "tokens": list(h.tokens)} for h in hypotheses]
        (directory / TRANSCRIPTS_FILE).write_text(json.dumps(rows), encoding="utf-8")

    entry = cache.get_or_build("transcripts", name, inputs, build)
    try:
        rows = json.loads((entry / TRANSCRIPTS_FILE).read_text(encoding="utf-8"))
        hypotheses = [Hypothesis(**{**row, "tokens": tuple(row["tokens"])}) for row in rows]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CacheError(f"cache entry {entry} is damaged ({type(error).__name__}: {error}); "
                         "delete that directory and run again") from None
    if [h.id for h in hypotheses] != [u.id for u in utterances]:  # a foreign or damaged entry
        raise CacheError(f"cache entry {entry} holds transcripts of other utterances; delete that directory and run again")
    return hypotheses, reused
