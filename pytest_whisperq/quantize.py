"""W4A16 GPTQ quantization of a Whisper base with llm-compressor, cached by content.

The recipe is the model card's: GPTQ, INT4 symmetric weights in groups of 128, every encoder and
decoder Linear, the output head `proj_out` left alone (Whisper's head is not called `lm_head`:
`ignore=["lm_head"]` would quantize it), saved in compressed-tensors `pack-quantized` form with the
processor files beside it.

On CPU the calibration runs in float32 (float16 matmuls are several times slower there) and the
quantized model is cast to float16 before it is packed, so the checkpoint has fp16 scales and an
fp16 model dtype either way; on CUDA it runs in float16 throughout.
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
    scheme: str = "W4A16"
    targets: tuple[str, ...] = ("Linear",)
    ignore: tuple[str, ...] = ("proj_out",)
    pipeline: str = "basic"  # the sequential pipeline cannot trace Whisper (llm-compressor 0.14)
    seed: int = 0


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


def quantize_w4a16(
    base_dir: Path,
    base_name: str,
    calibration: Sequence[Utterance],
    cache: Cache,
    device: str = "cpu",
    recipe: Recipe = Recipe(),
    evaluation: Sequence[Utterance] = (),
) -> Path:
    """The cached W4A16 checkpoint of `base_dir` for these inputs, made once."""
    require_llmcompressor()
    if not calibration:
        raise QuantizeError("no calibration utterances")
    refuse_overlap(calibration, evaluation)
    inputs = cache_inputs(base_dir, calibration, recipe, device)
    name = f"{base_name}-W4A16"

    def build(out_dir: Path) -> None:
        began = time.perf_counter()
        with progress.task(f"quantizing {base_name} to W4A16 (GPTQ on {len(calibration)} calibration utterances, "
                           f"{device}; once, then cached)"):
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
    from llmcompressor.modifiers.quantization import GPTQModifier
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

    modifier = GPTQModifier(targets=list(recipe.targets), scheme=recipe.scheme, ignore=list(recipe.ignore))
    try:
        oneshot(model=model, processor=processor, dataset=dataset, recipe=modifier, data_collator=collate,
                num_calibration_samples=len(calibration), shuffle_calibration_samples=False,
                pipeline=recipe.pipeline, batch_size=1)
    except Exception as error:
        raise QuantizeError(f"llm-compressor failed to quantize {base_dir}: {type(error).__name__}: {error}") from error
    model.to(torch.float16)
    model.config.dtype = torch.float16
    with warnings.catch_warnings():  # llm-compressor's hooks look like offloading to transformers
        warnings.filterwarnings("ignore", message="Attempting to save a model with offloaded modules")
        model.save_pretrained(str(out_dir), save_compressed=True)
    processor.save_pretrained(str(out_dir))
    for path in out_dir.iterdir():  # safetensors writes 0600; caches may be shared
        path.chmod(0o644)
    return torch.get_num_threads()
