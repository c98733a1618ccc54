"""Inference backends behind one interface: load a checkpoint, transcribe utterances."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pytest_whisperq.errors import BackendError, ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_whisperq.data import Utterance
    from pytest_whisperq.models.resolve import ResolvedModel
    from pytest_whisperq.settings import Settings


@dataclass(frozen=True)
class Hypothesis:
    id: str
    text: str
    tokens: tuple[int, ...]
    batch_seconds: float  # wall time of the generate() call that produced it
    batch_size: int
    attempts: int = 1  # requests sent for it: more than one after a transport error was retried


class Backend(Protocol):
    name: str
    model: ResolvedModel
    device: str
    dtype: str
    cacheable: bool  # may its transcripts be reused across runs (keyed by checkpoint content)?

    def transcribe(self, utterances: Sequence[Utterance]) -> list[Hypothesis]: ...

    def identity(self) -> dict[str, Any]:
        """Everything besides the checkpoint and the audio that decides the transcripts."""
        ...

    def close(self) -> None:
        """Release what the backend holds (a server it started is stopped)."""
        ...

    def runs_quantized_weights(self) -> bool | None:
        """Whether the checkpoint's quantized weights are what it computes with (its quantized kernels),
        rather than dense weights made from them at load; None when it cannot know (a remote server)."""
        ...


def load_backend(model: ResolvedModel, settings: Settings, role: str, log_dir: Path) -> Backend:
    """The configured backend for `model` (`role` is "model" or "base": it picks the endpoint URL)."""
    if settings.backend == "transformers":
        from pytest_whisperq.backends.transformers_backend import TransformersBackend

        return TransformersBackend(model, device=settings.device, dtype=settings.dtype,
                                   batch_size=settings.batch_size)
    if settings.backend == "vllm":
        from pytest_whisperq.backends.vllm_offline import VllmBackend

        return VllmBackend(model, dtype=settings.dtype, batch_size=settings.batch_size,
                           memory_fraction=settings.vllm_memory_fraction)
    if settings.backend == "vllm-server":
        from pytest_whisperq.backends.vllm_server import start_vllm_server

        return start_vllm_server(model, settings, log_dir)
    if settings.backend == "openai":
        from pytest_whisperq.backends.openai_server import OpenAIServerBackend, served_model

        url = settings.server_url if role == "model" else settings.base_server_url
        if url is None:
            flag = "--whisperq-server-url" if role == "model" else "--whisperq-base-server-url"
            raise ConfigError(f"--whisperq-backend=openai needs {flag}: the endpoint serving the {role}")
        return OpenAIServerBackend(model, url, settings.served_model_name or served_model(url),
                                   concurrency=settings.concurrency,
                                   request_timeout=settings.request_timeout)
    raise ConfigError(f"unknown backend {settings.backend!r}")


def quantization_method(config: dict[str, Any]) -> str | None:
    """The checkpoint's quantization method (config.json), None for a dense checkpoint."""
    block = config.get("quantization_config") or config.get("compression_config")
    return block.get("quant_method", "compressed-tensors") if isinstance(block, dict) else None


def by_language(utterances: Sequence[Utterance]) -> dict[tuple[str, bool], list[Utterance]]:
    """Utterances grouped by (language, long-form), each group in data order: one forced language per
    batch, and long-form audio apart from single windows."""
    groups: dict[tuple[str, bool], list[Utterance]] = {}
    for utterance in utterances:
        groups.setdefault((utterance.language, utterance.long_form), []).append(utterance)
    return groups


def require_languages(label: str, multilingual: bool, utterances: Sequence[Utterance]) -> None:
    """An English-only checkpoint cannot be asked for another language: say so before decoding anything."""
    if multilingual:
        return
    other = sorted({u.language for u in utterances if u.language != "en"})
    if other:
        count = sum(u.language != "en" for u in utterances)
        raise BackendError(f"{label} is an English-only checkpoint, but {count} utterances are in {', '.join(other)}: "
                           "evaluate it on English speech (leave out --whisperq-multilingual, or give those rows "
                           "language en only if they are English)")
