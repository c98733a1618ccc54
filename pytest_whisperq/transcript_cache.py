"""Transcripts cached by content, one entry per utterance, so gating a second checkpoint does not transcribe
the base again and a data set that shares utterances with an earlier one transcribes only the new ones.

A transcriber's store is keyed by everything that decides its transcripts except the data: the checkpoint's
content hash (weights, config, tokenizer: `cache.checkpoint_fingerprint`, as for the quantize cache), the
backend's decoding settings (device, dtype, batch size, greedy; the GPU and CUDA version, or the CPU's model and
kernel instruction sets: `hardware.py`), the versions of the libraries that run it and
the plugin's own code that runs the backend. Inside it, each utterance's transcript is keyed by what the
backend reads of it: its audio samples and the language decoding is forced to (never its id or reference
text). Change any of these and the entry is simply another one.

Why per utterance and not per data set: greedy decoding does not depend on what else shares a batch (the
transformers backend pads every window to 30 s; `tests/test_transcription.py` checks the transcripts are the
same batched or not), so a transcript made beside other utterances is the one made beside these.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_whisperq import progress
from pytest_whisperq.backends import Hypothesis
from pytest_whisperq.cache import DEFINING_SUFFIXES, Cache, checkpoint_fingerprint, package_versions, source_fingerprint
from pytest_whisperq.errors import CacheError
from pytest_whisperq.models.tensors import PICKLE_SUFFIXES

if TYPE_CHECKING:
    from filelock import BaseFileLock

    from pytest_whisperq.backends import Backend
    from pytest_whisperq.data import Utterance

# Bump when the meaning of an entry changes in a way neither the versions nor the backend's code show.
SCHEMA = 2  # 2: one file per utterance, keyed by its audio and language
LIBRARIES = ("pytest-whisperq", "torch", "transformers", "compressed-tensors", "tokenizers", "numpy")
SUFFIX = ".json"
STORE_EVERY = 64  # utterances transcribed between writes to the store: several batches, little lost when stopped


def backend_code() -> str:
    """The plugin's own code that turns audio into transcripts (every backend module, the audio handling, the
    text joining long-form windows): an edit makes the entries other ones, as the built-in converter's and
    the quantizer's keys cover their source."""
    package = Path(__file__).parent
    modules = sorted(path.relative_to(package).as_posix() for path in (package / "backends").glob("*.py"))
    return source_fingerprint(package, (*modules, "audio.py", "text.py"))


def transcriber_inputs(backend: Backend) -> dict[str, Any]:
    """What decides every transcript a backend makes, whatever the utterance: the key of its store."""
    return {
        "schema": SCHEMA,
        "code": backend_code(),
        # pickled weights too: a checkpoint loaded with --whisperq-allow-pickle is defined by them
        "checkpoint": checkpoint_fingerprint(backend.model.path, DEFINING_SUFFIXES + PICKLE_SUFFIXES),
        "decoding": backend.identity(),
        "versions": package_versions(LIBRARIES),
    }


def utterance_key(utterance: Utterance) -> str:
    """What the backend reads of an utterance: its samples (with their dtype and length) and its language."""
    audio = np.ascontiguousarray(utterance.audio)
    digest = hashlib.sha256(f"{utterance.language}\0{audio.dtype.str}\0{audio.shape}\0".encode())
    digest.update(audio.tobytes())
    return digest.hexdigest()[:32]


def _read(path: Path, utterance: Utterance) -> Hypothesis:
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
        return replace(Hypothesis(**{**row, "tokens": tuple(row["tokens"])}), id=utterance.id)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CacheError(f"cached transcript {path} is damaged ({type(error).__name__}: {error}); "
                         "delete that file and run again") from None


def _write(path: Path, hypothesis: Hypothesis) -> None:
    """Atomically: a reader sees the whole transcript or none (a killed run leaves only a temporary)."""
    temporary = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    temporary.write_text(json.dumps({**asdict(hypothesis), "tokens": list(hypothesis.tokens)}), encoding="utf-8")
    os.replace(temporary, path)


def transcribing(backend: Backend, count: int) -> AbstractContextManager[progress.Task]:
    """The progress line of `count` utterances transcribed by `backend` (silent when it ends within a second)."""
    return progress.task(f"transcribing with {backend.model.label} ({backend.name})", total=count,
                         unit="utterances", delay=1.0)


@contextmanager
def _turn(lock: BaseFileLock, transcriber: str) -> Iterator[None]:
    """Hold `lock`; when another process holds it, say so while waiting (it is transcribing with the same model)."""
    from filelock import Timeout

    try:
        lock.acquire(timeout=0)
    except Timeout:
        with progress.task(f"waiting for another process transcribing with {transcriber}", delay=1.0):
            lock.acquire()
    try:
        yield
    finally:
        lock.release()


def cached_transcribe(
    cache: Cache, backend: Backend, utterances: Sequence[Utterance],
) -> tuple[list[Hypothesis], int]:
    """The backend's transcripts of `utterances`: those an identical transcriber made before from the cache, the
    others made now and stored, with their progress shown. Returns them, in order, and how many came from the
    cache. Processes sharing the store take turns transcribing, so none makes one twice."""
    from filelock import FileLock

    store = cache.store_dir("transcripts", f"{backend.name}-{backend.model.path.name}", transcriber_inputs(backend))
    keys = [utterance_key(u) for u in utterances]
    files = {key: store / f"{key}{SUFFIX}" for key in keys}
    found: dict[str, Hypothesis] = {}

    def collect() -> list[Utterance]:
        """Read what the store has; the utterances still missing (each audio once)."""
        missing: dict[str, Utterance] = {}
        for key, utterance in zip(keys, utterances):
            if key in found or key in missing:
                continue
            if files[key].is_file():
                found[key] = _read(files[key], utterance)
            else:
                missing[key] = utterance
        return list(missing.values())

    made: set[str] = set()
    if collect():
        with _turn(FileLock(str(store) + ".lock"), f"{backend.model.label} ({backend.name})"):
            missing = collect()  # another process may have made some while this one waited
            if missing:
                with transcribing(backend, len(missing)):
                    # stored part by part: a run stopped midway keeps what it made (the backends count progress)
                    for start in range(0, len(missing), STORE_EVERY):
                        part = missing[start : start + STORE_EVERY]
                        hypotheses = backend.transcribe(part)
                        if [h.id for h in hypotheses] != [u.id for u in part]:
                            raise CacheError(f"the {backend.name} backend returned transcripts of other utterances "
                                             "than it was given")
                        for utterance, hypothesis in zip(part, hypotheses):
                            key = utterance_key(utterance)
                            _write(files[key], hypothesis)
                            found[key] = hypothesis
                            made.add(key)
    reused = sum(1 for key in keys if key not in made)
    return [replace(found[key], id=u.id) for key, u in zip(keys, utterances)], reused
