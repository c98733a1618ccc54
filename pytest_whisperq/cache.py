"""A content-addressed cache: every entry is a directory named by a hash of its inputs.

Entries are built in a temporary directory beside their final place and renamed into place
only when complete, under a file lock, so parallel workers build once and an interrupted
build leaves nothing that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from pytest_whisperq.errors import ConfigError
from pytest_whisperq.userpath import user_path

MANIFEST_NAME = ".whisperq-entry.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_cache_root() -> Path:
    """`$WHISPERQ_CACHE_DIR`, else `$XDG_CACHE_HOME/pytest-whisperq`, else `~/.cache/...`."""
    explicit = os.environ.get("WHISPERQ_CACHE_DIR")
    if explicit:
        return user_path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = user_path(xdg) if xdg else Path.home() / ".cache"
    return base / "pytest-whisperq"


def content_key(inputs: Any) -> str:
    """A stable hash of JSON-serialisable inputs (keys sorted), 24 hex digits."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


def safe_name(name: str) -> str:
    """A file-name-safe form of `name` that can never leave its parent directory."""
    cleaned = _UNSAFE.sub("_", name).strip("._")
    return cleaned[:80] or "entry"


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=256)
def _sha256_of_state(path: Path, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """Hashed once a process per file state: any rewrite changes size, times or inode."""
    return sha256_file(path)


DEFINING_SUFFIXES = (".safetensors", ".json", ".txt")  # weights, config, tokenizer, processor


def checkpoint_files(model_dir: Path, suffixes: tuple[str, ...] = DEFINING_SUFFIXES) -> dict[str, str]:
    """`{file name: sha256}` of the files that define a checkpoint (our own `whisperq-*` notes and
    hidden files excluded), in name order; a hub snapshot's symlinks are followed."""
    hashes = {}
    for path in sorted(p for p in Path(model_dir).iterdir() if p.is_file() and p.suffix in suffixes):
        if path.name.startswith("whisperq-") or path.name.startswith("."):
            continue
        stat = path.stat()
        hashes[path.name] = _sha256_of_state(path.resolve(), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns,
                                             stat.st_ino)
    return hashes


def checkpoint_fingerprint(model_dir: Path, suffixes: tuple[str, ...] = DEFINING_SUFFIXES) -> str:
    """sha256 over `checkpoint_files`: one key for the checkpoint's whole content."""
    digest = hashlib.sha256()
    for name, file_hash in checkpoint_files(model_dir, suffixes).items():
        digest.update(name.encode() + b"\0" + file_hash.encode())
    return digest.hexdigest()


def source_fingerprint(package_dir: Path, modules: tuple[str, ...]) -> str:
    """sha256 of the plugin's own code that makes a cached artefact: an edit (an editable install keeps its
    version) makes the entry another one."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update((package_dir / module).read_bytes())
    return digest.hexdigest()[:16]


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of `names` ("missing" where absent): part of every cache key."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


class Cache:
    """One cache root; entries are `<root>/<kind>/<name>-<key>/`."""

    def __init__(self, root: Path) -> None:
        self.root = user_path(str(root)).resolve()

    def entry_dir(self, kind: str, name: str, inputs: Any) -> Path:
        path = self.root / safe_name(kind) / f"{safe_name(name)}-{content_key(inputs)}"
        # safe_name makes this impossible; keep the invariant explicit for reviewers.
        if self.root not in path.resolve().parents:
            raise ConfigError(f"cache entry {path} would lie outside the cache root {self.root}")
        return path

    def get_or_build(
        self,
        kind: str,
        name: str,
        inputs: Any,
        build: Callable[[Path], None],
    ) -> Path:
        """Return the complete entry for `inputs`, building it once if it is missing.

        `build(tmp_dir)` writes the entry's files into `tmp_dir`; it is renamed into place
        only after `build` returns. A partly built directory from a killed run is ignored
        and removed.
        """
        from filelock import FileLock

        final = self.entry_dir(kind, name, inputs)
        if is_complete(final):
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if is_complete(final):
                return final
            if final.exists():  # never complete without a manifest: a foreign leftover
                shutil.rmtree(final)
            _remove_stale_temporaries(final)
            tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                build(tmp)
                manifest = {"kind": kind, "name": name, "inputs": inputs}
                (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, default=str))
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return final

    def store_dir(self, kind: str, name: str, inputs: Any) -> Path:
        """An entry that grows: its directory exists (with its manifest) from the first call, and its items are
        files each written atomically by whoever makes them, so a reader trusts every item it finds."""
        final = self.entry_dir(kind, name, inputs)
        if not is_complete(final):
            self.get_or_build(kind, name, inputs, lambda directory: None)
        return final


def is_complete(entry: Path) -> bool:
    return (entry / MANIFEST_NAME).is_file()


def _remove_stale_temporaries(final: Path) -> None:
    # Only called under the entry's lock, so no live builder owns these.
    for leftover in final.parent.glob(f".tmp-{final.name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
