"""What a user may name as a model: a built-in, a local directory, or a hub id[@revision]."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pytest_whisperq.errors import ConfigError
from pytest_whisperq.models.builtin import BUILTINS
from pytest_whisperq.userpath import user_path

_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<rev>[A-Za-z0-9][A-Za-z0-9_./-]*))?$")
_PATH_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")

QUANTIZE = "quantize"  # as --whisperq-model: make the W4A16 checkpoint of the base here
HINT = (
    "a local Hugging Face directory, a hub id org/name[@revision], or a built-in: "
    + ", ".join(sorted(BUILTINS))
)


@dataclass(frozen=True)
class ModelSpec:
    raw: str
    kind: Literal["builtin", "local", "hub", "quantize"]
    value: str  # built-in name, absolute path, or repo id
    revision: str | None = None

    def __str__(self) -> str:
        return self.raw


def parse_model_spec(raw: str) -> ModelSpec:
    """Classify `raw`; raise `ConfigError` with what to pass instead when it is not usable."""
    text = raw.strip()
    if not text:
        raise ConfigError(f"empty model name; pass {HINT}")
    if text in BUILTINS:
        return ModelSpec(text, "builtin", text)
    if text == QUANTIZE:
        return ModelSpec(text, "quantize", text)
    path = user_path(text)
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{text} is a file; pass the checkpoint's directory (the one holding config.json)")
        return ModelSpec(text, "local", str(path.resolve()))
    repo_part = text.split("@", 1)[0]  # a revision may contain "/" (refs/pr/3)
    if text.startswith(_PATH_PREFIXES) or repo_part.count("/") > 1 or "\\" in text:
        raise ConfigError(
            f"model directory {text} does not exist (a hub id has the form org/name[@revision])"
        )
    match = _HUB_ID.match(text)
    if match and ".." not in text:
        return ModelSpec(text, "hub", match["repo"], match["rev"])
    raise ConfigError(f"{text!r} is neither a directory nor a hub id nor a built-in; pass {HINT}")
