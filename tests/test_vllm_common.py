"""What the vLLM backends share, without vLLM: failure advice, W4A16 detection, request latency."""

from __future__ import annotations

from types import SimpleNamespace

from checkpoint_factory import quantization_config

from pytest_whisperq.backends.vllm_common import explain, has_int4_weights
from pytest_whisperq.backends.vllm_offline import request_latency


def test_the_missing_cpu_int4_kernel_is_explained():
    log = "AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'"
    advice = explain(log)
    assert advice.startswith("\nwhat this means: this vLLM CPU build has no INT4 weight kernel for this processor")
    assert "AVX-512" in advice and "--whisperq-backend=transformers" in advice
    assert explain("RuntimeError: something else") == ""


def test_w4a16_is_recognised_from_the_config():
    assert has_int4_weights({"quantization_config": quantization_config(num_bits=4)})
    assert has_int4_weights({"compression_config": quantization_config(num_bits=4)})  # older checkpoints' key
    assert not has_int4_weights({"quantization_config": quantization_config(num_bits=8)})
    assert not has_int4_weights({})
    w4a8 = quantization_config(num_bits=4)
    w4a8["config_groups"]["group_0"]["input_activations"] = {"num_bits": 8}
    assert not has_int4_weights({"quantization_config": w4a8})


def test_request_latency_comes_from_the_engine_timestamps_when_it_kept_them():
    timed = SimpleNamespace(metrics=SimpleNamespace(queued_ts=100.0, last_token_ts=102.5))
    assert request_latency(timed, batch_seconds=9.0) == 2.5
    assert request_latency(SimpleNamespace(metrics=None), batch_seconds=9.0) == 9.0
    assert request_latency(SimpleNamespace(), batch_seconds=9.0) == 9.0
