"""A path a user typed: `~` expanded, or a `ConfigError` (stdlib only; parsed with the options)."""

from __future__ import annotations

from pathlib import Path

from pytest_whisperq.errors import ConfigError

MAX_NAME_BYTES = 255  # NAME_MAX and PATH_MAX on Linux and macOS: longer fails every file system call
MAX_PATH_BYTES = 4096


def user_path(text: str) -> Path:
    """`Path(text).expanduser()`, where "~nobody" is a clear error instead of a RuntimeError, and a
    NUL byte or an over-long name (which no file system call accepts) is refused before one sees it."""
    if "\0" in text:
        raise ConfigError(f"{text!r}: a path cannot contain a NUL byte")
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # "~user" for a user that does not exist, or no home directory at all
        raise ConfigError(f"{text!r}: its ~ names no home directory on this machine") from None
    too_long = [part for part in path.parts if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES]
    if too_long or len(str(path).encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise ConfigError(f"{text[:80]!r}...: longer than a file system allows (a name at most {MAX_NAME_BYTES} "
                          f"bytes, a path at most {MAX_PATH_BYTES})")
    return path
