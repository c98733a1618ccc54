"""Transcripts cached by content, so gating a second checkpoint does not transcribe the base again.

The key is everything that decides a transcript: the checkpoint's content hash (weights, config,
tokenizer: `cache.checkpoint_fingerprint`, as for the quantize cache), the evaluation data's content
hash, the backend's decoding settings (device, dtype, batch size, language, greedy) and the versions
of the libraries that run it. Change any of these and the entry is simply another one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_whisperq.backends import Hypothesis
from pytest_whisperq.cache import DEFINING_SUFFIXES, Cache, checkpoint_fingerprint, is_complete, package_versions
from pytest_whisperq.errors import CacheError
from pytest_whisperq.models.tensors import PICKLE_SUFFIXES

if TYPE_CHECKING:
    from pytest_whisperq.backends import Backend
    from pytest_whisperq.data import Utterance

TRANSCRIPTS_FILE = "transcripts.json"
# Bump when decoding or post-processing code changes in a way the package version does not show
# (an editable install keeps its version): old entries then stop matching.
SCHEMA = 1
LIBRARIES = ("pytest-whisperq", "torch", "transformers", "compressed-tensors", "tokenizers", "numpy")


def transcript_inputs(backend: Backend, data_fingerprint: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
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
