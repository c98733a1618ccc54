"""Session state: expensive work is done once per run, failures included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_whisperq.backends import Hypothesis
from pytest_whisperq.data import Utterance
from pytest_whisperq.errors import ConfigError, QuantizeError
from pytest_whisperq.models.resolve import ResolvedModel
from pytest_whisperq.models.spec import parse_model_spec
from pytest_whisperq.session import WhisperqSession
from pytest_whisperq.settings import build_settings


class CountingBackend:
    name = "fake"
    cacheable = True
    device = "cpu"
    dtype = "float32"

    def __init__(self, path: Path, batch_size: int = 8) -> None:
        self.model = ResolvedModel(parse_model_spec("whisper-base"), path)
        self.batch_size = batch_size
        self.calls = 0

    def identity(self):
        return {"backend": self.name, "batch_size": self.batch_size}

    def transcribe(self, utterances):
        self.calls += 1
        return [Hypothesis(u.id, u.text, (1,), 0.1, len(utterances)) for u in utterances]


def utterances(text: str = "hello", level: float = 0.0) -> list[Utterance]:
    return [Utterance("a", "s", text, np.full(1600, level, np.float32))]


def session(tmp_path) -> WhisperqSession:
    return WhisperqSession(build_settings({"cache_dir": tmp_path}, {}))


def test_transcripts_are_memoised_by_content(tmp_path):
    state, backend = session(tmp_path), CountingBackend(tmp_path)
    state.transcribe(backend, utterances())
    state.transcribe(backend, utterances())  # new objects, same content
    assert backend.calls == 1
    state.transcribe(backend, utterances("other text"))  # the reference text is not what the model hears
    assert backend.calls == 1
    state.transcribe(backend, utterances(level=0.5))  # other audio
    assert backend.calls == 2


def test_transcripts_are_reused_across_runs_only_for_identical_content(tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"weights v1")
    cache = tmp_path / "cache"
    first = WhisperqSession(build_settings({"cache_dir": cache}, {}))
    backend = CountingBackend(checkpoint)
    hypotheses = first.transcribe(backend, utterances())
    assert backend.calls == 1 and list(first.transcript_sources.values()) == [(1, 0)]

    second = WhisperqSession(build_settings({"cache_dir": cache}, {}))  # a later run
    assert second.transcribe(backend, utterances()) == hypotheses
    assert backend.calls == 1 and list(second.transcript_sources.values()) == [(1, 1)]

    batch4 = CountingBackend(checkpoint, 4)  # other decoding settings
    WhisperqSession(build_settings({"cache_dir": cache}, {})).transcribe(batch4, utterances())
    assert batch4.calls == 1
    (checkpoint / "model.safetensors").write_bytes(b"weights v2")  # same path and size, new content
    third = WhisperqSession(build_settings({"cache_dir": cache}, {}))
    counting = CountingBackend(checkpoint)
    third.transcribe(counting, utterances())
    assert counting.calls == 1 and list(third.transcript_sources.values()) == [(1, 0)]
    entries = [p for p in (cache / "transcripts").iterdir() if p.is_dir()]
    assert len(entries) == 3  # v1, v1 with batch 4, v2


def test_a_damaged_cache_entry_is_a_clear_error(tmp_path):
    from pytest_whisperq.errors import CacheError

    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    cache = tmp_path / "cache"
    WhisperqSession(build_settings({"cache_dir": cache}, {})).transcribe(CountingBackend(checkpoint), utterances())
    [entry] = [p for p in (cache / "transcripts").iterdir() if p.is_dir()]
    [transcript] = [p for p in entry.glob("*.json") if not p.name.startswith(".")]  # one file per utterance
    transcript.write_text('{"id": "a", "te')
    with pytest.raises(CacheError, match=r"is damaged \(JSONDecodeError: .*delete that file and run again"):
        WhisperqSession(build_settings({"cache_dir": cache}, {})).transcribe(CountingBackend(checkpoint), utterances())


def test_failures_are_remembered_not_retried(tmp_path):
    state, attempts = session(tmp_path), []

    def broken():
        attempts.append(1)
        raise ConfigError("broken checkpoint")

    for _ in range(3):
        with pytest.raises(ConfigError, match="broken checkpoint"):
            state._once("key", broken)
    assert len(attempts) == 1


def test_no_model_and_no_llmcompressor_says_what_to_do(tmp_path, monkeypatch):
    from pytest_whisperq import quantize

    monkeypatch.setattr(quantize, "llmcompressor_available", lambda: False)
    with pytest.raises(QuantizeError, match=r"--whisperq-model|pytest-whisperq\[quantize\]"):
        session(tmp_path).resolved("model")


class TimedBackend(CountingBackend):
    """Answers each utterance after `seconds`; a role's speed, and whether it computes with quantized weights."""

    def __init__(self, path: Path, name: str, seconds: float, quantized: bool | None = True, retry_first: bool = False):
        super().__init__(path)
        self.name, self.seconds, self.quantized, self.retry_first, self.log = name, seconds, quantized, retry_first, []

    def runs_quantized_weights(self):
        return self.quantized

    def transcribe(self, utterances):
        import time

        self.calls += 1
        self.log.append(len(utterances))
        time.sleep(self.seconds * len(utterances))
        return [Hypothesis(u.id, u.text, (1,), self.seconds, 1, attempts=2 if self.retry_first and i == 0 else 1)
                for i, u in enumerate(utterances)]


def throughput_session(tmp_path, base, model, *options):
    from types import SimpleNamespace

    state = WhisperqSession(build_settings({"cache_dir": tmp_path, "requests": 2, "rounds": 3, "warmup": 1}, {}))
    state.backend = lambda role, name=None: base if role == "base" else model
    state.eval_data = lambda: utterances()
    config = {"quantization_config": {"quant_method": "compressed-tensors"}}
    state.tensors = lambda role: SimpleNamespace(config=config)
    return state


def test_throughput_rounds_interleave_base_and_model_and_are_measured_once(tmp_path):
    order = []
    base, model = TimedBackend(tmp_path, "base", 0.001), TimedBackend(tmp_path, "model", 0.001)
    for backend in (base, model):
        original = backend.transcribe
        backend.transcribe = lambda u, b=backend, o=original: (order.append(b.name), o(u))[1]
    state = throughput_session(tmp_path, base, model)
    rounds = state.throughput_rounds()
    # warm-up each, then rounds alternating who goes first, so drift falls on both alike
    assert order == ["base", "model", "base", "model", "model", "base", "base", "model"]
    assert len(rounds.base) == len(rounds.model) == 3 and rounds.not_comparable is None
    assert all(r.requests == 2 for r in rounds.base + rounds.model) and base.log[0] == 1  # one warm-up request
    assert state.throughput_rounds() is rounds and len(order) == 8


def test_throughput_on_dense_compute_is_one_round_each_and_says_why(tmp_path):
    base, model = TimedBackend(tmp_path, "transformers", 0.0, False), TimedBackend(tmp_path, "transformers", 0.0, False)
    rounds = throughput_session(tmp_path, base, model).throughput_rounds()
    assert len(rounds.base) == len(rounds.model) == 1
    assert "dequantizes the checkpoint to dense weights" in rounds.not_comparable


def test_a_throughput_measurement_with_retried_requests_fails_and_is_not_repeated(tmp_path):
    """The session counts each request that needed a transport retry; the measurement then fails,
    once, and later callers get the same figures instead of a fresh attempt."""
    from pytest_whisperq.checks.throughput import check_measured

    base = TimedBackend(tmp_path, "base", 0.0)
    model = TimedBackend(tmp_path, "model", 0.0, retry_first=True)
    state = throughput_session(tmp_path, base, model)
    measured = state.throughput_rounds().combined("model")
    assert measured.retried == 3  # one a round
    result = check_measured(measured)
    assert not result.ok and "requests needed a transport retry" in result.detail
    calls = model.calls
    assert state.throughput_rounds().combined("model") == measured and model.calls == calls
