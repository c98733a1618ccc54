"""Fuzzing the checkpoint inspection: whatever bytes or JSON a checkpoint holds, reading it ends in a
result or in the plugin's own `WhisperqError`, never in another exception (which pytest would show
as a traceback and a user could not act on).

Bounded: each property runs a fixed number of derandomised examples, so CI explores the same inputs
every run in a few seconds. `WHISPERQ_FUZZ_EXAMPLES=5000` explores more, with fresh randomness.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pytest_whisperq.checks.compat import check_same_architecture
from pytest_whisperq.checks.format_suite import format_checks
from pytest_whisperq.checks.quant_config import check_ignore_list, check_model_dtype, check_quantization_config
from pytest_whisperq.checks.scheme import preset, resolve_scheme
from pytest_whisperq.errors import WhisperqError
from pytest_whisperq.models.tensors import DTYPES, INDEX_NAME, CheckpointTensors
from pytest_whisperq.results import CheckResult
from checkpoint_factory import build_synthetic_pair

_SCALE = os.environ.get("WHISPERQ_FUZZ_EXAMPLES", "0")
if not _SCALE.isdigit():
    raise pytest.UsageError(f"WHISPERQ_FUZZ_EXAMPLES={_SCALE!r}: set it to a number of examples per property, e.g. 5000")
EXAMPLES = int(_SCALE)


def fuzz(examples: int) -> settings:
    """`examples` fixed examples in CI; more and random with WHISPERQ_FUZZ_EXAMPLES."""
    return settings(max_examples=EXAMPLES or examples, derandomize=not EXAMPLES, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


json_scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=12)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
small_ints = st.integers(-3, 40) | st.sampled_from([2**31, 2**63, -2**63])
tensor_entries = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from(sorted(DTYPES)) | json_scalars,
        "shape": st.lists(small_ints, max_size=3) | json_values,
        "data_offsets": st.lists(small_ints, min_size=2, max_size=2) | json_values,
    },
)
headers = st.dictionaries(st.text(max_size=8), tensor_entries | json_values, max_size=5).map(dict)


def safetensors_bytes(header: Any, data: bytes, declared_length: int | None = None) -> bytes:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    length = len(raw) if declared_length is None else declared_length
    return struct.pack("<Q", length) + raw + data


def read_everything(path: Path) -> None:
    """What the plugin does with a checkpoint file: its header, then every tensor."""
    directory = path.parent
    checkpoint = CheckpointTensors.open(directory)
    for name in checkpoint.names():
        checkpoint.read(name)


def assert_only_our_errors(action) -> None:
    """Run `action`; anything but a WhisperqError propagates and fails the property."""
    try:
        action()
    except WhisperqError as error:
        event(f"refused: {type(error).__name__}")  # --hypothesis-show-statistics shows how deep inputs got
    else:
        event("accepted")


@pytest.fixture
def checkpoint_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("fuzzed")
    (directory / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    return directory


@fuzz(400)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_as_a_safetensors_file(checkpoint_dir: Path, raw: bytes) -> None:
    (checkpoint_dir / "model.safetensors").write_bytes(raw)
    assert_only_our_errors(lambda: read_everything(checkpoint_dir / "model.safetensors"))


@fuzz(600)
@given(header=headers, data=st.binary(max_size=96), lie=st.none() | st.integers(0, 2**64 - 1))
def test_structured_headers_that_lie(checkpoint_dir: Path, header: Any, data: bytes, lie: int | None) -> None:
    (checkpoint_dir / "model.safetensors").write_bytes(safetensors_bytes(header, data, lie))
    assert_only_our_errors(lambda: read_everything(checkpoint_dir / "model.safetensors"))


@fuzz(300)
@given(header=st.dictionaries(st.text(max_size=8), tensor_entries, min_size=1, max_size=4),
       data=st.binary(min_size=0, max_size=64), cut=st.integers(0, 200))
def test_truncated_files(checkpoint_dir: Path, header: dict, data: bytes, cut: int) -> None:
    whole = safetensors_bytes(header, data)
    (checkpoint_dir / "model.safetensors").write_bytes(whole[: max(0, len(whole) - cut)])
    assert_only_our_errors(lambda: read_everything(checkpoint_dir / "model.safetensors"))


@fuzz(300)
@given(config=json_values | st.dictionaries(st.text(max_size=6), json_values).map(lambda d: {**d, "model_type": "whisper"}))
def test_arbitrary_config_json(checkpoint_dir: Path, config: Any) -> None:
    (checkpoint_dir / "config.json").write_text(json.dumps(config))
    (checkpoint_dir / "model.safetensors").write_bytes(safetensors_bytes({}, b""))
    assert_only_our_errors(lambda: CheckpointTensors.open(checkpoint_dir))


@fuzz(300)
@given(index=json_values | st.fixed_dictionaries({"weight_map": st.dictionaries(st.text(max_size=6), json_values
                                                                                  | st.text(max_size=20))}))
def test_arbitrary_shard_index(checkpoint_dir: Path, index: Any) -> None:
    (checkpoint_dir / INDEX_NAME).write_text(json.dumps(index))
    (checkpoint_dir / "model-00001-of-00001.safetensors").write_bytes(safetensors_bytes({}, b""))
    assert_only_our_errors(lambda: CheckpointTensors.open(checkpoint_dir))


@fuzz(300)
@given(tokenizer=json_values | st.fixed_dictionaries({}, optional={
    "model": json_values | st.fixed_dictionaries({}, optional={"vocab": json_values | st.dictionaries(
        st.text(max_size=6), st.integers(-5, 10) | json_scalars, max_size=4)}),
    "added_tokens": json_values | st.lists(st.fixed_dictionaries({}, optional={"id": json_scalars, "content": json_scalars}),
                                           max_size=3)}),
       slow=st.booleans())
def test_arbitrary_tokenizer_files(checkpoint_dir: Path, tokenizer: Any, slow: bool) -> None:
    """tokenizer.json, or vocab.json when a checkpoint has the slow tokenizer's files only."""
    from pytest_whisperq.models.processor_files import vocabulary

    for name in ("tokenizer.json", "vocab.json"):
        (checkpoint_dir / name).unlink(missing_ok=True)
    (checkpoint_dir / ("vocab.json" if slow else "tokenizer.json")).write_text(json.dumps(tokenizer))
    assert_only_our_errors(lambda: vocabulary(checkpoint_dir))


# --- the checks over config.json: a result for any JSON, or our own error -------------------------

quantization_blocks = st.fixed_dictionaries({}, optional={
    "quant_method": st.just("compressed-tensors") | json_scalars,
    "format": st.just("pack-quantized") | json_scalars,
    "quantization_status": st.just("compressed") | json_scalars,
    "config_groups": json_values | st.dictionaries(st.text(max_size=4), st.fixed_dictionaries({}, optional={
        "targets": st.just(["Linear"]) | json_values,
        "weights": json_values | st.fixed_dictionaries({}, optional={
            "num_bits": json_scalars, "type": json_scalars, "symmetric": json_scalars, "strategy": json_scalars,
            "group_size": json_scalars, "actorder": json_scalars, "dynamic": json_scalars}),
        "input_activations": json_values, "output_activations": json_values, "format": json_scalars,
    }), max_size=2),
    "ignore": json_values | st.lists(st.text(max_size=12), max_size=3),
    "kv_cache_scheme": json_values, "sparsity_config": json_values, "transform_config": json_values,
})
configs = st.fixed_dictionaries({"model_type": st.just("whisper")}, optional={
    "quantization_config": quantization_blocks | json_values,
    "compression_config": st.fixed_dictionaries({}, optional={"quantization_config": quantization_blocks}) | json_values,
    "dtype": json_scalars, "torch_dtype": json_scalars, "d_model": json_scalars, "vocab_size": json_scalars,
})


@fuzz(600)
@given(config=configs, base=configs)
def test_config_checks_give_a_result_for_any_config(config: dict, base: dict) -> None:
    declared = resolve_scheme("auto", config)  # any config resolves: what it cannot declare, the checks say
    for check in (lambda: check_quantization_config(config, preset("W4A16")),
                  lambda: check_quantization_config(config, declared), lambda: check_model_dtype(config),
                  lambda: check_same_architecture(config, base),
                  lambda: check_ignore_list(config, ["model.encoder.layers.0.fc1", "proj_out"], ["model.encoder.layers.0.fc1"])):
        try:
            result = check()
        except WhisperqError:
            continue
        assert isinstance(result, CheckResult) and isinstance(result.ok, bool)


# --- the whole format suite on a small W4A16 checkpoint mutated at random -----------------------

SMALL_WHISPER = {
    "model_type": "whisper", "architectures": ["WhisperForConditionalGeneration"], "d_model": 128,
    "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
    "encoder_ffn_dim": 256, "decoder_ffn_dim": 256, "num_mel_bins": 8, "vocab_size": 64,
    "max_source_positions": 8, "max_target_positions": 8, "decoder_start_token_id": 1, "eos_token_id": 2,
    "tie_word_embeddings": True, "dtype": "float16",
}


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory) -> tuple[Path, Path]:
    return build_synthetic_pair(tmp_path_factory.mktemp("small"), SMALL_WHISPER, base_shards=2)


def _raw_tensors(directory: Path) -> tuple[dict[str, Any], dict[str, tuple[str, list[int], bytes]]]:
    checkpoint = CheckpointTensors.open(directory)
    tensors = {}
    for name, info in checkpoint.tensors.items():
        with info.file.open("rb") as handle:
            handle.seek(info.start)
            tensors[name] = (info.dtype, list(info.shape), handle.read(info.end - info.start))
    return checkpoint.config, tensors


def _write_raw(directory: Path, config: Any, tensors: dict[str, tuple[Any, Any, bytes]]) -> None:
    """Our own writer: any dtype or shape may be declared, whatever the bytes hold."""
    header, chunks, offset = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "model.safetensors").write_bytes(safetensors_bytes(header, b"".join(chunks)))


mutations = st.lists(st.tuples(
    st.sampled_from(["drop", "dtype", "shape", "values", "rename", "config"]),
    st.integers(0, 10_000),
    st.sampled_from(sorted(DTYPES)) | json_scalars,
    st.lists(small_ints, max_size=3),
    st.binary(min_size=0, max_size=64),
    json_values,
), min_size=1, max_size=4)


@fuzz(120)
@given(changes=mutations)
def test_the_format_suite_on_mutated_w4a16_checkpoints(small_pair, tmp_path_factory, changes) -> None:
    model_dir, base_dir = small_pair
    config, tensors = _raw_tensors(model_dir)
    names = sorted(tensors)
    for kind, pick, dtype, shape, data, value in changes:
        name = names[pick % len(names)]
        if name not in tensors:
            continue
        old_dtype, old_shape, old_data = tensors[name]
        if kind == "drop":
            del tensors[name]
        elif kind == "dtype":
            tensors[name] = (dtype, old_shape, old_data)
        elif kind == "shape":
            tensors[name] = (old_dtype, shape, old_data)
        elif kind == "values":  # same declared layout, other bytes (a weight_shape of any values, ...)
            tensors[name] = (old_dtype, old_shape, (data * (len(old_data) // max(1, len(data)) + 1))[: len(old_data)]
                             if data else old_data)
        elif kind == "rename":
            tensors[name.replace("weight", "w", 1) if pick % 2 else name + "_"] = tensors.pop(name)
        else:  # a field of the quantization config replaced by anything
            block = config["quantization_config"]
            path = ["ignore", "format", "config_groups", "quant_method", "quantization_status"]
            block[path[pick % len(path)]] = value
    mutated = tmp_path_factory.mktemp("mutated")
    _write_raw(mutated, config, tensors)
    try:
        model = CheckpointTensors.open(mutated)
        results = format_checks(model, CheckpointTensors.open(base_dir), preset("W4A16"))
    except WhisperqError:
        event("refused")
        return
    event(f"{sum(not r.ok for r in results)} of {len(results)} checks failed")
    assert all(isinstance(r, CheckResult) for r in results)
    if (config, tensors) != _raw_tensors(model_dir):  # something changed: no false pass
        assert not all(r.ok for r in results), [r.name for r in results]


def test_an_unmutated_small_pair_passes_the_format_suite(small_pair) -> None:
    """The mutation fuzz starts from a checkpoint the suite accepts, so failures there are the mutations'."""
    model_dir, base_dir = small_pair
    results = format_checks(CheckpointTensors.open(model_dir), CheckpointTensors.open(base_dir), preset("W4A16"))
    assert [r.name for r in results if not r.ok] == []
    assert np.isfinite([r.observed for r in results if isinstance(r.observed, float)]).all()
