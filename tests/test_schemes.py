"""Every compressed-tensors scheme the format checks read: the layout each expects is the one compressed-tensors'
own compressors write, and our numpy dequantization gives what their decompression gives (golden vectors from the
library, on random weights and scales)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from checkpoint_factory import scheme_config

from pytest_whisperq.checks.checkpoint_format import Linear, expected_layer_tensors
from pytest_whisperq.checks.fidelity import dequantized_weight
from pytest_whisperq.checks.scheme import preset, resolve_scheme, with_overrides
from pytest_whisperq.models.tensors import CheckpointTensors

LAYER = Linear("model.encoder.layers.0.fc1", 96, 512)  # rows not a multiple of 32: zero points pack partially
READ = ("W4A16", "W4A16_ASYM", "W8A16", "W8A8", "FP8", "FP8_DYNAMIC", "FP8_BLOCK", "NVFP4A16", "NVFP4", "W4AFP8")
TORCH_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F8_E4M3": "float8_e4m3fn", "I8": "int8",
                "I32": "int32", "U8": "uint8", "I64": "int64"}


def library_compressed(name: str, dtype: str, group_size: int | None = None, seed: int = 0):
    """(compressed state dict, the library's scheme) for one random Linear quantized by `name`'s compressor, with
    random scales (and zero points, global scales) of the shapes the library initialises."""
    import torch
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.compressors.format import infer_module_format
    from compressed_tensors.quantization import initialize_module_for_quantization
    from compressed_tensors.quantization.quant_scheme import preset_name_to_scheme

    torch.manual_seed(seed)
    scheme = preset_name_to_scheme(name, ["Linear"])
    if group_size is not None:
        scheme.weights.group_size = group_size
    module = torch.nn.Linear(LAYER.in_features, LAYER.out_features, bias=False, dtype=getattr(torch, dtype))
    initialize_module_for_quantization(module, scheme)  # the library's own scale and zero-point shapes
    state = {"weight": module.weight.data.clone() * 0.05}
    for param in ("weight_scale", "weight_zero_point", "weight_global_scale"):
        if hasattr(module, param):
            like = getattr(module, param).data
            if param == "weight_scale":
                value = torch.rand(like.shape) * 0.004 + 0.001
                if scheme.weights.strategy == "tensor_group":  # the stored scale is FP8: keep it in range
                    value = value * 500
            elif param == "weight_zero_point":
                value = torch.randint(-8, 8, like.shape)
            else:
                value = torch.tensor([448.0 * 6.0 / 0.3])
            state[param] = value.to(like.dtype)
    compressor = BaseCompressor.get_value_from_registry(infer_module_format(torch.nn.Linear, scheme).value)
    return compressor.compress(state, scheme), scheme, compressor


def write_layer(out: Path, name: str, tensors: dict, dtype: str, **weights) -> CheckpointTensors:
    """A checkpoint folder holding one Linear's compressed tensors and config.json declaring `name`."""
    from safetensors.torch import save_file

    out.mkdir()
    save_file({f"{LAYER.name}.{k}": v.contiguous() for k, v in tensors.items()}, str(out / "model.safetensors"))
    config = {"model_type": "whisper", "dtype": dtype, "quantization_config": scheme_config(name, **weights)}
    (out / "config.json").write_text(json.dumps(config))
    return CheckpointTensors.open(out)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", READ)
def test_expected_layout_is_what_compressed_tensors_writes(name: str, dtype: str) -> None:
    compressed, _, _ = library_compressed(name, dtype)
    ours = expected_layer_tensors(LAYER, preset(name), {"float16": "F16", "bfloat16": "BF16"}[dtype])
    written = {k: (str(v.dtype).removeprefix("torch."), tuple(v.shape)) for k, v in compressed.items() if k != "weight_shape"}
    expected = {k: (TORCH_DTYPES[d], s) for k, (d, s) in ours.items() if not k.startswith("input_")}
    assert {k: (d, s or written.get(k, (0, None))[1]) for k, (d, s) in expected.items()} == written


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", READ)
def test_our_dequantization_is_the_library_s(name: str, dtype: str, tmp_path) -> None:
    import torch

    compressed, scheme, compressor = library_compressed(name, dtype, seed=1)
    theirs = compressor.decompress(dict(compressed), scheme)["weight"].to(torch.float32).numpy()
    model = write_layer(tmp_path / "layer", name, compressed, dtype)
    ours = dequantized_weight(model, LAYER, resolve_scheme("auto", model.config))
    cast = {"float16": np.float16, "bfloat16": None}[dtype]
    if cast is None or name.startswith("NVFP4"):  # the library computes in bfloat16: compare at its precision
        assert np.allclose(ours, theirs, rtol=2 ** -7, atol=0), np.abs(ours - theirs).max()
    else:
        assert np.array_equal(ours.astype(cast), theirs.astype(cast)) or np.allclose(ours, theirs, rtol=1e-3, atol=1e-6)
    assert np.abs(theirs).max() > 0  # a real comparison, not of zeros


def test_group_size_variants_dequantize_too(tmp_path) -> None:
    import torch

    compressed, scheme, compressor = library_compressed("W4A16", "float16", group_size=64, seed=2)
    theirs = compressor.decompress(dict(compressed), scheme)["weight"].to(torch.float32).numpy()
    model = write_layer(tmp_path / "g64", "W4A16", compressed, "float16", group_size=64)
    declared = resolve_scheme("auto", model.config)
    assert declared.weights.group_size == 64
    assert np.allclose(dequantized_weight(model, LAYER, declared), theirs, rtol=1e-3, atol=1e-6)
    assert expected_layer_tensors(LAYER, with_overrides(preset("W4A16"), 64), "F16")["weight_scale"] == ("F16", (96, 8))
