"""Real checkpoints of each scheme the quantize engine makes (llm-compressor on whisper-tiny.en, 8 calibration
utterances, cached): each passes the format checks as the scheme it declares, fails them when another scheme is
named with the deviations listed, loads in transformers and transcribes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_whisperq.checks.format_suite import format_checks
from pytest_whisperq.checks.scheme import resolve_scheme
from pytest_whisperq.models.tensors import CheckpointTensors
from pytest_whisperq.quantize import Recipe

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

# scheme made here -> (declared name, what it stores per Linear beside the scale, a scheme it is not, a deviation named)
MADE = {
    "W4A16-G64-weight": (Recipe(group_size=64, actorder="weight"), "W4A16", "weight_packed",
                         "W8A16", "weights.num_bits: 4, expected 8"),
    "W8A16": (Recipe(scheme="W8A16"), "W8A16", "weight_packed", "W4A16", "weights.num_bits: 8, expected 4"),
    "W8A8": (Recipe(scheme="W8A8"), "W8A8", "weight", "W8A16", "format: 'int-quantized', expected 'pack-quantized'"),
    "FP8_DYNAMIC": (Recipe(scheme="FP8_DYNAMIC"), "FP8_DYNAMIC", "weight", "FP8",
                    "weights.strategy: 'channel', expected 'tensor'"),
    "FP8": (Recipe(scheme="FP8"), "FP8", "weight", "FP8_DYNAMIC", "input_activations.dynamic: False, expected True"),
    "W4A16-bfloat16": (Recipe(dtype="bfloat16"), "W4A16", "weight_packed", "W4A16_ASYM",
                       "weights.symmetric: True, expected False"),
    "NVFP4A16": (Recipe(scheme="NVFP4A16"), "NVFP4A16", "weight_packed", "NVFP4",
                 "input_activations: missing, expected FP4 locally dynamic"),
    "NVFP4": (Recipe(scheme="NVFP4"), "NVFP4", "weight_packed", "W4A16", "weights.type: 'float', expected 'int'"),
}


@pytest.fixture(scope="session", params=sorted(MADE))
def scheme_checkpoint(request, whisper_tiny_en_dir: Path, shared_cache) -> tuple[str, Path]:
    from tests_support import quantize_tiny_en

    return request.param, quantize_tiny_en(whisper_tiny_en_dir, shared_cache, recipe=MADE[request.param][0])


@pytest.mark.slow(cost=30)  # seconds, cold, per scheme: GPTQ or round-to-nearest on tiny.en (conftest.py)
def test_each_scheme_passes_as_declared_and_fails_as_another(scheme_checkpoint, whisper_tiny_en_dir):
    made, path = scheme_checkpoint
    _, declared, stored, other, deviation = MADE[made]
    model, base = CheckpointTensors.open(path), CheckpointTensors.open(whisper_tiny_en_dir)
    scheme = resolve_scheme("auto", model.config)
    assert scheme.name == declared and scheme.source == "declared by the checkpoint"
    results = {r.name: r for r in format_checks(model, base, scheme)}
    assert all(r.ok for r in results.values()), [r.describe() for r in results.values() if not r.ok]
    assert f"model.encoder.layers.0.fc1.{stored}" in model.tensors
    assert results["linears_packed"].observed == "64/64" and f"stored as {declared} (" in results["linears_packed"].detail
    fidelity = results["dequantized_weights_close"]  # the median layer's error over its round-to-nearest error
    assert 0.9 < fidelity.observed < 2.0, fidelity.describe()
    wrong = {r.name: r for r in format_checks(model, base, resolve_scheme(other, model.config)) if not r.ok}
    assert "quantization_config" in wrong and any(deviation in line for line in wrong["quantization_config"].evidence), \
        wrong["quantization_config"].describe()


@pytest.mark.slow(cost=10)  # seconds per scheme: two loads, four utterances each (conftest.py)
def test_each_scheme_loads_and_transcribes_in_transformers(scheme_checkpoint, whisper_tiny_en_dir, openai_assets,
                                                          shared_cache):
    """transformers reads each checkpoint (decompressing it) and it says what the base says, near enough
    (through the transcript cache: a warm run loads nothing)."""
    from pytest_whisperq.backends.transformers_backend import TransformersBackend
    from pytest_whisperq.checks.transcripts import measure_wer
    from pytest_whisperq.data import load_local_dataset
    from pytest_whisperq.models.resolve import ResolvedModel
    from pytest_whisperq.models.spec import parse_model_spec
    from pytest_whisperq.resources import default_eval_dir
    from pytest_whisperq.text import english_normalizer
    from pytest_whisperq.transcript_cache import cached_transcribe

    made, path = scheme_checkpoint
    read = [u for u in load_local_dataset(default_eval_dir()) if u.subset == "read_clean"][:4]
    normalizer = english_normalizer(openai_assets / "english.json")
    wer = {}
    for role, checkpoint in (("model", path), ("base", whisper_tiny_en_dir)):
        backend = TransformersBackend(ResolvedModel(parse_model_spec(str(checkpoint)), checkpoint), "cpu", "float32", 4)
        texts = [h.text for h in cached_transcribe(shared_cache, backend, read)[0]]
        wer[role] = measure_wer([u.id for u in read], [u.subset for u in read], [u.text for u in read], texts,
                                normalizer).wer_percent
        assert all(texts), (role, texts)
    assert wer["model"] <= wer["base"] + 15, (made, wer)


# --- a mutation suite per scheme: each defect rejected by the check that owns it, naming the tensor ---------------

LAYER = "model.encoder.layers.1.fc1"  # tiny.en: [1536, 384]


def _cast(name: str, dtype: str):
    def edit(tensors):
        import torch

        tensors[name] = tensors[name].to(getattr(torch, dtype))
    return edit


def _drop(name: str):
    return lambda tensors: tensors.pop(name)


def _add_zero_point(tensors):
    import torch

    tensors[f"{LAYER}.weight_zero_point"] = torch.zeros(tensors[f"{LAYER}.weight_scale"].shape, dtype=torch.int8)


def _per_tensor_scale(tensors):
    tensors[f"{LAYER}.weight_scale"] = tensors[f"{LAYER}.weight_scale"].max().reshape(1)


def _dense(tensors):
    tensors[f"{LAYER}.weight"] = tensors[f"{LAYER}.weight"].float().half()


def _input_scale(tensors):
    import torch

    tensors[f"{LAYER}.input_scale"] = torch.ones(1, dtype=torch.float16)


def _scales_up(tensors):
    tensors[f"{LAYER}.weight_scale"] = tensors[f"{LAYER}.weight_scale"] * 3


MUTATIONS = {  # made scheme, defect -> (edit, the check that owns it, a line of its evidence)
    ("W8A8", "scale in float32"): (_cast(f"{LAYER}.weight_scale", "float32"), "linears_packed",
                                   f"{LAYER}.weight_scale: F32 [1536, 1], expected F16 [1536, 1]"),
    ("W8A8", "scale missing"): (_drop(f"{LAYER}.weight_scale"), "linears_packed",
                                f"{LAYER}.weight_scale: missing, expected F16 [1536, 1]"),
    ("W8A8", "zero point where symmetric"): (_add_zero_point, "linears_packed",
                                             f"{LAYER}.weight_zero_point: present, expected none (symmetric"),
    ("W8A8", "weight left in 16 bits"): (_dense, "linears_packed",
                                         f"{LAYER}.weight: dense F16 weight, expected I8 values: left unquantized"),
    ("FP8", "activation scale missing"): (_drop(f"{LAYER}.input_scale"), "linears_packed",
                                          f"{LAYER}.input_scale: missing, expected F16 [1]"),
    ("FP8_DYNAMIC", "static activation scale"): (_input_scale, "linears_packed",
                                                 f"{LAYER}.input_scale: present, expected none (its activations are "
                                                 "FP8 dynamic, per token: no calibrated activation scales are stored)"),
    ("FP8_DYNAMIC", "per-tensor scale"): (_per_tensor_scale, "linears_packed",
                                          f"{LAYER}.weight_scale: F16 [1], expected F16 [1536, 1]"),
    ("FP8_DYNAMIC", "scales x3"): (_scales_up, "dequantized_weights_close",
                                   f"{LAYER}: scales 3.000 x what the base's weights give (min-max)"),
    # the engine itself once cast FP4's global scales to the model's dtype (compressed-tensors keeps them in float32)
    ("NVFP4", "global scale in float16"): (_cast(f"{LAYER}.weight_global_scale", "float16"), "linears_packed",
                                           f"{LAYER}.weight_global_scale: F16 [1], expected F32 [1]"),
    ("NVFP4", "activation global scale missing"): (_drop(f"{LAYER}.input_global_scale"), "linears_packed",
                                                   f"{LAYER}.input_global_scale: missing, expected F32 [1]"),
    ("NVFP4A16", "weight global scale missing"): (_drop(f"{LAYER}.weight_global_scale"), "linears_packed",
                                                  f"{LAYER}.weight_global_scale: missing, expected F32 [1]"),
    ("W4A16-bfloat16", "a layer norm in float16"): (_cast("model.encoder.layer_norm.weight", "float16"),
                                                    "untouched_tensors_layout",
                                                    "model.encoder.layer_norm.weight: F16 [384], expected BF16 [384]"),
    ("W4A16-bfloat16", "a bias changed"): (lambda t: t.update({"model.encoder.layers.0.fc1.bias":
                                                               t["model.encoder.layers.0.fc1.bias"] * 1.01}),
                                           "untouched_tensors_equal", "model.encoder.layers.0.fc1.bias: "),
}


@pytest.mark.parametrize(("made", "defect"), sorted(MUTATIONS))
def test_each_scheme_s_defects_are_rejected_by_the_check_that_owns_them(made, defect, whisper_tiny_en_dir, shared_cache,
                                                                       tmp_path):
    from checkpoint_factory import edited_copy_exact
    from tests_support import quantize_tiny_en

    good = quantize_tiny_en(whisper_tiny_en_dir, shared_cache, recipe=MADE[made][0])
    edit, owner, evidence = MUTATIONS[(made, defect)]
    broken = edited_copy_exact(good, tmp_path / "broken", edit)
    model = CheckpointTensors.open(broken)
    failed = {r.name: r for r in format_checks(model, CheckpointTensors.open(whisper_tiny_en_dir),
                                               resolve_scheme(MADE[made][1], model.config)) if not r.ok}
    assert owner in failed, (defect, {n: r.describe() for n, r in failed.items()})
    assert any(evidence in line for line in failed[owner].evidence), failed[owner].describe()
    # a layer stored wrongly cannot be dequantized or fused alike; a re-typed tensor no longer equals the base's
    expected_others = {"linears_packed": {"dequantized_weights_close", "fused_projections_alike"},
                       "untouched_tensors_layout": {"untouched_tensors_equal"}}.get(owner, set())
    assert set(failed) - {owner} <= expected_others, {n: r.describe() for n, r in failed.items()}


# --- the shipped suite, run as a user runs it, on a checkpoint of another scheme ---------------------------------

@pytest.fixture(scope="session")
def tiny_en_w8a8(whisper_tiny_en_dir: Path, shared_cache) -> Path:
    """Made outside the pytester test that uses it: pytester drops the modules a test imports (numpy among them)
    when it ends, and numpy cannot be imported twice in one process."""
    from tests_support import quantize_tiny_en

    return quantize_tiny_en(whisper_tiny_en_dir, shared_cache, recipe=MADE["W8A8"][0])


@pytest.mark.slow(cost=40)  # seconds: two format-only suite runs (conftest.py)
def test_the_suite_gates_a_checkpoint_as_the_scheme_it_declares_and_names_another_s_deviations(run_suite,
                                                                                             tiny_en_w8a8):
    declared = run_suite(f"--whisperq-model={tiny_en_w8a8}", "--whisperq-base=whisper-tiny.en", "-k", "format")
    declared.assert_outcomes(passed=13)
    declared.stdout.fnmatch_lines([
        "  gated as W8A8 (weights INT8, per channel, act-order static; activations INT8 dynamic, per token; "
        "int-quantized) [[]declared by the checkpoint[]]",
        "PASS linears_packed 64/64*", "PASS dequantized_weights_close * x round-to-nearest (limit 2.0 x *"])
    named = run_suite(f"--whisperq-model={tiny_en_w8a8}", "--whisperq-base=whisper-tiny.en", "--whisperq-scheme=W8A16",
                      "-k", "format")
    named.assert_outcomes(passed=11, failed=2)  # the values are still read as declared: fidelity passes
    named.stdout.fnmatch_lines(["*FAIL quantization_config: *", "*format: 'int-quantized', expected 'pack-quantized'*",
                                "*FAIL linears_packed: observed 0/64, limit 64/64*"])
    named.stdout.fnmatch_lines(["  gated as W8A16 (*) [[]--whisperq-scheme[]]"])
