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


def test_request_latency_runs_from_the_call_to_the_last_token_when_the_engine_stamped_it():
    timed = SimpleNamespace(metrics=SimpleNamespace(queued_ts=100.4, last_token_ts=102.5))
    assert request_latency(timed, sent=100.0, batch_seconds=9.0) == 2.5  # input processing before queueing included
    assert request_latency(SimpleNamespace(metrics=None), sent=100.0, batch_seconds=9.0) == 9.0
    assert request_latency(SimpleNamespace(), sent=100.0, batch_seconds=9.0) == 9.0
    stale = SimpleNamespace(metrics=SimpleNamespace(last_token_ts=99.0))  # a clock that cannot be this call's
    assert request_latency(stale, sent=100.0, batch_seconds=9.0) == 9.0
