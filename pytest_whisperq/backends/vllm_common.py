"""What the vLLM backends (in-process and server) share: Whisper's context length, and advice for
failures whose cause vLLM reports in terms only its developers read."""

from __future__ import annotations

import json
from typing import Any

MAX_MODEL_LEN = 448  # Whisper's decoder context
# VLLM_CPU_KVCACHE_SPACE (GiB) unless the user set it: vLLM on CPU reserves 92% of the memory node
# otherwise and refuses to start on a 24 GB runner.
CPU_KV_CACHE_GIB = "1"

# (text vLLM prints, what it means for a release engineer and what to do)
NO_CPU_INT4_KERNEL = (
    "this vLLM CPU build has no INT4 weight kernel for this processor: vllm-cpu's AVX2 library lacks "
    "cpu_gemm_wna16 (its AVX-512 library has it), so W4A16 checkpoints cannot run on vLLM here. Run the vLLM "
    "checks on an AVX-512 CPU or a GPU runner; --whisperq-backend=transformers still gates accuracy on this machine")
NO_FP4_KERNEL = (
    "this vLLM build has no FP4 kernel here (vllm-cpu 0.32 loads neither NVFP4A16 nor NVFP4; vLLM runs them on "
    "NVIDIA GPUs): run the vLLM checks on a GPU runner; --whisperq-backend=transformers still gates accuracy here")
KNOWN_FAILURES: tuple[tuple[str, str], ...] = (
    ("cpu_gemm_wna16", NO_CPU_INT4_KERNEL),
    ("not implemented for 'Float'",
     "vLLM's INT4 CPU kernel takes bfloat16 or float16 activations only: pass --whisperq-dtype=bfloat16"),
    # measured with vllm-cpu 0.32 (docs/backends.md): it runs W4A16, W8A8 and FP8_DYNAMIC, not these
    ("Failed to find a kernel that can implement the WNA16 linear layer",
     "this vLLM build has no kernel for these weight-only INT weights here (vllm-cpu 0.32 runs 4-bit W4A16, not "
     "W8A16): run the vLLM checks on a GPU runner; --whisperq-backend=transformers still gates accuracy here"),
    ("Marlin FP4 not available", NO_FP4_KERNEL),
    ("Failed to find a kernel that can implement the NVFP4 linear layer", NO_FP4_KERNEL),
    ("static_scaled_fp8_quant",
     "this vLLM build cannot quantize activations with static FP8 scales here (vllm-cpu 0.32 runs FP8_DYNAMIC, not "
     "FP8 with calibrated input scales): run the vLLM checks on a GPU runner; --whisperq-backend=transformers "
     "still gates accuracy here"),
)


def explain(log_text: str) -> str:
    """Advice for each known failure signature found in `log_text` ("" when none is known)."""
    found = [advice for signature, advice in KNOWN_FAILURES if signature in log_text]
    return "".join(f"\nwhat this means: {advice}" for advice in found)


def has_int4_weights(config: dict) -> bool:
    """A compressed-tensors checkpoint with 4-bit weights and no quantized activations (W4A16)."""
    from pytest_whisperq.checks.quant_config import find_quantization_config

    quantization, _ = find_quantization_config(config)
    groups = (quantization or {}).get("config_groups") or {}
    weights = [(group.get("weights") or {}, group.get("input_activations")) for group in groups.values()
               if isinstance(group, dict)]
    return any(args.get("num_bits") == 4 and args.get("type", "int") == "int" and not activations
               for args, activations in weights)


def is_multilingual(model_dir: Any) -> bool:
    config = json.loads((model_dir / "config.json").read_text())
    return int(config.get("vocab_size", 0)) >= 51865


def english_only_server_caveat(label: str) -> str:
    """Why a vLLM server's figures for an English-only checkpoint are not the checkpoint's (docs/backends.md)."""
    return (f"{label} is English-only Whisper, and vLLM's transcription endpoint prompts every model with language "
            "and task tokens (<|startoftranscript|><|en|><|transcribe|><|notimestamps|>) that English-only Whisper "
            "was never trained with (measured on whisper-tiny.en with vLLM 0.32: 2 of 4 read utterances came back "
            "empty, base and quantized alike): this run's figures are what such a server gives its users, not what "
            "the checkpoint can do. Gate it with --whisperq-backend=vllm (in-process, which builds the English-only "
            "prompt) or transformers")
