"""Build checkpoints for the format tests: edited copies of a good one, and random ones with
Whisper's exact tensor names and shapes (packed honestly with our INT4 packer)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from pytest_whisperq.checks.packing import pack_int32, quantize_symmetric
from pytest_whisperq.models.tensors import CheckpointTensors

Tensors = dict[str, np.ndarray]


def load_all(directory: Path) -> tuple[dict[str, Any], Tensors]:
    checkpoint = CheckpointTensors.open(directory)
    return checkpoint.config, {n: checkpoint.read(n) for n in checkpoint.names()}


def write_checkpoint(out: Path, config: dict[str, Any], tensors: Tensors, like: Path | None = None, shards: int = 1) -> Path:
    """A checkpoint directory: config, tensors (one file, or `shards` files and an index), and the
    other files (tokenizer, ...) copied from `like`."""
    out.mkdir(parents=True)
    if like is not None:
        for file in like.iterdir():
            if file.is_file() and file.name != "config.json" and not file.name.endswith((".safetensors", ".index.json")):
                shutil.copy(file, out / file.name)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    names = sorted(tensors)
    if shards == 1:
        save_file({n: np.ascontiguousarray(tensors[n]) for n in names}, str(out / "model.safetensors"), {"format": "pt"})
        return out
    weight_map = {}
    for index, part in enumerate(np.array_split(np.array(names, dtype=object), shards)):
        file = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: np.ascontiguousarray(tensors[n]) for n in part}, str(out / file), {"format": "pt"})
        weight_map.update({n: file for n in part})
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return out


def edited_copy(good: Path, out: Path, edit_tensors: Callable[[Tensors], None] | None = None,
                edit_config: Callable[[dict[str, Any]], None] | None = None) -> Path:
    config, tensors = load_all(good)
    if edit_tensors:
        edit_tensors(tensors)
    if edit_config:
        edit_config(config)
    return write_checkpoint(out, config, tensors, like=good)


def edited_copy_exact(good: Path, out: Path, edit_tensors: Callable[[dict[str, Any]], None] | None = None,
                      edit_config: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """`edited_copy` with every dtype kept (FP8 and BF16 have no numpy dtype): the tensors are torch tensors."""
    from safetensors.torch import load_file
    from safetensors.torch import save_file as save_torch

    config = json.loads((good / "config.json").read_text())
    tensors = load_file(str(good / "model.safetensors"))
    if edit_tensors:
        edit_tensors(tensors)
    if edit_config:
        edit_config(config)
    out.mkdir(parents=True)
    for file in good.iterdir():
        if file.is_file() and file.name not in ("config.json", "model.safetensors"):
            shutil.copy(file, out / file.name)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    save_torch({n: t.contiguous() for n, t in tensors.items()}, str(out / "model.safetensors"), {"format": "pt"})
    return out


def packed_linear(weight: np.ndarray, num_bits: int = 4, group_size: int = 128) -> Tensors:
    """The compressed-tensors pack-quantized tensors of one Linear weight (symmetric, round to nearest)."""
    values, scale = quantize_symmetric(weight.astype(np.float32), group_size, num_bits)
    return {"weight_packed": pack_int32(values, num_bits), "weight_scale": scale,
            "weight_shape": np.array(weight.shape, dtype=np.int64)}


def set_linear(tensors: Tensors, module: str, params: Tensors) -> None:
    for param in ("weight", "weight_packed", "weight_scale", "weight_shape", "weight_zero_point"):
        tensors.pop(f"{module}.{param}", None)
    tensors.update({f"{module}.{name}": value for name, value in params.items()})


def quantization_config(num_bits: int = 4, group_size: int = 128, ignore: list[str] | None = None) -> dict[str, Any]:
    return {
        "quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
        "config_groups": {"group_0": {
            "targets": ["Linear"], "format": "pack-quantized", "input_activations": None, "output_activations": None,
            "weights": {"num_bits": num_bits, "type": "int", "symmetric": True, "strategy": "group",
                        "group_size": group_size, "dynamic": False, "actorder": None, "observer": "minmax"},
        }},
        "ignore": ["proj_out"] if ignore is None else ignore, "kv_cache_scheme": None, "sparsity_config": {},
    }


def scheme_config(preset: str, ignore: list[str] | None = None, **weights: Any) -> dict[str, Any]:
    """config.json's quantization_config for compressed-tensors' preset scheme `preset` as llm-compressor writes
    it (the library's own arguments and format), with `weights` fields changed."""
    import torch
    from compressed_tensors.compressors.format import infer_module_format
    from compressed_tensors.quantization.quant_scheme import preset_name_to_scheme

    scheme = preset_name_to_scheme(preset, ["Linear"])
    stored = infer_module_format(torch.nn.Linear, scheme).value
    group = scheme.model_dump(mode="json")
    group["weights"].update(weights)
    group["format"] = stored
    return {"quant_method": "compressed-tensors", "format": stored, "quantization_status": "compressed",
            "config_groups": {"group_0": group}, "ignore": ["proj_out"] if ignore is None else ignore,
            "kv_cache_scheme": None, "sparsity_config": {}}


# --- Whisper's architecture, for synthetic checkpoints ------------------------------------------

WHISPER_LARGE_V3 = {
    "model_type": "whisper", "architectures": ["WhisperForConditionalGeneration"], "d_model": 1280,
    "encoder_layers": 32, "decoder_layers": 32, "encoder_attention_heads": 20, "decoder_attention_heads": 20,
    "encoder_ffn_dim": 5120, "decoder_ffn_dim": 5120, "num_mel_bins": 128, "vocab_size": 51866,
    "max_source_positions": 1500, "max_target_positions": 448, "decoder_start_token_id": 50258,
    "eos_token_id": 50257, "pad_token_id": 50256, "bos_token_id": 50257, "tie_word_embeddings": True,
    "dtype": "float16",
}


def whisper_tensor_shapes(config: dict[str, Any]) -> Iterator[tuple[str, tuple[int, ...]]]:
    """Every tensor of WhisperForConditionalGeneration, named and shaped as transformers saves it."""
    d, ffn = config["d_model"], config["encoder_ffn_dim"]

    def attention(prefix: str) -> Iterator[tuple[str, tuple[int, ...]]]:
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            yield f"{prefix}.{proj}.weight", (d, d)
            if proj != "k_proj":
                yield f"{prefix}.{proj}.bias", (d,)

    def norm(prefix: str) -> Iterator[tuple[str, tuple[int, ...]]]:
        yield f"{prefix}.weight", (d,)
        yield f"{prefix}.bias", (d,)

    def mlp(prefix: str) -> Iterator[tuple[str, tuple[int, ...]]]:
        yield f"{prefix}.fc1.weight", (ffn, d)
        yield f"{prefix}.fc1.bias", (ffn,)
        yield f"{prefix}.fc2.weight", (d, ffn)
        yield f"{prefix}.fc2.bias", (d,)

    yield "model.encoder.conv1.weight", (d, config["num_mel_bins"], 3)
    yield "model.encoder.conv1.bias", (d,)
    yield "model.encoder.conv2.weight", (d, d, 3)
    yield "model.encoder.conv2.bias", (d,)
    yield "model.encoder.embed_positions.weight", (config["max_source_positions"], d)
    for i in range(config["encoder_layers"]):
        layer = f"model.encoder.layers.{i}"
        yield from attention(f"{layer}.self_attn")
        yield from norm(f"{layer}.self_attn_layer_norm")
        yield from mlp(layer)
        yield from norm(f"{layer}.final_layer_norm")
    yield from norm("model.encoder.layer_norm")
    yield "model.decoder.embed_tokens.weight", (config["vocab_size"], d)
    yield "model.decoder.embed_positions.weight", (config["max_target_positions"], d)
    for i in range(config["decoder_layers"]):
        layer = f"model.decoder.layers.{i}"
        yield from attention(f"{layer}.self_attn")
        yield from norm(f"{layer}.self_attn_layer_norm")
        yield from attention(f"{layer}.encoder_attn")
        yield from norm(f"{layer}.encoder_attn_layer_norm")
        yield from mlp(layer)
        yield from norm(f"{layer}.final_layer_norm")
    yield from norm("model.decoder.layer_norm")


def _random_tensor(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Deterministic per name: weights ~N(0, 0.02), norms near 1, biases small."""
    import zlib

    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if "layer_norm" in name and name.endswith(".weight"):
        return (1 + 0.05 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float16)
    scale = 0.002 if name.endswith(".bias") else 0.02
    return (scale * rng.standard_normal(shape, dtype=np.float32)).astype(np.float16)


def build_synthetic_pair(out: Path, config: dict[str, Any], seed: int = 0, base_shards: int = 4) -> tuple[Path, Path]:
    """A random fp16 base with Whisper's exact tensor names and shapes (sharded, with an index, as
    large checkpoints are published) and its W4A16 (symmetric group-128 round to nearest, packed with
    our packer) in one file. Memory stays near one shard."""
    from pytest_whisperq.checks.checkpoint_format import LINEAR_KINDS

    shapes = list(whisper_tensor_shapes(config))
    base_dir, model_dir = out / "base", out / "w4a16"
    base_dir.mkdir(parents=True)
    model_dir.mkdir()
    model_config = {**config, "quantization_config": quantization_config()}
    for directory, cfg in ((base_dir, config), (model_dir, model_config)):
        (directory / "config.json").write_text(json.dumps(cfg, indent=2))
    weight_map: dict[str, str] = {}
    quantized: Tensors = {}
    for index, part in enumerate(np.array_split(np.arange(len(shapes)), base_shards)):
        file = f"model-{index + 1:05d}-of-{base_shards:05d}.safetensors"
        shard: Tensors = {}
        for i in part:
            name, shape = shapes[i]
            tensor = _random_tensor(name, shape, seed)
            shard[name] = tensor
            weight_map[name] = file
            module, _, param = name.rpartition(".")
            if param == "weight" and module.rpartition(".")[2] in LINEAR_KINDS:
                quantized.update({f"{module}.{k}": v for k, v in packed_linear(tensor).items()})
            else:
                quantized[name] = tensor
        save_file(shard, str(base_dir / file), {"format": "pt"})
        del shard
    (base_dir / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    save_file(quantized, str(model_dir / "model.safetensors"), {"format": "pt"})
    return model_dir, base_dir
