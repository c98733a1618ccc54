"""Quantization of a Whisper base with llm-compressor, cached by content: any compressed-tensors preset
scheme (W4A16 by default), as the model card's recipe applies it.

The recipe: every encoder and decoder Linear, the output head `proj_out` left alone (Whisper's head is
not called `lm_head`: `ignore=["lm_head"]` would quantize it), saved compressed with the processor
files beside it. INT weights are made by GPTQ (W4A16, W8A16, W8A8, ...; group size and act-order
settable), FP weights (FP8, FP8_DYNAMIC, NVFP4A16, ...) by round-to-nearest with llm-compressor's
QuantizationModifier, as llm-compressor's own examples make them; static activation scales (FP8, NVFP4)
are calibrated on the same speech.

On CPU the calibration runs in float32 (float16 matmuls are several times slower there) and the
quantized model is cast to the recipe's 16-bit dtype before it is packed; on CUDA it runs in float16.
"""

from __future__ import annotations

import hashlib
import json
import re
import resource
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_whisperq import progress
from pytest_whisperq.cache import Cache, checkpoint_fingerprint, package_versions, source_fingerprint
from pytest_whisperq.errors import QuantizeError

if TYPE_CHECKING:
    from pytest_whisperq.data import Utterance

PROVENANCE_NAME = "whisperq-quantization.json"
# Files of the base that the quantized checkpoint carries unchanged.
CARRIED_FILES = ("normalizer.json", "LICENSE.whisper", "preprocessor_config.json")
LIBRARIES = ("llmcompressor", "compressed-tensors", "transformers", "torch")


@dataclass(frozen=True)
class Recipe:
    scheme: str = "W4A16"  # a compressed-tensors preset name
    targets: tuple[str, ...] = ("Linear",)
    ignore: tuple[str, ...] = ("proj_out",)
    pipeline: str = "basic"  # the sequential pipeline cannot trace Whisper (llm-compressor 0.14)
    seed: int = 0
    group_size: int | None = None  # the preset's unless set (schemes quantizing weights in groups)
    actorder: str | None = None  # GPTQ's column order: None (GPTQ's default, static), "static" or "weight"
    dtype: str = "float16"  # the saved model's dtype: float16 or bfloat16

    @property
    def label(self) -> str:
        """e.g. 'W4A16', 'W4A16-G64-weight', 'FP8_DYNAMIC-bfloat16': the cache entry's name."""
        parts = [self.scheme.upper()]
        parts += [f"G{self.group_size}"] if self.group_size else []
        parts += [self.actorder] if self.actorder else []
        parts += [self.dtype] if self.dtype != "float16" else []
        return "-".join(parts)

    def validate(self) -> None:
        """A QuantizeError for a recipe llm-compressor would refuse or misapply, before any model is loaded."""
        from pytest_whisperq.checks.scheme import preset, with_overrides
        from pytest_whisperq.errors import ConfigError

        try:
            scheme = with_overrides(preset(self.scheme), self.group_size)
        except ConfigError as error:
            raise QuantizeError(str(error)) from None
        if self.actorder not in (None, "static", "weight"):
            raise QuantizeError(f"act-order {self.actorder!r}: llm-compressor makes 'static' or 'weight' (compressed-tensors "
                                "0.19 removed 'group')")
        if self.actorder and scheme.weights.type != "int":
            raise QuantizeError(f"act-order is GPTQ's; {scheme.name} has float weights, made by round-to-nearest")
        if self.dtype not in ("float16", "bfloat16"):
            raise QuantizeError(f"dtype {self.dtype!r}: the saved model is float16 or bfloat16")

    @property
    def uses_gptq(self) -> bool:
        """GPTQ for integer weights; round-to-nearest for float ones (FP8, FP4), as llm-compressor's examples do."""
        from pytest_whisperq.checks.scheme import preset

        return preset(self.scheme).weights.type == "int"


def llmcompressor_available() -> bool:
    return find_spec("llmcompressor") is not None


def require_llmcompressor() -> None:
    if not llmcompressor_available():
        raise QuantizeError(
            "quantizing needs llm-compressor, which is not installed: pip install 'pytest-whisperq[quantize]' "
            "(or name an existing checkpoint with --whisperq-model)"
        )


def library_versions() -> dict[str, str]:
    return package_versions(LIBRARIES)


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def refuse_overlap(calibration: Sequence[Utterance], evaluation: Sequence[Utterance]) -> None:
    """Calibrating on the evaluation speech would make the WER gate meaningless."""
    eval_texts = {_words(u.text): u.id for u in evaluation}
    eval_audio = {hashlib.sha256(u.audio.tobytes()).hexdigest(): u.id for u in evaluation}
    clashes = []
    for u in calibration:
        if (other := eval_texts.get(_words(u.text))) is not None:
            clashes.append(f"{u.id} has the same text as evaluation utterance {other}")
        elif (other := eval_audio.get(hashlib.sha256(u.audio.tobytes()).hexdigest())) is not None:
            clashes.append(f"{u.id} has the same audio as evaluation utterance {other}")
    if clashes:
        shown = "; ".join(clashes[:5]) + (f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else "")
        raise QuantizeError(
            f"calibration data overlaps the evaluation data in {len(clashes)} utterances: {shown}. "
            "Calibrate on disjoint speech (the default, fixtures/speech-calib, is)"
        )


def cache_inputs(base_dir: Path, calibration: Sequence[Utterance], recipe: Recipe, device: str) -> dict[str, Any]:
    from pytest_whisperq.data import dataset_fingerprint

    return {
        "base": checkpoint_fingerprint(base_dir),
        "recipe": asdict(recipe),
        "calibration": dataset_fingerprint(calibration),
        "samples": len(calibration),
        "device": device,
        "versions": library_versions(),
        "code": source_fingerprint(Path(__file__).parent, ("quantize.py",)),  # the recipe's application, the saving
    }


def quantize_checkpoint(
    base_dir: Path,
    base_name: str,
    calibration: Sequence[Utterance],
    cache: Cache,
    device: str = "cpu",
    recipe: Recipe = Recipe(),
    evaluation: Sequence[Utterance] = (),
) -> Path:
    """The cached checkpoint of `base_dir` quantized by `recipe` (W4A16 by default) for these inputs, made once."""
    require_llmcompressor()
    recipe.validate()
    if not calibration:
        raise QuantizeError("no calibration utterances")
    refuse_overlap(calibration, evaluation)
    inputs = cache_inputs(base_dir, calibration, recipe, device)
    name = f"{base_name}-{recipe.label}"

    def build(out_dir: Path) -> None:
        began = time.perf_counter()
        algorithm = "GPTQ" if recipe.uses_gptq else "round-to-nearest"
        with progress.task(f"quantizing {base_name} to {recipe.label} ({algorithm}, calibrated on {len(calibration)} "
                           f"utterances, {device}; once, then cached)"):
            threads = run_gptq(base_dir, out_dir, calibration, recipe, device)
        for carried in CARRIED_FILES:
            if (base_dir / carried).is_file() and not (out_dir / carried).exists():
                shutil.copy2(base_dir / carried, out_dir / carried)
        provenance = {
            "base": base_name,
            "base_dir": str(base_dir),
            **inputs,
            "calibration_ids": [u.id for u in calibration],
            # float sums run in another order on another thread count: the bytes differ, the quality does not
            "torch_threads": threads,
            "seconds": round(time.perf_counter() - began, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
        (out_dir / PROVENANCE_NAME).write_text(json.dumps(provenance, indent=2) + "\n")

    return cache.get_or_build("quantized", name, inputs, build)


def build_modifier(recipe: Recipe) -> Any:
    """llm-compressor's modifier for the recipe: the preset as compressed-tensors defines it, with the group size
    set; GPTQ for integer weights (with the act-order set), round-to-nearest for float weights."""
    from compressed_tensors.quantization.quant_scheme import preset_name_to_scheme
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier

    targets, ignore = list(recipe.targets), list(recipe.ignore)
    if recipe.group_size is None:
        groups: dict[str, Any] = {"scheme": recipe.scheme.upper(), "targets": targets}
    else:
        scheme = preset_name_to_scheme(recipe.scheme.upper(), targets)
        scheme.weights.group_size = recipe.group_size
        groups = {"config_groups": {"group_0": scheme}}
    if not recipe.uses_gptq:
        return QuantizationModifier(ignore=ignore, **groups)
    if recipe.actorder is not None:
        groups["actorder"] = recipe.actorder
    return GPTQModifier(ignore=ignore, **groups)


def decoder_prompt(generation_config: Any, language: str = "en") -> list[int]:
    """<|startoftranscript|> [<|en|> <|transcribe|>] <|notimestamps|>, as decoding starts."""
    prompt = [generation_config.decoder_start_token_id]
    if getattr(generation_config, "is_multilingual", False):
        token = f"<|{language}|>"
        if token not in generation_config.lang_to_id:
            raise QuantizeError(f"the calibration data has speech in {language!r}, a language this model has no token "
                                f"for; it knows {', '.join(sorted(t.strip('<|>') for t in generation_config.lang_to_id))}")
        prompt += [generation_config.lang_to_id[token], generation_config.task_to_id["transcribe"]]
    return prompt + [generation_config.no_timestamps_token_id]


def run_gptq(base_dir: Path, out_dir: Path, calibration: Sequence[Utterance], recipe: Recipe, device: str) -> int:
    """One llm-compressor `oneshot` run; writes a compressed checkpoint into `out_dir`. Returns torch's thread
    count, which the bytes depend on (on 2 threads and on 1 the same inputs give other bytes)."""
    import numpy as np
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    calibration_dtype = torch.float16 if device == "cuda" else torch.float32
    torch.manual_seed(recipe.seed)
    processor = WhisperProcessor.from_pretrained(str(base_dir))
    # oneshot re-reads config.name_or_path, so the model must come from a directory.
    model = WhisperForConditionalGeneration.from_pretrained(str(base_dir), dtype=calibration_dtype,
                                                            use_safetensors=True, trust_remote_code=False)
    model.to(device)
    eot = model.generation_config.eos_token_id
    features, decoder_ids = [], []
    multilingual = getattr(model.generation_config, "is_multilingual", False)
    other = sorted({u.language for u in calibration if u.language != "en"})
    if other and not multilingual:
        raise QuantizeError(f"{base_dir} is an English-only model, but the calibration data has {', '.join(other)} "
                            "speech: calibrate it on English speech")
    for utterance in calibration:
        # the decoder sees the prompt it will be run with: this utterance's language token
        prompt = decoder_prompt(model.generation_config, utterance.language)
        features.append(processor.feature_extractor(utterance.audio, sampling_rate=16_000,
                                                    return_tensors="np").input_features[0])
        text_ids = processor.tokenizer.encode(" " + utterance.text.strip(), add_special_tokens=False)
        decoder_ids.append((prompt + text_ids)[: model.config.max_target_positions - 1] + [eot])
    dataset = Dataset.from_dict({"input_features": features, "decoder_input_ids": decoder_ids})

    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        [row] = batch
        return {
            "input_features": torch.tensor(np.asarray(row["input_features"]), dtype=calibration_dtype)[None],
            "decoder_input_ids": torch.tensor(row["decoder_input_ids"])[None],
        }

    modifier = build_modifier(recipe)
    try:
        oneshot(model=model, processor=processor, dataset=dataset, recipe=modifier, data_collator=collate,
                num_calibration_samples=len(calibration), shuffle_calibration_samples=False,
                pipeline=recipe.pipeline, batch_size=1)
    except Exception as error:
        raise QuantizeError(f"llm-compressor failed to quantize {base_dir}: {type(error).__name__}: {error}") from error
    saved_dtype = getattr(torch, recipe.dtype)
    # compressed-tensors keeps FP4's tensor-wide global scales in float32 whatever the model's dtype (as a CUDA run,
    # which never casts, stores them); the cast to the saved dtype must leave them so
    global_scales = {name: value.detach().clone() for name, value in model.named_parameters()
                     if name.endswith("_global_scale")}
    model.to(saved_dtype)
    for name, value in global_scales.items():
        model.get_parameter(name).data = value
    model.config.dtype = saved_dtype
    with warnings.catch_warnings():  # llm-compressor's hooks look like offloading to transformers
        warnings.filterwarnings("ignore", message="Attempting to save a model with offloaded modules")
        model.save_pretrained(str(out_dir), save_compressed=True)
    processor.save_pretrained(str(out_dir))
    for path in out_dir.iterdir():  # safetensors writes 0600; caches may be shared
        path.chmod(0o644)
    return torch.get_num_threads()
