"""config.json checks on plain dictionaries: legacy keys, odd values, the ignore list's matching rule."""

from __future__ import annotations

import copy

import pytest
from checkpoint_factory import quantization_config, scheme_config

from pytest_whisperq.checks.quant_config import (
    check_ignore_list,
    check_model_dtype,
    check_quantization_config,
    ignore_matches,
)
from pytest_whisperq.checks.scheme import preset, resolve_scheme, with_overrides
from pytest_whisperq.errors import ConfigError


def Scheme(group_size: int | None = None):  # noqa: N802: the W4A16 preset, as the tests called the old default
    return with_overrides(preset("W4A16"), group_size)

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
    (lambda q: q["config_groups"]["group_0"].update(weights=None), "weights: missing, expected INT4, group 128"),
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
    ({"dtype": "bfloat16"}, True), ({"dtype": "float32"}, False), ({}, False),
])
def test_model_dtype(config, ok: bool) -> None:
    assert check_model_dtype(config).ok is ok


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
    (["proj_out", "re:model\\.encoder\\."], "excludes 1 Linear layers that the scheme quantizes (model.encoder.layers.0.fc1)"),
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


SCHEMES = ("W4A16", "W4A16_ASYM", "W8A16", "W8A8", "FP8", "FP8_DYNAMIC", "FP8_BLOCK", "NVFP4A16", "NVFP4")


@pytest.mark.parametrize("name", SCHEMES)
def test_each_preset_passes_as_itself_declared_or_named(name: str) -> None:
    """The config llm-compressor writes for a preset passes when that preset is named and under auto, which
    recognises it by name."""
    config = {"dtype": "bfloat16", "quantization_config": scheme_config(name)}
    named = check_quantization_config(config, preset(name))
    assert named.ok, named.describe()
    auto = resolve_scheme("auto", config)
    assert auto.name == name and auto.source == "declared by the checkpoint"
    result = check_quantization_config(config, auto)
    assert result.ok and f"declares {name} (weights " in result.detail and "[scheme: declared by the checkpoint]" in result.detail


@pytest.mark.parametrize(("declared", "named", "evidence"), [
    ("W8A8", "W4A16", ["quantization_config.format: 'int-quantized', expected 'pack-quantized'",
                       "weights.num_bits: 8, expected 4", "weights.strategy: 'channel', expected 'group'",
                       "input_activations: {", "expected None (W4A16 keeps activations in 16 bits)"]),
    ("W4A16", "W8A8", ["format: 'pack-quantized', expected 'int-quantized'",
                       "input_activations: missing, expected INT8 dynamic, per token"]),
    ("FP8_DYNAMIC", "FP8", ["weights.strategy: 'channel', expected 'tensor'",
                            "input_activations.dynamic: True, expected False"]),
    ("W4A16_ASYM", "W4A16", ["weights.symmetric: False, expected True"]),
    ("NVFP4", "NVFP4A16", ["input_activations: {"]),
])
def test_a_checkpoint_of_another_scheme_fails_with_each_deviation_named(declared: str, named: str, evidence) -> None:
    result = check_quantization_config({"quantization_config": scheme_config(declared)}, preset(named))
    assert not result.ok and f"does not declare {named} (" in result.detail
    for line in evidence:
        assert any(line in shown for shown in result.evidence), (line, result.evidence)


def test_group_size_and_act_order_vary_within_a_preset() -> None:
    config = {"quantization_config": scheme_config("W4A16", group_size=64, actorder="group")}
    declared = resolve_scheme("auto", config)
    assert declared.name == "W4A16" and "group 64, act-order group" in declared.label
    assert check_quantization_config(config, preset("W4A16")).ok is False  # group 64 is not the preset's 128
    assert check_quantization_config(config, with_overrides(preset("W4A16"), 64)).ok  # any act-order: not stated
    stated = with_overrides(preset("W4A16"), 64, "weight")
    assert "weights.actorder: 'group', expected 'weight'" in check_quantization_config(config, stated).describe()
    with pytest.raises(ConfigError, match="W8A8 quantizes weights INT8, per channel, not in groups"):
        with_overrides(preset("W8A8"), group_size=64)


def test_auto_without_a_declaration_expects_the_flagship_and_says_so() -> None:
    scheme = resolve_scheme("auto", {"model_type": "whisper"})
    assert scheme.name == "W4A16" and scheme.source == "default: the checkpoint declares no scheme"
    unreadable = {"quantization_config": scheme_config("W8A8", num_bits="eight")}
    assert resolve_scheme("auto", unreadable).name == "W4A16"  # the config check names the field
    result = check_quantization_config(unreadable, resolve_scheme("auto", unreadable))
    assert "weights.num_bits: 'eight', expected a whole number of bits" in result.describe()


def test_a_scheme_no_preset_matches_is_gated_as_declared_and_called_custom() -> None:
    config = {"quantization_config": scheme_config("W4A16", num_bits=3, strategy="channel", group_size=None)}
    scheme = resolve_scheme("auto", config)
    assert scheme.name == "custom" and scheme.weights.describe() == "INT3, per channel"
    assert check_quantization_config(config, scheme).ok


def test_an_unknown_scheme_name_lists_the_presets() -> None:
    with pytest.raises(ConfigError, match=r"unknown quantization scheme 'W9A16': name one of compressed-tensors' "
                                          r"presets \(FP8, .*W8A8\) or auto"):
        preset("W9A16")
