"""Reading a checkpoint's tensors without trusting it: headers, shards, pickles."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_factory import write_checkpoint

from pytest_whisperq.errors import CheckpointError
from pytest_whisperq.models.tensors import CheckpointTensors, read_safetensors_header

CONFIG = {"model_type": "whisper", "d_model": 4}


@pytest.fixture
def tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "a.weight": rng.normal(size=(3, 4)).astype(np.float16),
        "a.bias": np.arange(3, dtype=np.float32),
        "b.weight_packed": rng.integers(-2**31, 2**31 - 1, size=(2, 1), dtype=np.int64).astype(np.int32),
        "b.weight_shape": np.array([2, 8], dtype=np.int64),
    }


def test_reads_every_tensor_exactly_from_one_file_or_shards(tmp_path: Path, tensors) -> None:
    for shards in (1, 3):
        checkpoint = CheckpointTensors.open(write_checkpoint(tmp_path / f"c{shards}", CONFIG, tensors, shards=shards))
        assert sorted(checkpoint.names()) == sorted(tensors)
        assert (checkpoint.index is not None) == (shards > 1)
        for name, value in tensors.items():
            read = checkpoint.read(name)
            assert read.dtype == value.dtype and np.array_equal(read, value), name
        assert checkpoint.tensors["a.weight"].dtype == "F16" and checkpoint.tensors["a.weight"].shape == (3, 4)


def _both(tmp_path: Path, tensors, edit=None) -> Path:
    """A directory holding model.safetensors and, beside it, shards with an index (as a re-upload can leave it)."""
    import shutil

    single = write_checkpoint(tmp_path / "single", CONFIG, tensors)
    sharded = write_checkpoint(tmp_path / "sharded", CONFIG, edit(dict(tensors)) if edit else tensors, shards=2)
    for file in sharded.iterdir():
        if file.name != "config.json":
            shutil.copy(file, single / file.name)
    return single


def test_model_safetensors_beside_an_index_is_read_as_transformers_reads_it(tmp_path: Path, tensors) -> None:
    """transformers prefers model.safetensors, vLLM the shards the index names: where both are there and agree,
    the checks read what transformers loads."""
    checkpoint = CheckpointTensors.open(_both(tmp_path, tensors))
    assert checkpoint.index is None and {i.file.name for i in checkpoint.tensors.values()} == {"model.safetensors"}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: {**t, "a.weight": t["a.weight"] + np.float16(1)}, "a.weight: other values in model.safetensors than in"),
    (lambda t: {k: v for k, v in t.items() if k != "a.bias"}, "a.bias: only in model.safetensors"),
    (lambda t: {**t, "a.bias": t["a.bias"].astype(np.float16)}, "a.bias: F32 [3] in model.safetensors, F16 [3] in"),
])
def test_model_safetensors_and_an_index_that_disagree_are_refused(tmp_path: Path, tensors, edit, message: str) -> None:
    import re

    with pytest.raises(CheckpointError, match=re.escape("the checkpoint holds both model.safetensors and "
                                                        "model.safetensors.index.json, and they disagree: " + message)) as error:
        CheckpointTensors.open(_both(tmp_path, tensors, edit))
    assert "transformers loads model.safetensors, vLLM the shards the index names: remove the stale one" in str(error.value)


def test_bf16_is_widened_to_float32(tmp_path: Path) -> None:
    directory = tmp_path / "bf16"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(CONFIG))
    from safetensors.torch import save_file

    value = torch.tensor([1.5, -2.25, 3.0e10], dtype=torch.bfloat16)
    save_file({"x": value}, str(directory / "model.safetensors"))
    read = CheckpointTensors.open(directory).read("x")
    assert read.dtype == np.float32 and read.tolist() == value.float().tolist()


def _raw_file(path: Path, header: object, data: bytes = b"", declared_length: int | None = None) -> Path:
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded) if declared_length is None else declared_length) + encoded + data)
    return path


@pytest.mark.parametrize(("header", "data", "declared", "message"), [
    ({"x": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 2, None, "truncated"),
    ({"x": {"dtype": "F16", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4, None, r"hold 4 bytes, but F16 \[4\] needs 8"),
    ({"x": {"dtype": "F17", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, None, "unknown dtype 'F17'"),
    ({"x": {"dtype": "F16", "shape": [-2], "data_offsets": [0, 4]}}, b"\0" * 4, None, "not a list of non-negative"),
    ({"x": {"dtype": "F16", "shape": [2], "data_offsets": [0]}}, b"\0" * 4, None, r"is not \[start, end\]"),
    ({"x": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
      "y": {"dtype": "F16", "shape": [2], "data_offsets": [2, 6]}}, b"\0" * 6, None, "overlap"),
    ({"x": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, 10**9, "header claims 1000000000 bytes"),
    ([1, 2], b"", None, "is a list, expected an object"),
    ({"x": {"dtype": ["F16"], "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, None, r"unknown dtype \['F16'\]"),
])
def test_a_header_that_lies_is_a_checkpoint_error(tmp_path: Path, header, data, declared, message) -> None:
    with pytest.raises(CheckpointError, match=message):
        read_safetensors_header(_raw_file(tmp_path / "model.safetensors", header, data, declared))


def test_a_short_or_non_json_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / "short.safetensors").write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="too short for a safetensors file"):
        read_safetensors_header(tmp_path / "short.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(struct.pack("<Q", 4) + b"\xff{[x")
    with pytest.raises(CheckpointError, match="header is not valid JSON"):
        read_safetensors_header(tmp_path / "junk.safetensors")


def test_an_index_that_does_not_match_its_shards_is_refused(tmp_path: Path, tensors) -> None:
    checkpoint = write_checkpoint(tmp_path / "c", CONFIG, tensors, shards=2)
    index_path = checkpoint / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"]["a.bias"] = "model-00002-of-00002.safetensors" if index["weight_map"]["a.bias"].startswith(
        "model-00001") else "model-00001-of-00002.safetensors"
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"does not match its shards: 1 tensors not where the index says: a.bias"):
        CheckpointTensors.open(checkpoint)
    index["weight_map"]["c.weight"] = "model-00003-of-00003.safetensors"
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="shard model-00003-of-00003.safetensors is missing"):
        CheckpointTensors.open(checkpoint)
    index["weight_map"] = {"a.bias": "../elsewhere.safetensors"}
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="is not a safetensors file name in this directory"):
        CheckpointTensors.open(checkpoint)


def test_the_same_tensor_in_two_files_is_refused(tmp_path: Path, tensors) -> None:
    checkpoint = write_checkpoint(tmp_path / "c", CONFIG, tensors)
    (checkpoint / "model.safetensors").rename(checkpoint / "a.safetensors")
    write_checkpoint(tmp_path / "d", CONFIG, {"a.weight": tensors["a.weight"]})
    (tmp_path / "d" / "model.safetensors").rename(checkpoint / "b.safetensors")
    with pytest.raises(CheckpointError, match="tensor 'a.weight' is in both a.safetensors and b.safetensors"):
        CheckpointTensors.open(checkpoint)


def test_pickled_weights_only_when_allowed_and_then_without_running_code(tmp_path: Path, tensors) -> None:
    directory = tmp_path / "pickled"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(CONFIG))
    torch.save({name: torch.from_numpy(value) for name, value in tensors.items()}, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"only pickled weights \(pytorch_model.bin\).*--whisperq-allow-pickle"):
        CheckpointTensors.open(directory)
    checkpoint = CheckpointTensors.open(directory, allow_pickle=True)
    assert checkpoint.weight_format == "pickle" and checkpoint.tensors["b.weight_shape"].dtype == "I64"
    assert all(np.array_equal(checkpoint.read(name), value) for name, value in tensors.items())

    class Payload:  # a pickle that would run code when unpickled by a full loader
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Payload()}, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="cannot be read as a weights-only torch pickle"):
        CheckpointTensors.open(directory, allow_pickle=True)


def test_a_directory_without_weights_or_config(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no config.json"):
        CheckpointTensors.open(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    with pytest.raises(CheckpointError, match=r"no weights \(\*.safetensors\)"):
        CheckpointTensors.open(tmp_path)


def test_deeply_nested_json_is_a_checkpoint_error(tmp_path: Path) -> None:
    deep = b"[" * 200_000
    (tmp_path / "deep.safetensors").write_bytes(struct.pack("<Q", len(deep)) + deep)
    with pytest.raises(CheckpointError, match="RecursionError"):
        read_safetensors_header(tmp_path / "deep.safetensors")
    (tmp_path / "config.json").write_bytes(deep)
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        CheckpointTensors.open(tmp_path)


def test_a_directory_named_like_weights_is_not_weights(tmp_path: Path, tensors) -> None:
    checkpoint = write_checkpoint(tmp_path / "c", CONFIG, tensors)
    (checkpoint / "extra.safetensors").mkdir()
    assert sorted(CheckpointTensors.open(checkpoint).names()) == sorted(tensors)


def test_a_pickle_with_non_tensor_entries_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "pickled"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(CONFIG))
    torch.save({"w": torch.zeros(2), "step": 3}, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="entry 'step' is a int, not a tensor"):
        CheckpointTensors.open(directory, allow_pickle=True)
