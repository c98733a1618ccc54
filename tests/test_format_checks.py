"""The format checks on real checkpoints: good ones pass, each defect built from a good one is
rejected by the check that owns it, with a message naming the tensor or key and what was expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from checkpoint_factory import edited_copy, packed_linear, set_linear, write_checkpoint, load_all

from pytest_whisperq.checks.fidelity import dequantized_weight
from pytest_whisperq.checks.checkpoint_format import Linear
from pytest_whisperq.checks.format_suite import format_checks
from pytest_whisperq.checks.packing import pack_int32
from pytest_whisperq.checks.scheme import preset, resolve_scheme
from pytest_whisperq.models.tensors import CheckpointTensors
from pytest_whisperq.results import CheckResult

pytestmark = pytest.mark.slow

LAYER = "model.encoder.layers.1.fc1"  # tiny.en: [1536, 384]
GROUP = "config_groups.group_0"
FIRST = "model.decoder.layers.0.encoder_attn.k_proj"  # listed first when every layer is wrong: [384, 384]


def results(model_dir: Path, base_dir: Path, scheme: str = "W4A16") -> dict[str, CheckResult]:
    """The format checks with the scheme named (as --whisperq-scheme W4A16), or declared under "auto"."""
    model = CheckpointTensors.open(model_dir)
    expected = resolve_scheme(scheme, model.config)
    return {r.name: r for r in format_checks(model, CheckpointTensors.open(base_dir), expected)}


def failing(model_dir: Path, base_dir: Path, scheme: str = "W4A16") -> dict[str, CheckResult]:
    return {name: r for name, r in results(model_dir, base_dir, scheme).items() if not r.ok}


def text(result: CheckResult) -> str:
    return result.describe()


@pytest.fixture(scope="module")
def good(tiny_en_w4a16: Path) -> Path:
    return tiny_en_w4a16


@pytest.mark.parametrize("scheme", ["W4A16", "auto"])
def test_a_good_checkpoint_passes_every_format_check(good, whisper_tiny_en_dir, scheme):
    outcome = results(good, whisper_tiny_en_dir, scheme)
    assert len(outcome) == 10 and all(r.ok for r in outcome.values()), [text(r) for r in outcome.values() if not r.ok]
    assert outcome["linears_packed"].observed == "64/64"
    assert "103 unquantized tensors" in outcome["untouched_tensors_equal"].detail


def test_sharded_copy_of_a_good_checkpoint_passes(good, whisper_tiny_en_dir, tmp_path):
    config, tensors = load_all(good)
    sharded = write_checkpoint(tmp_path / "sharded", config, tensors, like=good, shards=3)
    assert CheckpointTensors.open(sharded).index is not None
    assert not failing(sharded, whisper_tiny_en_dir)


def test_the_real_lm_head_mistake_is_caught(whisper_tiny_en_dir, tiny_en_lm_head_mistake):
    """llm-compressor with ignore=["lm_head"], as other models' recipes say: Whisper's head gets quantized."""
    failed = failing(tiny_en_lm_head_mistake, whisper_tiny_en_dir)
    assert set(failed) == {"ignore_list", "output_head_untouched"}, [text(r) for r in failed.values()]
    head = text(failed["output_head_untouched"])
    assert "proj_out.weight_packed" in head and "the output head is quantized, expected it dense" in head
    assert "config.json tie_word_embeddings: False and no proj_out.weight" in head
    ignore = text(failed["ignore_list"])
    # llm-compressor drops an ignore entry that matches nothing: the saved list is empty
    assert "quantization_config.ignore [] does not cover the output head 'proj_out', so it was quantized" in ignore


def test_an_ignore_entry_that_names_nothing(good, whisper_tiny_en_dir, tmp_path):
    def name_lm_head(config):
        config["quantization_config"]["ignore"] = ["proj_out", "lm_head", "re:.*encoder_attn.q_proj$"]

    failed = failing(edited_copy(good, tmp_path / "ignore", edit_config=name_lm_head), whisper_tiny_en_dir)
    assert set(failed) == {"ignore_list"}
    message = text(failed["ignore_list"])
    assert "entry 'lm_head' names no module of this model; Whisper's output head is 'proj_out'" in message
    # a regex over real Linears is worse than a stale name: it leaves them dense where loaders expect packed
    assert ("entry 're:.*encoder_attn.q_proj$' excludes 4 Linear layers that the scheme quantizes "
            "(model.decoder.layers.0.encoder_attn.q_proj, ") in message


def _dense(tensors, module, weight):
    set_linear(tensors, module, {"weight": weight.astype(np.float16)})


def test_a_linear_left_dense(good, whisper_tiny_en_dir, tmp_path):
    base = CheckpointTensors.open(whisper_tiny_en_dir)
    broken = edited_copy(good, tmp_path / "dense", lambda t: _dense(t, LAYER, base.read(f"{LAYER}.weight")))
    failed = failing(broken, whisper_tiny_en_dir)
    assert set(failed) == {"linears_packed", "dequantized_weights_close"}
    assert failed["linears_packed"].observed == "63/64"
    assert f"{LAYER}.weight: dense F16 weight instead of weight_packed: left dense" in text(failed["linears_packed"])
    assert f"{LAYER}: could not be dequantized (not quantized: no weight_scale)" in text(failed["dequantized_weights_close"])


def test_a_dense_k_proj_breaks_vllm_fusion(good, whisper_tiny_en_dir, tmp_path):
    module = "model.decoder.layers.2.encoder_attn.k_proj"
    base = CheckpointTensors.open(whisper_tiny_en_dir)
    broken = edited_copy(good, tmp_path / "mixed", lambda t: _dense(t, module, base.read(f"{module}.weight")))
    fused = failing(broken, whisper_tiny_en_dir)["fused_projections_alike"]
    assert ("model.decoder.layers.2.encoder_attn: k_proj weight F16 x384, v_proj weight_packed I32 x48 "
            "weight_scale F16 x3" in text(fused)), text(fused)


def _requantize_all(tensors, base: CheckpointTensors, num_bits: int, group_size: int):
    for name in [n for n in tensors if n.endswith(".weight_packed")]:
        module = name.removesuffix(".weight_packed")
        set_linear(tensors, module, packed_linear(base.read(f"{module}.weight"), num_bits, group_size))


def _weights(config, **changes):
    config["quantization_config"]["config_groups"]["group_0"]["weights"].update(changes)


def test_a_wrong_group_size(good, whisper_tiny_en_dir, tmp_path):
    base = CheckpointTensors.open(whisper_tiny_en_dir)
    broken = edited_copy(good, tmp_path / "g64", lambda t: _requantize_all(t, base, 4, 64),
                         lambda c: _weights(c, group_size=64))
    failed = failing(broken, whisper_tiny_en_dir)
    assert set(failed) == {"quantization_config", "linears_packed"}
    assert f"quantization_config.{GROUP}.weights.group_size: 64, expected 128" in text(failed["quantization_config"])
    assert f"{FIRST}.weight_scale: F16 [384, 6], expected F16 [384, 3]" in text(failed["linears_packed"])
    assert not failing(broken, whisper_tiny_en_dir, "auto")  # declared and stored alike: W4A16 in groups of 64


def test_eight_bit_weights(good, whisper_tiny_en_dir, tmp_path):
    base = CheckpointTensors.open(whisper_tiny_en_dir)
    broken = edited_copy(good, tmp_path / "w8", lambda t: _requantize_all(t, base, 8, 128),
                         lambda c: _weights(c, num_bits=8))
    failed = failing(broken, whisper_tiny_en_dir)
    assert {"quantization_config", "linears_packed"} <= set(failed)
    assert f"{GROUP}.weights.num_bits: 8, expected 4" in text(failed["quantization_config"])
    assert f"{FIRST}.weight_packed: I32 [384, 96], expected I32 [384, 48]" in text(failed["linears_packed"])
    declared = results(broken, whisper_tiny_en_dir, "auto")  # consistent: a W8A16 checkpoint in groups of 128
    assert all(r.ok for r in declared.values()) and "declares W8A16 (" in declared["quantization_config"].detail


def test_asymmetric_zero_points(good, whisper_tiny_en_dir, tmp_path):
    def add_zero_points(tensors):
        for name in [n for n in tensors if n.endswith(".weight_scale")]:
            groups = np.zeros_like(tensors[name], dtype=np.int8)  # packed along the output dim, as compressed-tensors does
            tensors[name.replace("weight_scale", "weight_zero_point")] = pack_int32(groups.T, 4).T.copy()

    broken = edited_copy(good, tmp_path / "asym", add_zero_points, lambda c: _weights(c, symmetric=False))
    failed = failing(broken, whisper_tiny_en_dir)
    # (dequantized as declared, the hardest layer is also 4.55 x what asymmetric rounding would cost: a fail too)
    assert {"quantization_config", "linears_packed"} <= set(failed) <= {"quantization_config", "linears_packed",
                                                                      "dequantized_weights_close"}
    assert f"{GROUP}.weights.symmetric: False, expected True" in text(failed["quantization_config"])
    assert (f"{FIRST}.weight_zero_point: present, expected none (symmetric quantization has no zero point)"
            in text(failed["linears_packed"]))


def test_quantized_activations(good, whisper_tiny_en_dir, tmp_path):
    activations = {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "tensor", "dynamic": False}

    def add_input_scales(tensors):
        tensors[f"{LAYER}.input_scale"] = np.ones(1, dtype=np.float16)

    def quantize_inputs(config):
        config["quantization_config"]["config_groups"]["group_0"]["input_activations"] = activations

    broken = edited_copy(good, tmp_path / "w4a8", add_input_scales, quantize_inputs)
    failed = failing(broken, whisper_tiny_en_dir)
    # as declared (INT weights with INT8 activations: int-quantized), loaders would find no int8 weights to read
    assert set(failed) == {"quantization_config", "linears_packed", "dequantized_weights_close"}
    assert f"{FIRST}: could not be dequantized" in text(failed["dequantized_weights_close"])
    assert f"{GROUP}.input_activations: {activations!r}, expected None" in text(failed["quantization_config"])
    assert (f"{LAYER}.input_scale: present, expected none (the scheme quantizes no activations)"
            in text(failed["linears_packed"]))
    # declared as static INT8 activations, every other Linear lacks its calibrated input scale
    declared = failing(broken, whisper_tiny_en_dir, "auto")
    assert f"{FIRST}.input_scale: missing, expected F16 [1]" in text(declared["linears_packed"])


def test_a_wrong_weight_shape(good, whisper_tiny_en_dir, tmp_path):
    def lie(tensors):
        tensors[f"{LAYER}.weight_shape"] = np.array([1536, 380], dtype=np.int64)

    failed = failing(edited_copy(good, tmp_path / "shape", lie), whisper_tiny_en_dir)
    assert set(failed) == {"linears_packed"}
    assert f"{LAYER}.weight_shape: [1536, 380], expected the base's [1536, 384]" in text(failed["linears_packed"])


def test_a_changed_layer_norm(good, whisper_tiny_en_dir, tmp_path):
    norm = "model.decoder.layers.0.self_attn_layer_norm.weight"

    def nudge(tensors):
        tensors[norm] = (tensors[norm].astype(np.float32) * 1.01).astype(np.float16)

    failed = failing(edited_copy(good, tmp_path / "norm", nudge), whisper_tiny_en_dir)
    assert set(failed) == {"untouched_tensors_equal"}
    assert f"{norm}: " in text(failed["untouched_tensors_equal"]) and "of 384 values differ" in text(failed["untouched_tensors_equal"])


def test_perturbed_scales_are_an_outlier_layer(good, whisper_tiny_en_dir, tmp_path):
    def scale_up(tensors):
        tensors[f"{LAYER}.weight_scale"] = tensors[f"{LAYER}.weight_scale"] * np.float16(3)

    failed = failing(edited_copy(good, tmp_path / "scales", scale_up), whisper_tiny_en_dir)
    assert set(failed) == {"dequantized_weights_close"}
    message = text(failed["dequantized_weights_close"])
    assert f"- {LAYER}: relative error 2.0" in message and "x its round-to-nearest 0.1" in message, message
    assert f"- {LAYER}: scales 3.000 x what the base's weights give (min-max), expected 0.5 to 1.020" in message
    assert "(limit 0.6)" in message and "every layer further" not in message


def test_every_scale_slightly_off_is_caught_against_round_to_nearest(good, whisper_tiny_en_dir, tmp_path):
    """Each layer alike x1.3: no layer stands out from the others (the old rule, relative to the median layer,
    passed it), but every layer sits further from the base than plain rounding would put it."""
    def scale_up(tensors):
        for name in [n for n in tensors if n.endswith(".weight_scale")]:
            tensors[name] = (tensors[name].astype(np.float32) * 1.3).astype(np.float16)

    failed = failing(edited_copy(good, tmp_path / "uniform", scale_up), whisper_tiny_en_dir)
    assert set(failed) == {"dequantized_weights_close"}
    message = text(failed["dequantized_weights_close"])
    assert "every layer further from the base than round-to-nearest would be: median" in message, message
    assert "of 64 layers above 2.0 x, the furthest:" in message and "x its round-to-nearest" in message
    assert "scales 1.300 x what the base's weights give (min-max)" in message
    passing = results(good, whisper_tiny_en_dir)["dequantized_weights_close"]
    assert passing.ok and 1.2 < passing.observed < 2.0  # GPTQ on 8 utterances: 1.45 x, measured


def test_a_float32_model_and_a_dropped_bias(good, whisper_tiny_en_dir, tmp_path):
    bias = "model.encoder.layers.0.fc2.bias"

    def to_float32(config):
        config["dtype"] = "float32"

    failed = failing(edited_copy(good, tmp_path / "fp32", lambda t: t.pop(bias), to_float32), whisper_tiny_en_dir)
    assert set(failed) == {"model_dtype", "untouched_tensors_layout"}
    assert "config.json dtype is 'float32'" in text(failed["model_dtype"])
    assert f"{bias}: missing, expected F16 [384]" in text(failed["untouched_tensors_layout"])


def test_not_quantized_at_all(whisper_tiny_en_dir):
    failed = failing(whisper_tiny_en_dir, whisper_tiny_en_dir)
    assert "this is not a compressed-tensors checkpoint" in text(failed["quantization_config"])
    assert failed["linears_packed"].observed == "0/64"


def test_our_dequantization_matches_compressed_tensors_on_a_real_gptq_layer(good):
    import torch
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    model = CheckpointTensors.open(good)
    scheme = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(num_bits=4, symmetric=True, strategy="group",
                                                                             group_size=128))
    state = {p: torch.from_numpy(model.read(f"{LAYER}.{p}")) for p in ("weight_packed", "weight_scale", "weight_shape")}
    theirs = PackedQuantizationCompressor.decompress(state, scheme)["weight"].numpy()
    ours = dequantized_weight(model, Linear(LAYER, 1536, 384), preset("W4A16"))
    assert np.array_equal(ours.astype(np.float16), theirs)


def test_tensors_added_beside_a_linear_or_the_head(good, whisper_tiny_en_dir, tmp_path):
    k_bias = "model.decoder.layers.0.self_attn.k_proj.bias"  # Whisper's k_proj has no bias

    def add(tensors):
        tensors[k_bias] = np.full(384, 5.0, dtype=np.float16)
        tensors["proj_out.input_scale"] = np.ones(1, dtype=np.float16)

    failed = failing(edited_copy(good, tmp_path / "added", add), whisper_tiny_en_dir)
    assert set(failed) == {"linears_packed", "output_head_untouched"}
    assert f"{k_bias}: not in the base, expected none" in text(failed["linears_packed"])
    assert "proj_out.input_scale: the output head is quantized, expected it dense" in text(failed["output_head_untouched"])


def test_a_string_for_tie_word_embeddings(good, whisper_tiny_en_dir, tmp_path):
    def stringly(config):
        config["tie_word_embeddings"] = "false"

    failed = failing(edited_copy(good, tmp_path / "tie", edit_config=stringly), whisper_tiny_en_dir)
    assert set(failed) == {"output_head_untouched"}
    assert "config.json tie_word_embeddings: 'false', expected a boolean (true)" in text(failed["output_head_untouched"])


def test_group_act_order_indices_are_validated_and_used(good, whisper_tiny_en_dir, tmp_path):
    def act_order(config):
        _weights(config, actorder="group")

    def with_g_idx(value):
        def edit(tensors):
            for name in [n for n in tensors if n.endswith(".weight_shape")]:
                columns = int(tensors[name][1])
                tensors[name.replace("weight_shape", "weight_g_idx")] = value(columns)
        return edit

    contiguous = edited_copy(good, tmp_path / "g-ok", with_g_idx(lambda c: (np.arange(c) // 128).astype(np.int32)), act_order)
    assert not failing(contiguous, whisper_tiny_en_dir)
    shuffled = edited_copy(good, tmp_path / "g-shuffled",
                           with_g_idx(lambda c: np.random.default_rng(0).permutation(np.arange(c) // 128).astype(np.int32)),
                           act_order)
    assert "relative error" in text(failing(shuffled, whisper_tiny_en_dir)["dequantized_weights_close"])
    garbage = edited_copy(good, tmp_path / "g-bad", with_g_idx(lambda c: np.full(c, -99, dtype=np.int32)), act_order)
    assert "weight_g_idx: group indices -99..-99, expected 0..2" in text(failing(garbage, whisper_tiny_en_dir)["dequantized_weights_close"])
    wrong_type = edited_copy(good, tmp_path / "g-f32", with_g_idx(lambda c: np.zeros(7, dtype=np.float32)), act_order)
    assert f"{FIRST}.weight_g_idx: F32 [7], expected I32 [384]" in text(failing(wrong_type, whisper_tiny_en_dir)["linears_packed"])


def test_scales_with_no_columns_are_reported_not_raised(good, whisper_tiny_en_dir, tmp_path):
    def empty_scales(tensors):
        tensors[f"{LAYER}.weight_scale"] = np.zeros((1536, 0), dtype=np.float16)

    failed = failing(edited_copy(good, tmp_path / "no-scales", empty_scales), whisper_tiny_en_dir)
    assert f"{LAYER}.weight_scale: F16 [1536, 0], expected F16 [1536, 3]" in text(failed["linears_packed"])
    assert f"{LAYER}: could not be dequantized" in text(failed["dequantized_weights_close"])
