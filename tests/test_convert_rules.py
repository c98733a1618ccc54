"""The converter refuses what it would get wrong, on small synthetic CTranslate2 models."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_whisperq.errors import ConversionError
from pytest_whisperq.models.convert import complete_tokenizer, ct2_to_hf_state_dict
from pytest_whisperq.models.ct2 import Ct2Model

D, FFN, VOCAB = 8, 16, 12


def tiny_ct2(layers: int = 1) -> Ct2Model:
    rng = np.random.default_rng(0)
    v: dict[str, np.ndarray] = {}

    def lin(name, out, inp, bias=True):
        v[f"{name}/weight"] = rng.standard_normal((out, inp)).astype(np.float16)
        if bias:
            v[f"{name}/bias"] = rng.standard_normal(out).astype(np.float16)

    def ln(name):
        v[f"{name}/gamma"] = np.ones(D, np.float16)
        v[f"{name}/beta"] = np.zeros(D, np.float16)

    for side in ("encoder", "decoder"):
        v[f"{side}/num_heads"] = np.array(2, np.int16)
        v[f"{side}/position_encodings/encodings"] = np.zeros((4, D), np.float16)
        ln(f"{side}/layer_norm")
        for i in range(layers):
            p = f"{side}/layer_{i}"
            lin(f"{p}/self_attention/linear_0", 3 * D, D)
            v[f"{p}/self_attention/linear_0/bias"][D : 2 * D] = 0  # k_proj has no bias
            lin(f"{p}/self_attention/linear_1", D, D)
            ln(f"{p}/self_attention/layer_norm")
            if side == "decoder":
                lin(f"{p}/attention/linear_0", D, D)
                lin(f"{p}/attention/linear_1", 2 * D, D)
                v[f"{p}/attention/linear_1/bias"][:D] = 0
                lin(f"{p}/attention/linear_2", D, D)
                ln(f"{p}/attention/layer_norm")
            lin(f"{p}/ffn/linear_0", FFN, D)
            lin(f"{p}/ffn/linear_1", D, FFN)
            ln(f"{p}/ffn/layer_norm")
    v["encoder/conv1/weight"] = np.zeros((D, 3, 3), np.float16)
    v["encoder/conv1/bias"] = np.zeros(D, np.float16)
    v["encoder/conv2/weight"] = np.zeros((D, D, 3), np.float16)
    v["encoder/conv2/bias"] = np.zeros(D, np.float16)
    v["decoder/embeddings/weight"] = rng.standard_normal((VOCAB, D)).astype(np.float16)
    v["decoder/scale_embeddings"] = np.array(0, np.int8)
    return Ct2Model("WhisperSpec", 3, v, {"decoder/projection/weight": "decoder/embeddings/weight"})


def test_fused_attention_is_split_exactly():
    model = tiny_ct2()
    state = ct2_to_hf_state_dict(model)
    fused = model.variables["encoder/layer_0/self_attention/linear_0/weight"]
    attn = "model.encoder.layers.0.self_attn"
    assert np.array_equal(np.concatenate([state[f"{attn}.{p}_proj.weight"] for p in "qkv"]), fused)
    assert f"{attn}.k_proj.bias" not in state and f"{attn}.q_proj.bias" in state
    cross = "model.decoder.layers.0.encoder_attn"
    assert np.array_equal(state[f"{cross}.v_proj.weight"],
                          model.variables["decoder/layer_0/attention/linear_1/weight"][D:])
    assert "proj_out.weight" not in state  # tied to the embeddings through the config


def test_nonzero_k_bias_would_be_lost_and_is_refused():
    model = tiny_ct2()
    model.variables["encoder/layer_0/self_attention/linear_0/bias"][D] = 1
    with pytest.raises(ConversionError, match="k_proj part of the fused bias is not zero"):
        ct2_to_hf_state_dict(model)


def test_untied_head_and_scaled_embeddings_are_refused():
    untied = tiny_ct2()
    untied.aliases.clear()
    with pytest.raises(ConversionError, match="not tied"):
        ct2_to_hf_state_dict(untied)
    scaled = tiny_ct2()
    scaled.variables["decoder/scale_embeddings"] = np.array(1, np.int8)
    with pytest.raises(ConversionError, match="scale_embeddings"):
        ct2_to_hf_state_dict(scaled)


def test_missing_variable_names_itself():
    model = tiny_ct2()
    del model.variables["encoder/conv1/weight"]
    with pytest.raises(ConversionError, match="encoder/conv1/weight"):
        ct2_to_hf_state_dict(model)


def test_tokenizer_is_completed_with_timestamps_only():
    tokenizer = {"model": {"vocab": {"a": 0, "b": 1}}, "added_tokens": [{"id": 2, "content": "<|endoftext|>"}]}
    done = complete_tokenizer(tokenizer, ["a", "b", "<|endoftext|>", "<|0.00|>", "<|0.02|>"], 5)
    assert [t["content"] for t in done["added_tokens"]][1:] == ["<|0.00|>", "<|0.02|>"]
    with pytest.raises(ConversionError, match="not a timestamp"):
        complete_tokenizer({"model": {"vocab": {}}, "added_tokens": []}, ["oops"], 1)
    with pytest.raises(ConversionError, match="vocabulary has 1 entries"):
        complete_tokenizer({"model": {"vocab": {}}, "added_tokens": []}, ["x"], 2)
