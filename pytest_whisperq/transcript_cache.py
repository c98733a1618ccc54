"""Transcripts cached by content, so gating a second checkpoint does not transcribe the base again.

The key is everything that decides a transcript: the checkpoint's content hash (weights, config,
tokenizer: `cache.checkpoint_fingerprint`, as for the quantize cache), the evaluation data's content
hash, the backend's decoding settings (device, dtype, batch size, language, greedy), the versions
of the libraries that run it and the plugin's own code that runs the backend. Change any of these and the entry is simply another one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_whisperq.backends import Hypothesis
from pytest_whisperq.cache import (DEFINING_SUFFIXES, Cache, checkpoint_fingerprint, is_complete, package_versions,
                                   source_fingerprint)
from pytest_whisperq.errors import CacheError
from pytest_whisperq.models.tensors import PICKLE_SUFFIXES

if TYPE_CHECKING:
    from pytest_whisperq.backends import Backend
    from pytest_whisperq.data import Utterance

TRANSCRIPTS_FILE = "transcripts.json"
# Bump when the meaning of an entry changes in a way neither the versions nor the backend's code show.
SCHEMA = 1
LIBRARIES = ("pytest-whisperq", "torch", "transformers", "compressed-tensors", "tokenizers", "numpy")


def backend_code() -> str:
    """The plugin's own code that turns audio into transcripts (every backend module, the audio handling, the
    text joining long-form windows): an edit makes the entries other ones, as the built-in converter's and
    the quantizer's keys cover their source."""
    package = Path(__file__).parent
    modules = sorted(path.relative_to(package).as_posix() for path in (package / "backends").glob("*.py"))
    return source_fingerprint(package, (*modules, "audio.py", "text.py"))


def transcript_inputs(backend: Backend, data_fingerprint: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "code": backend_code(),
        # pickled weights too: a checkpoint loaded with --whisperq-allow-pickle is defined by them
        "checkpoint": checkpoint_fingerprint(backend.model.path, DEFINING_SUFFIXES + PICKLE_SUFFIXES),
        "data": data_fingerprint,
        "decoding": backend.identity(),
        "versions": package_versions(LIBRARIES),
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
