"""The quantize fixture's engine: llm-compressor (GPTQ for INT weights, round-to-nearest for FP), cached by content."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pytest_whisperq import quantize
from pytest_whisperq.cache import Cache, sha256_file
from pytest_whisperq.data import Utterance, load_local_dataset
from pytest_whisperq.errors import QuantizeError
from pytest_whisperq.quantize import Recipe, cache_inputs, quantize_checkpoint, refuse_overlap
from pytest_whisperq.resources import default_calib_dir, default_eval_dir


@pytest.fixture(scope="module")
def calibration() -> list[Utterance]:
    return load_local_dataset(default_calib_dir())


@pytest.fixture(scope="module")
def evaluation() -> list[Utterance]:
    return load_local_dataset(default_eval_dir())


# --- calibration data ------------------------------------------------------------------------

def test_shipped_calibration_speech_is_disjoint_from_the_evaluation_speech(calibration, evaluation):
    assert len(calibration) == 32
    refuse_overlap(calibration, evaluation)  # must not raise
    assert "CC-BY-SA-3.0" in (default_calib_dir() / "NOTICE").read_text()


def test_calibrating_on_evaluation_speech_is_refused(calibration, evaluation):
    same_text = Utterance("calib-x", "c", evaluation[3].text.upper() + "!", np.zeros(160, np.float32))
    same_audio = Utterance("calib-y", "c", "some other words", evaluation[7].audio.copy())
    with pytest.raises(QuantizeError, match=rf"overlaps the evaluation data in 2 utterances: calib-x has the "
                                            rf"same text as evaluation utterance {evaluation[3].id}"):
        refuse_overlap([*calibration[:4], same_text, same_audio], evaluation)


# --- cache key -------------------------------------------------------------------------------

def _fake_base(directory: Path) -> Path:
    directory.mkdir()
    (directory / "config.json").write_text('{"model_type": "whisper"}')
    (directory / "model.safetensors").write_bytes(b"weights")
    return directory


def test_every_input_changes_the_cache_key(tmp_path, calibration, monkeypatch):
    base = _fake_base(tmp_path / "base")
    reference = cache_inputs(base, calibration[:4], Recipe(), "cpu")
    assert cache_inputs(base, calibration[:4], Recipe(), "cpu") == reference  # a repeat is the same
    other_base = _fake_base(tmp_path / "other")
    (other_base / "model.safetensors").write_bytes(b"weights, one changed")
    variants = {
        "base weights": cache_inputs(other_base, calibration[:4], Recipe(), "cpu"),
        "recipe": cache_inputs(base, calibration[:4], replace(Recipe(), ignore=("lm_head",)), "cpu"),
        "calibration content": cache_inputs(base, calibration[4:8], Recipe(), "cpu"),
        "sample count": cache_inputs(base, calibration[:5], Recipe(), "cpu"),
        "device": cache_inputs(base, calibration[:4], Recipe(), "cuda"),
        "scheme": cache_inputs(base, calibration[:4], Recipe(scheme="W8A8"), "cpu"),
        "group size": cache_inputs(base, calibration[:4], Recipe(group_size=64), "cpu"),
        "act-order": cache_inputs(base, calibration[:4], Recipe(actorder="weight"), "cpu"),
        "dtype": cache_inputs(base, calibration[:4], Recipe(dtype="bfloat16"), "cpu"),
    }
    monkeypatch.setattr(quantize, "library_versions", lambda: {"llmcompressor": "0.15.0"})
    variants["library versions"] = cache_inputs(base, calibration[:4], Recipe(), "cpu")
    cache = Cache(tmp_path / "cache")
    directories = {name: cache.entry_dir("quantized", "b", inputs) for name, inputs in variants.items()}
    reference_dir = cache.entry_dir("quantized", "b", reference)
    assert all(d != reference_dir for d in directories.values()), directories
    assert len(set(directories.values())) == len(variants)


def test_a_repeat_reuses_and_a_failed_run_leaves_nothing(tmp_path, calibration, monkeypatch):
    base, calls = _fake_base(tmp_path / "base"), []

    def fake_gptq(base_dir, out_dir, utterances, recipe, device):
        calls.append(len(utterances))
        (out_dir / "model.safetensors").write_bytes(b"packed")
        if len(utterances) == 3:
            raise QuantizeError("killed half way")
        return 1

    monkeypatch.setattr(quantize, "run_gptq", fake_gptq)
    monkeypatch.setattr(quantize, "require_llmcompressor", lambda: None)
    cache = Cache(tmp_path / "cache")
    first = quantize_checkpoint(base, "b", calibration[:2], cache)
    assert quantize_checkpoint(base, "b", calibration[:2], cache) == first and calls == [2]
    provenance = json.loads((first / "whisperq-quantization.json").read_text())
    assert provenance["samples"] == 2 and provenance["calibration_ids"] == [u.id for u in calibration[:2]]
    assert provenance["torch_threads"] == 1
    with pytest.raises(QuantizeError, match="killed half way"):
        quantize_checkpoint(base, "b", calibration[:3], cache)
    assert sorted(p.name for p in (tmp_path / "cache" / "quantized").iterdir() if p.is_dir()) == [first.name]


@pytest.mark.parametrize(("recipe", "message"), [
    (Recipe(scheme="W9A16"), "unknown quantization scheme 'W9A16'"),
    (Recipe(scheme="W8A8", group_size=64), "W8A8 quantizes weights INT8, per channel, not in groups"),
    (Recipe(actorder="group"), "act-order 'group': llm-compressor makes 'static' or 'weight'"),
    (Recipe(scheme="FP8_DYNAMIC", actorder="weight"), "act-order is GPTQ's; FP8_DYNAMIC has float weights"),
    (Recipe(dtype="float32"), "dtype 'float32': the saved model is float16 or bfloat16"),
])
def test_a_recipe_llm_compressor_would_refuse_is_refused_before_loading_anything(recipe, message, tmp_path, calibration,
                                                                               monkeypatch):
    monkeypatch.setattr(quantize, "require_llmcompressor", lambda: None)
    monkeypatch.setattr(quantize, "run_gptq", lambda *args: pytest.fail("quantized an invalid recipe"))
    with pytest.raises(QuantizeError, match=message):
        quantize_checkpoint(_fake_base(tmp_path / "b"), "b", calibration[:2], Cache(tmp_path / "c"), recipe=recipe)


def test_recipes_name_their_cache_entries():
    assert [Recipe().label, Recipe(scheme="w8a8").label, Recipe(group_size=64, actorder="weight").label,
            Recipe(scheme="FP8_DYNAMIC", dtype="bfloat16").label] == [
        "W4A16", "W8A8", "W4A16-G64-weight", "FP8_DYNAMIC-bfloat16"]
    assert Recipe().uses_gptq and Recipe(scheme="W8A8").uses_gptq and not Recipe(scheme="FP8").uses_gptq


def test_missing_llmcompressor_is_a_clear_error(tmp_path, calibration, monkeypatch):
    monkeypatch.setattr(quantize, "llmcompressor_available", lambda: False)
    with pytest.raises(QuantizeError, match=r"pip install 'pytest-whisperq\[quantize\]'"):
        quantize_checkpoint(_fake_base(tmp_path / "b"), "b", calibration[:2], Cache(tmp_path / "c"))


# --- real quantization -------------------------------------------------------------------------

def format_facts(checkpoint: Path) -> dict:
    """The W4A16 pack-quantized facts of STACK.md, read from the files (no torch)."""
    from safetensors import safe_open

    config = json.loads((checkpoint / "config.json").read_text())
    with safe_open(str(checkpoint / "model.safetensors"), "np") as handle:
        tensors = {name: handle.get_slice(name) for name in handle.keys()}
        shapes = {name: tuple(s.get_shape()) for name, s in tensors.items()}
        dtypes = {name: s.get_dtype() for name, s in tensors.items()}
        declared = {n: handle.get_tensor(n).tolist() for n in shapes if n.endswith(".weight_shape")}
    packed = sorted(n.removesuffix(".weight_packed") for n in shapes if n.endswith(".weight_packed"))
    return {"config": config, "shapes": shapes, "dtypes": dtypes, "packed": packed, "declared": declared}


def assert_w4a16(checkpoint: Path, expected_linears: int) -> None:
    facts = format_facts(checkpoint)
    q = facts["config"]["quantization_config"]
    assert (q["quant_method"], q["format"], q["quantization_status"]) == ("compressed-tensors", "pack-quantized", "compressed")
    [group] = q["config_groups"].values()
    assert group["targets"] == ["Linear"] and group["input_activations"] is None
    weights = group["weights"]
    assert (weights["num_bits"], weights["type"], weights["symmetric"], weights["strategy"], weights["group_size"]) == (4, "int", True, "group", 128)
    assert q["ignore"] == ["proj_out"] and facts["config"]["dtype"] == "float16"
    assert facts["config"]["tie_word_embeddings"] is True
    assert len(facts["packed"]) == expected_linears
    shapes, dtypes = facts["shapes"], facts["dtypes"]
    for name in facts["packed"]:
        out_features, in_features = facts["declared"][f"{name}.weight_shape"]
        assert shapes[f"{name}.weight_packed"] == (out_features, in_features // 8) and dtypes[f"{name}.weight_packed"] == "I32"
        assert shapes[f"{name}.weight_scale"] == (out_features, in_features // 128) and dtypes[f"{name}.weight_scale"] == "F16"
        assert f"{name}.weight" not in shapes and f"{name}.weight_zero_point" not in shapes
    assert not any(n.startswith("proj_out") for n in shapes)  # tied to embed_tokens, not packed
    assert dtypes["model.decoder.embed_tokens.weight"] == "F16"


@pytest.mark.slow
def test_whisper_tiny_en_quantizes_reproducibly(whisper_tiny_en_dir, tiny_en_w4a16, calibration, evaluation, tmp_path):
    """Byte for byte, given torch's thread count: the shared cache's copy may have been made by another process
    with another share of the cores (on 2 threads and on 1 the bytes differ: float sums in another order)."""
    import torch

    first = tiny_en_w4a16  # 8 calibration utterances, in the shared cache
    assert_w4a16(first, expected_linears=4 * 6 + 4 * 10)
    made_with = json.loads((first / "whisperq-quantization.json").read_text())["torch_threads"]
    threads = torch.get_num_threads()
    torch.set_num_threads(made_with)
    try:
        again = quantize_checkpoint(whisper_tiny_en_dir, "whisper-tiny.en", calibration[:8], Cache(tmp_path),
                               evaluation=evaluation)
    finally:
        torch.set_num_threads(threads)
    assert again != first
    assert sha256_file(again / "model.safetensors") == sha256_file(first / "model.safetensors")
    shutil.rmtree(again)


@pytest.mark.slow(cost=280)  # seconds, cold: the order under xdist (conftest.py)
def test_whisper_base_w4a16_has_the_card_format_and_transcribes(whisper_base_dir, whisper_base_w4a16, evaluation, openai_assets,
                                                                shared_cache):
    """Transcribed through the shared transcript cache, as the suite transcribes (same backend settings): what the
    whole-suite test made of this checkpoint serves here, and the other way round."""
    from pytest_whisperq.backends.transformers_backend import TransformersBackend
    from pytest_whisperq.checks.transcripts import measure_wer
    from pytest_whisperq.models.resolve import ResolvedModel
    from pytest_whisperq.models.spec import parse_model_spec
    from pytest_whisperq.text import english_normalizer
    from pytest_whisperq.transcript_cache import cached_transcribe

    from pytest_whisperq.checks.format_suite import format_checks
    from pytest_whisperq.models.tensors import CheckpointTensors

    checkpoint = whisper_base_w4a16  # 32 calibration utterances, in the shared cache
    assert_w4a16(checkpoint, expected_linears=96)
    format_results = format_checks(CheckpointTensors.open(checkpoint), CheckpointTensors.open(whisper_base_dir))
    assert all(r.ok for r in format_results), [r.describe() for r in format_results if not r.ok]
    backend = TransformersBackend(ResolvedModel(parse_model_spec(str(checkpoint)), checkpoint), "cpu", "float32", 8)
    read = [u for u in evaluation if u.subset in ("read_librivox", "read_clean")]
    hypotheses, _ = cached_transcribe(shared_cache, backend, read)
    report = measure_wer([u.id for u in read], [u.subset for u in read], [u.text for u in read],
                         [h.text for h in hypotheses], english_normalizer(openai_assets / "english.json"))
    assert all(h.text for h in hypotheses)
    assert report.wer_percent <= 10.0, [(u.id, u.hypothesis) for u in report.worst(3)]


@pytest.mark.parametrize(("args", "message"), [
    (["--scheme", "W9A16"], "error: --scheme: unknown quantization scheme 'W9A16'"),
    (["--samples", "0"], "error: --samples: must be at least 1, got 0"),
    (["--group-size", "x"], "error: --group-size: 'x' is not an integer"),
])
def test_the_quantize_command_names_its_own_bad_argument(args, message, tmp_path, capsys):
    from pytest_whisperq.__main__ import main

    assert main(["quantize", "whisper-base", str(tmp_path / "out"), *args]) == 2
    assert capsys.readouterr().err.startswith(message) and not (tmp_path / "out").exists()
