"""The `transformers` backend: batched greedy decoding with `WhisperForConditionalGeneration`, the language
forced per utterance; audio over 30 s is decoded long-form the way transformers does it (sequential
30 s windows moved on by the predicted timestamps), without temperature fallback, so it stays greedy."""

from __future__ import annotations

import json
import pickle
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytest_whisperq import progress
from pytest_whisperq.audio import TARGET_RATE
from pytest_whisperq.backends import Hypothesis, by_language, quantization_method, require_languages
from pytest_whisperq.errors import BackendError, WhisperqError
from pytest_whisperq.hardware import cpu_kernels

if TYPE_CHECKING:
    from pytest_whisperq.data import Utterance
    from pytest_whisperq.models.resolve import ResolvedModel


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise BackendError("--whisperq-device=cuda but torch sees no CUDA device; use --whisperq-device=cpu or auto")
    return requested


def resolve_dtype(requested: str, device: str) -> str:
    if requested == "auto":
        return "float16" if device == "cuda" else "float32"
    return requested


class TransformersBackend:
    name = "transformers"
    cacheable = True

    def __init__(self, model: ResolvedModel, device: str = "auto", dtype: str = "auto", batch_size: int = 8) -> None:
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a per-tensor bar is noise in CI logs

        self.model = model
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = batch_size
        config = json.loads((model.path / "config.json").read_text())
        kwargs: dict[str, Any] = {"dtype": getattr(torch, self.dtype), "trust_remote_code": False,
                                  "use_safetensors": any(model.path.glob("*.safetensors"))}
        method = quantization_method(config)
        if method == "compressed-tensors":
            from transformers import CompressedTensorsConfig

            # generate() calls the encoder directly, which fails on still-compressed Linears
            # (transformers 5.17 / compressed-tensors 0.19); decompress at load instead.
            kwargs["quantization_config"] = CompressedTensorsConfig(dequantize=True)
        elif method is not None:
            raise BackendError(f"{model.label}: quantization method {method!r} is not supported; expected compressed-tensors")
        try:
            self.processor = WhisperProcessor.from_pretrained(str(model.path), trust_remote_code=False)
            with warnings.catch_warnings():  # "loading attributes ... will be overwritten": intended
                warnings.filterwarnings("ignore", message="You passed `quantization_config`")
                self.whisper = WhisperForConditionalGeneration.from_pretrained(str(model.path), **kwargs)
        except WhisperqError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as error:
            raise BackendError(f"{model.label}: transformers could not load the checkpoint: {error}") from error
        # in the dtype asked for: compressed-tensors decompresses some formats into another (NVFP4 into bfloat16,
        # measured with 0.19), and a float32 run would then fail on its first matmul
        self.whisper.to(device=self.device, dtype=getattr(torch, self.dtype)).eval()
        self.multilingual = bool(getattr(self.whisper.generation_config, "is_multilingual", False))

    def _generate_kwargs(self, language: str, long_form: bool = False) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"do_sample": False, "num_beams": 1, "return_timestamps": long_form}
        if long_form:  # sequential long-form: each window on its own (no prompt from the last), no fallback
            kwargs.update(condition_on_prev_tokens=False)
        if self.multilingual:  # English-only models reject language/task arguments
            kwargs.update(language=language, task="transcribe")
        return kwargs

    def close(self) -> None:
        pass  # nothing outside this process

    def runs_quantized_weights(self) -> bool:
        return False  # a compressed-tensors checkpoint is dequantized to dense weights at load (see __init__)

    def identity(self) -> dict[str, Any]:
        import torch

        # Kernels differ between GPU models and CUDA versions, and between CPUs' instruction sets (AVX2, AVX-512,
        # AMX), and greedy decoding can follow their rounding.
        accelerator = ((torch.cuda.get_device_name(), torch.version.cuda) if self.device == "cuda"
                       else cpu_kernels() if self.device == "cpu" else None)
        # the language is per utterance, in the data's fingerprint; long-form decoding is part of the code
        return {"backend": self.name, "device": self.device, "accelerator": accelerator, "dtype": self.dtype,
                "batch_size": self.batch_size, "multilingual": self.multilingual,
                "generate": self._generate_kwargs("<per utterance>"),
                "long_form": self._generate_kwargs("<per utterance>", long_form=True)}

    def transcribe(self, utterances: Sequence[Utterance]) -> list[Hypothesis]:
        require_languages(self.model.label, self.multilingual, utterances)
        found: dict[str, Hypothesis] = {}
        for (language, long_form), group in by_language(utterances).items():
            for start in range(0, len(group), self.batch_size):
                for hypothesis in self._generate(group[start : start + self.batch_size], language, long_form):
                    found[hypothesis.id] = hypothesis
                progress.advance(len(group[start : start + self.batch_size]))
        return [found[u.id] for u in utterances]

    def detect_languages(self, utterances: Sequence[Utterance]) -> list[str]:
        """The language Whisper itself hears in each utterance (its first 30 s), without a forced one."""
        import torch

        if not self.multilingual:
            raise BackendError(f"{self.model.label} is an English-only checkpoint: it has no language tokens to "
                               "identify a language with; leave out --whisperq-language-id")
        tokenizer = self.processor.tokenizer
        found: list[str] = []
        for start in range(0, len(utterances), self.batch_size):
            batch = utterances[start : start + self.batch_size]
            features = self.processor.feature_extractor([u.audio for u in batch], sampling_rate=TARGET_RATE,
                                                        return_tensors="pt")
            inputs = features.input_features.to(self.device, dtype=getattr(torch, self.dtype))
            with torch.inference_mode():
                tokens = self.whisper.detect_language(inputs).reshape(-1).tolist()
            found += [tokenizer.convert_ids_to_tokens(t).strip("<|>") for t in tokens]
        return found

    def _generate(self, batch: Sequence[Utterance], language: str, long_form: bool) -> list[Hypothesis]:
        import torch

        tokenizer = self.processor.tokenizer
        special = set(tokenizer.all_special_ids)
        first_timestamp = tokenizer.convert_tokens_to_ids("<|0.00|>")
        whole = {"truncation": False, "padding": "longest"} if long_form else {}  # long-form: every frame, not 30 s
        features = self.processor.feature_extractor(
            [u.audio for u in batch], sampling_rate=TARGET_RATE, return_tensors="pt", return_attention_mask=True, **whole
        )
        inputs = features.input_features.to(self.device, dtype=getattr(torch, self.dtype))
        mask = features.attention_mask.to(self.device)
        began = time.perf_counter()
        with torch.inference_mode():
            output = self.whisper.generate(inputs, attention_mask=mask, **self._generate_kwargs(language, long_form))
        if self.device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        sequences = output.sequences if hasattr(output, "sequences") else output
        hypotheses = []
        for utterance, row in zip(batch, sequences.tolist()):
            tokens = tuple(t for t in row if t not in special and not (isinstance(first_timestamp, int) and t >= first_timestamp))
            text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            hypotheses.append(Hypothesis(utterance.id, text, tokens, seconds, len(batch)))
        return hypotheses
