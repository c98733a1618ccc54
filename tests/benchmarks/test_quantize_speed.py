"""Benchmark: W4A16 GPTQ time and peak memory against the number of calibration samples.

Run with `./dev bench` (pytest-benchmark; `./dev test` skips benchmarks). Each round quantizes
whisper-base in a fresh process with an empty cache, so the time is the whole job a user waits for
(load, calibrate, GPTQ, pack, save) and the memory is that process's peak RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("samples", [4, 8, 16, 32])
def test_quantize_whisper_base(benchmark, whisper_base_dir, tmp_path_factory, samples):
    runs = iter(range(1000))

    def quantize_once() -> dict:
        work = tmp_path_factory.mktemp(f"q{samples}-{next(runs)}")
        subprocess.run(
            [sys.executable, "-m", "pytest_whisperq", "quantize", str(whisper_base_dir), str(work / "out"),
             "--samples", str(samples), "--device", "cpu", "--cache-dir", str(work / "cache")],
            check=True, capture_output=True, text=True,
        )
        return json.loads((work / "out" / "whisperq-quantization.json").read_text())

    provenance = benchmark.pedantic(quantize_once, rounds=1, iterations=1)
    benchmark.extra_info.update(
        samples=samples,
        quantize_seconds=provenance["seconds"],
        peak_rss_mb=provenance["peak_rss_mb"],
        versions=provenance["versions"],
    )
    assert provenance["samples"] == samples
