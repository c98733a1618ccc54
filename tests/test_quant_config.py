"""config.json checks on plain dictionaries: legacy keys, odd values, the ignore list's matching rule."""

from __future__ import annotations

import copy

import pytest
from checkpoint_factory import quantization_config

from pytest_whisperq.checks.quant_config import (
    Scheme,
    check_ignore_list,
    check_model_dtype,
    check_quantization_config,
    ignore_matches,
)

GOOD = {"model_type": "whisper", "dtype": "float16", "quantization_config": quantization_config()}
MODULES = {"proj_out", "model.encoder.layers.0.fc1", "model.decoder.layers.0.encoder_attn.q_proj"}


def test_the_published_form_passes() -> None:
    result = check_quantization_config(GOOD, Scheme())
    assert result.ok and result.detail.startswith("quantization_config declares W4A16")


def test_the_legacy_key_is_read_and_said() -> None:
    legacy = {"compression_config": GOOD["quantization_config"]}
    result = check_quantization_config(legacy, Scheme())
    assert result.ok and "compression_config (legacy key)" in result.detail
    nested = {"compression_config": {"quantization_config": GOOD["quantization_config"], "sparsity_config": None}}
    assert check_quantization_config(nested, Scheme()).ok


@pytest.mark.parametrize(("edit", "evidence"), [
    (lambda q: q.update(format="int-quantized"), "quantization_config.format: 'int-quantized', expected 'pack-quantized'"),
    (lambda q: q.update(quantization_status="frozen"), "quantization_status: 'frozen', expected 'compressed'"),
    (lambda q: q.update(kv_cache_scheme={"num_bits": 8}), "kv_cache_scheme: {'num_bits': 8}, expected None"),
    (lambda q: q.update(config_groups=[1, 2]), "config_groups: [1, 2] groups, expected exactly one"),
    (lambda q: q["config_groups"].update(group_1=q["config_groups"]["group_0"]), "config_groups: 2 groups"),
    (lambda q: q["config_groups"]["group_0"].update(weights=None), "weights.num_bits: None, expected 4"),
    (lambda q: q["config_groups"]["group_0"].update(targets=["re:.*q_proj"]), "targets: ['re:.*q_proj'], expected ['Linear']"),
    (lambda q: q["config_groups"]["group_0"]["weights"].update(strategy="channel"), "weights.strategy: 'channel', expected 'group'"),
    (lambda q: q["config_groups"]["group_0"]["weights"].update(type="float"), "weights.type: 'float', expected 'int'"),
    (lambda q: q["config_groups"]["group_0"]["weights"].update(dynamic=True), "weights.dynamic: True, expected False"),
    (lambda q: q.update(transform_config={"config_groups": {"u": {}}}), "transform_config"),
])
def test_each_deviation_is_named(edit, evidence: str) -> None:
    config = copy.deepcopy(GOOD)
    edit(config["quantization_config"])
    result = check_quantization_config(config, Scheme())
    assert not result.ok and any(evidence in line for line in result.evidence), result.evidence


def test_no_quantization_config_at_all() -> None:
    for config in ({"model_type": "whisper"}, {"quantization_config": "W4A16"}):
        result = check_quantization_config(config, Scheme())
        assert not result.ok and "not a compressed-tensors checkpoint" in result.detail


def test_another_expected_group_size() -> None:
    config = copy.deepcopy(GOOD)
    config["quantization_config"]["config_groups"]["group_0"]["weights"]["group_size"] = 64
    assert check_quantization_config(config, Scheme(group_size=64)).ok
    assert not check_quantization_config(GOOD, Scheme(group_size=64)).ok


@pytest.mark.parametrize(("config", "ok"), [
    ({"dtype": "float16"}, True), ({"torch_dtype": "float16"}, True), ({"torch_dtype": "torch.float16"}, True),
    ({"dtype": "bfloat16"}, False), ({}, False),
])
def test_model_dtype(config, ok: bool) -> None:
    assert check_model_dtype(config, Scheme()).ok is ok


@pytest.mark.parametrize(("ignore", "ok", "evidence"), [
    (["proj_out"], True, ""),
    (["re:proj_.*"], True, ""),
    (["re:.*out$"], True, ""),
    ([], False, "does not cover the output head 'proj_out'"),
    (["lm_head"], False, "entry 'lm_head' names no module of this model; Whisper's output head is 'proj_out'"),
    (["proj_out", "re:model.encoder.layers.9.*"], False, "entry 're:model.encoder.layers.9.*' names no module"),
    (["proj_out", "re:("], False, "entry 're:(' names no module"),
    (["proj_out", 3], False, "not a list of module names"),
])
def test_ignore_list(ignore, ok: bool, evidence: str) -> None:
    config = copy.deepcopy(GOOD)
    config["quantization_config"]["ignore"] = ignore
    result = check_ignore_list(config, MODULES)
    assert result.ok is ok, result.describe()
    assert evidence in result.describe()


def test_ignore_matching_follows_compressed_tensors() -> None:
    assert ignore_matches("proj_out", "proj_out") and not ignore_matches("proj", "proj_out")
    assert ignore_matches("re:.*fc1", "model.encoder.layers.0.fc1")
    assert not ignore_matches("re:fc1", "model.encoder.layers.0.fc1")  # re.match anchors at the start


@pytest.mark.parametrize(("ignore", "evidence"), [
    (["proj_out", "model.encoder.layers.0.fc1"], "entry 'model.encoder.layers.0.fc1' excludes 1 Linear layers"),
    (["re:"], "entry 're:' excludes 2 Linear layers"),
    (["proj_out", "re:model\\.encoder\\."], "excludes 1 Linear layers that W4A16 quantizes (model.encoder.layers.0.fc1)"),
])
def test_an_ignore_entry_may_not_switch_off_quantized_linears(ignore, evidence: str) -> None:
    config = copy.deepcopy(GOOD)
    config["quantization_config"]["ignore"] = ignore
    linears = MODULES - {"proj_out"}
    result = check_ignore_list(config, MODULES, linears)
    assert not result.ok and evidence in result.describe(), result.describe()


def test_legacy_nested_sparsity_is_checked() -> None:
    nested = {"compression_config": {"quantization_config": GOOD["quantization_config"],
                                     "sparsity_config": {"format": "sparse-24-bitmask"}}}
    result = check_quantization_config(nested, Scheme())
    assert not result.ok and "compression_config.sparsity_config: {'format': 'sparse-24-bitmask'}" in result.describe()
