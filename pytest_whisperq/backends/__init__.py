"""Inference backends behind one interface: load a checkpoint, transcribe utterances."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pytest_whisperq.errors import ConfigError

if TYPE_CHECKING:
    from pytest_whisperq.data import Utterance
    from pytest_whisperq.models.resolve import ResolvedModel


@dataclass(frozen=True)
class Hypothesis:
    id: str
    text: str
    tokens: tuple[int, ...]
    batch_seconds: float  # wall time of the generate() call that produced it
    batch_size: int


class Backend(Protocol):
    name: str
    model: ResolvedModel
    device: str
    dtype: str

    def transcribe(self, utterances: Sequence[Utterance]) -> list[Hypothesis]: ...

    def identity(self) -> dict[str, Any]:
        """Everything besides the checkpoint and the audio that decides the transcripts."""
        ...


def load_backend(name: str, model: ResolvedModel, device: str, dtype: str, batch_size: int,
                 language: str = "en") -> Backend:
    if name == "transformers":
        from pytest_whisperq.backends.transformers_backend import TransformersBackend

        return TransformersBackend(model, device=device, dtype=dtype, batch_size=batch_size, language=language)
    raise ConfigError(f"unknown backend {name!r}")
