"""Turn a CTranslate2 Whisper model (`model.bin` + its config and tokenizer) into a complete
Hugging Face checkpoint: config, fp16 safetensors, tokenizer, feature extractor, generation
config.

This is the exact inverse of ctranslate2's `WhisperLoader`: its fused self-attention q/k/v is
split, its cross-attention k/v is split, the zero bias it invents for `k_proj` is dropped (and
checked to be zero), and `proj_out` is tied to `decoder.embed_tokens` as in the original. The
tests convert the result back with ctranslate2's own converter and compare bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_whisperq.errors import ConversionError
from pytest_whisperq.models.ct2 import Ct2Model

# Whisper's log-mel front end is fixed by the architecture; only the mel count varies.
SAMPLING_RATE = 16_000
HOP_LENGTH = 160
N_FFT = 400
CHUNK_LENGTH_S = 30

_LAYER = re.compile(r"^(encoder|decoder)/layer_(\d+)/")


@dataclass(frozen=True)
class WhisperDims:
    vocab_size: int
    d_model: int
    num_mel_bins: int
    encoder_layers: int
    decoder_layers: int
    encoder_attention_heads: int
    decoder_attention_heads: int
    encoder_ffn_dim: int
    decoder_ffn_dim: int
    max_source_positions: int
    max_target_positions: int


def infer_dims(ct2: Ct2Model) -> WhisperDims:
    v = ct2.variables
    try:
        layers = {"encoder": set(), "decoder": set()}
        for name in v:
            if match := _LAYER.match(name):
                layers[match.group(1)].add(int(match.group(2)))
        return WhisperDims(
            vocab_size=v["decoder/embeddings/weight"].shape[0],
            d_model=v["decoder/embeddings/weight"].shape[1],
            num_mel_bins=v["encoder/conv1/weight"].shape[1],
            encoder_layers=len(layers["encoder"]),
            decoder_layers=len(layers["decoder"]),
            encoder_attention_heads=int(ct2.scalar("encoder/num_heads")),
            decoder_attention_heads=int(ct2.scalar("decoder/num_heads")),
            encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
            decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
            max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
            max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
        )
    except KeyError as missing:
        raise ConversionError(f"not a CTranslate2 Whisper model: variable {missing} missing")


def _split_rows(array: np.ndarray, parts: int, name: str) -> list[np.ndarray]:
    if array.shape[0] % parts:
        raise ConversionError(f"{name}: {array.shape[0]} rows do not split into {parts} parts")
    return np.split(array, parts, axis=0)


def _checked_zero_bias(bias: np.ndarray, name: str) -> None:
    # HF Whisper's k_proj has no bias; ctranslate2 fills zeros when fusing. Anything else
    # would be silently dropped weights.
    if np.any(bias != 0):
        raise ConversionError(f"{name}: the k_proj part of the fused bias is not zero")


def ct2_to_hf_state_dict(ct2: Ct2Model) -> dict[str, np.ndarray]:
    """Map ctranslate2 variable names to `WhisperForConditionalGeneration` state-dict keys."""
    if ct2.spec_name != "WhisperSpec":
        raise ConversionError(f"expected a WhisperSpec model, got {ct2.spec_name}")
    v = ct2.variables
    dims = infer_dims(ct2)
    out: dict[str, np.ndarray] = {}

    def linear(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = v[f"{src}/weight"]
        if f"{src}/bias" in v:
            out[f"{dst}.bias"] = v[f"{src}/bias"]

    def layer_norm(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = v[f"{src}/gamma"]
        out[f"{dst}.bias"] = v[f"{src}/beta"]

    def fused(src: str, dsts: list[str], k_index: int) -> None:
        weights = _split_rows(v[f"{src}/weight"], len(dsts), src)
        biases = _split_rows(v[f"{src}/bias"], len(dsts), src)
        for index, (dst, weight, bias) in enumerate(zip(dsts, weights, biases)):
            out[f"{dst}.weight"] = weight
            if index == k_index:
                _checked_zero_bias(bias, src)
            else:
                out[f"{dst}.bias"] = bias

    for side in ("encoder", "decoder"):
        hf = f"model.{side}"
        out[f"{hf}.embed_positions.weight"] = v[f"{side}/position_encodings/encodings"]
        layer_norm(f"{side}/layer_norm", f"{hf}.layer_norm")
        n_layers = dims.encoder_layers if side == "encoder" else dims.decoder_layers
        for i in range(n_layers):
            src, dst = f"{side}/layer_{i}", f"{hf}.layers.{i}"
            attn = f"{dst}.self_attn"
            fused(f"{src}/self_attention/linear_0", [f"{attn}.q_proj", f"{attn}.k_proj", f"{attn}.v_proj"], 1)
            linear(f"{src}/self_attention/linear_1", f"{attn}.out_proj")
            layer_norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
            if side == "decoder":
                cross = f"{dst}.encoder_attn"
                linear(f"{src}/attention/linear_0", f"{cross}.q_proj")
                fused(f"{src}/attention/linear_1", [f"{cross}.k_proj", f"{cross}.v_proj"], 0)
                linear(f"{src}/attention/linear_2", f"{cross}.out_proj")
                layer_norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
            linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
            linear(f"{src}/ffn/linear_1", f"{dst}.fc2")
            layer_norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
    for conv in ("conv1", "conv2"):
        out[f"model.encoder.{conv}.weight"] = v[f"encoder/{conv}/weight"]
        out[f"model.encoder.{conv}.bias"] = v[f"encoder/{conv}/bias"]
    out["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]

    _check_tied_head(ct2)
    _check_scalars(ct2)
    return {name: np.ascontiguousarray(array.astype(np.float16)) for name, array in out.items()}


def _check_tied_head(ct2: Ct2Model) -> None:
    head = ct2.aliases.get("decoder/projection/weight")
    if head != "decoder/embeddings/weight" or "decoder/projection/bias" in ct2.variables:
        raise ConversionError(
            "the output projection is not tied to the token embeddings; this converter only "
            "handles OpenAI Whisper checkpoints, whose proj_out is tied"
        )


def _check_scalars(ct2: Ct2Model) -> None:
    # Values ctranslate2 writes for every OpenAI Whisper model; anything else is a variant
    # (scaled embeddings, post-norm) that this converter would get wrong.
    expected = {"decoder/scale_embeddings": 0, "decoder/pre_norm": 1, "encoder/pre_norm": 1}
    for name, value in expected.items():
        if name in ct2.variables and ct2.scalar(name) != value:
            raise ConversionError(f"{name} = {ct2.scalar(name)}, expected {value}")


# --- tokenizer and configs -------------------------------------------------------------

def complete_tokenizer(tokenizer: dict[str, Any], vocabulary: list[str], vocab_size: int) -> dict[str, Any]:
    """Add the timestamp tokens some packages leave out, taken from ctranslate2's vocabulary.

    The result covers every id the model can emit, as the Hugging Face tokenizers do.
    """
    added = tokenizer["added_tokens"]
    known = {token["id"] for token in added} | set(tokenizer["model"]["vocab"].values())
    if len(vocabulary) != vocab_size:
        raise ConversionError(
            f"vocabulary has {len(vocabulary)} entries but the model has {vocab_size} embeddings"
        )
    for token_id in range(vocab_size):
        if token_id in known:
            continue
        content = vocabulary[token_id]
        if not re.fullmatch(r"<\|\d+\.\d\d\|>", content):
            raise ConversionError(f"tokenizer lacks id {token_id} ({content!r}), not a timestamp")
        added.append(
            {"id": token_id, "content": content, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": True, "special": False}
        )
    return tokenizer


def special_ids(tokenizer: dict[str, Any]) -> dict[str, int]:
    return {token["content"]: token["id"] for token in tokenizer["added_tokens"]}


def language_tokens(tokenizer: dict[str, Any]) -> dict[str, int]:
    """`<|xx|>` language tokens: the specials between start-of-transcript and translate."""
    ids = special_ids(tokenizer)
    first, last = ids["<|startoftranscript|>"] + 1, ids["<|translate|>"]
    return {content: i for content, i in ids.items() if first <= i < last}


def build_configs(
    dims: WhisperDims, ct2_config: dict[str, Any], tokenizer: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config.json, generation_config.json) as the Hugging Face Whisper checkpoints have them."""
    ids = special_ids(tokenizer)
    multilingual = dims.vocab_size >= 51865
    eot = ids["<|endoftext|>"]
    languages = language_tokens(tokenizer)
    if multilingual and sorted(languages.values()) != sorted(ct2_config.get("lang_ids", [])):
        raise ConversionError("language tokens of the tokenizer and of the CTranslate2 config differ")
    config = {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "activation_function": "gelu",
        "d_model": dims.d_model,
        "decoder_attention_heads": dims.decoder_attention_heads,
        "decoder_ffn_dim": dims.decoder_ffn_dim,
        "decoder_layers": dims.decoder_layers,
        "encoder_attention_heads": dims.encoder_attention_heads,
        "encoder_ffn_dim": dims.encoder_ffn_dim,
        "encoder_layers": dims.encoder_layers,
        "num_hidden_layers": dims.encoder_layers,
        "max_source_positions": dims.max_source_positions,
        "max_target_positions": dims.max_target_positions,
        "num_mel_bins": dims.num_mel_bins,
        "vocab_size": dims.vocab_size,
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": ids["<|startoftranscript|>"],
        "dtype": "float16",
    }
    generation = {
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": ids["<|startoftranscript|>"],
        "begin_suppress_tokens": list(ct2_config["suppress_ids_begin"]),
        "suppress_tokens": list(ct2_config["suppress_ids"]),
        "alignment_heads": [list(pair) for pair in ct2_config["alignment_heads"]],
        "is_multilingual": multilingual,
        "max_initial_timestamp_index": 50,
        "max_length": dims.max_target_positions,
        "no_timestamps_token_id": ids["<|notimestamps|>"],
        "prev_sot_token_id": ids["<|startofprev|>"],
        "return_timestamps": False,
    }
    if multilingual:
        generation["lang_to_id"] = dict(sorted(languages.items(), key=lambda item: item[1]))
        generation["task_to_id"] = {
            "translate": ids["<|translate|>"],
            "transcribe": ids["<|transcribe|>"],
        }
    return config, generation


def tokenizer_config() -> dict[str, Any]:
    return {
        "tokenizer_class": "WhisperTokenizer",
        "add_prefix_space": False,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 1024,
        "clean_up_tokenization_spaces": False,
        "processor_class": "WhisperProcessor",
    }


def feature_extractor_config(num_mel_bins: int) -> dict[str, Any]:
    return {
        "feature_extractor_type": "WhisperFeatureExtractor",
        "processor_class": "WhisperProcessor",
        "feature_size": num_mel_bins,
        "sampling_rate": SAMPLING_RATE,
        "hop_length": HOP_LENGTH,
        "n_fft": N_FFT,
        "chunk_length": CHUNK_LENGTH_S,
        "n_samples": SAMPLING_RATE * CHUNK_LENGTH_S,
        "nb_max_frames": SAMPLING_RATE * CHUNK_LENGTH_S // HOP_LENGTH,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": False,
    }


def write_hf_checkpoint(
    out_dir: Path,
    ct2: Ct2Model,
    ct2_config: dict[str, Any],
    tokenizer: dict[str, Any],
    vocabulary: list[str],
    normalizer: dict[str, str] | None,
) -> None:
    """Write a complete Hugging Face Whisper checkpoint into `out_dir`."""
    from safetensors.numpy import save_file

    dims = infer_dims(ct2)
    state = ct2_to_hf_state_dict(ct2)
    tokenizer = complete_tokenizer(tokenizer, vocabulary, dims.vocab_size)
    config, generation = build_configs(dims, ct2_config, tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "model.safetensors").chmod(0o644)  # safetensors writes 0600; caches are shared

    def dump(name: str, payload: Any) -> None:
        (out_dir / name).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")

    dump("config.json", config)
    dump("generation_config.json", generation)
    dump("tokenizer.json", tokenizer)
    dump("tokenizer_config.json", tokenizer_config())
    dump("preprocessor_config.json", feature_extractor_config(dims.num_mel_bins))
    if normalizer is not None:
        dump("normalizer.json", normalizer)
