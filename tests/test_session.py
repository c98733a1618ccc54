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
    device = "cpu"
    dtype = "float32"

    def __init__(self, path: Path) -> None:
        self.model = ResolvedModel(parse_model_spec("whisper-base"), path)
        self.calls = 0

    def transcribe(self, utterances):
        self.calls += 1
        return [Hypothesis(u.id, u.text, (1,), 0.1, len(utterances)) for u in utterances]


def utterances(text: str = "hello") -> list[Utterance]:
    return [Utterance("a", "s", text, np.zeros(1600, np.float32))]


def session(tmp_path) -> WhisperqSession:
    return WhisperqSession(build_settings({"cache_dir": tmp_path}, {}))


def test_transcripts_are_memoised_by_content(tmp_path):
    state, backend = session(tmp_path), CountingBackend(tmp_path)
    state.transcribe(backend, utterances())
    state.transcribe(backend, utterances())  # new objects, same content
    assert backend.calls == 1
    state.transcribe(backend, utterances("other text"))
    assert backend.calls == 2


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
