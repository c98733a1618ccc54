"""Benchmark: the format checks on the largest real case, whisper-large-v3's exact tensor names
and shapes (1.54 B parameters, random weights packed honestly), against the time to read the files.

Run with `./dev bench`. The pair is built once (about 4 GB: a 4-shard fp16 base and a W4A16 file)
into the cache. Each measurement runs in a fresh process so its peak RSS is its own; "cold" runs
first evict the files from the page cache (posix_fadvise DONTNEED), "warm" runs read them from it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from checkpoint_factory import WHISPER_LARGE_V3, build_synthetic_pair

import pytest_whisperq.checks.packing
from pytest_whisperq.cache import Cache, default_cache_root

# Runs in the child: evict (if cold), then time one task, report seconds and peak RSS.
CHILD = r"""
import json, os, sys, time
from pathlib import Path
task, cold, model_dir, base_dir = sys.argv[1], sys.argv[2] == "cold", Path(sys.argv[3]), Path(sys.argv[4])
files = sorted(model_dir.glob("*.safetensors")) + sorted(base_dir.glob("*.safetensors"))
if cold:
    for file in files:
        fd = os.open(file, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
def peak_rss_mb():  # VmHWM: this process image's own high-water mark (ru_maxrss survives exec)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
from pytest_whisperq.models.tensors import CheckpointTensors
from pytest_whisperq.checks.format_suite import header_checks, value_checks
startup_rss_mb = peak_rss_mb()
start = time.perf_counter()
results = []
if task == "read":
    buffer = bytearray(16 << 20)
    for file in files:
        with open(file, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass
elif task in ("headers", "values"):
    model, base = CheckpointTensors.open(model_dir), CheckpointTensors.open(base_dir)
    results = (header_checks if task == "headers" else value_checks)(model, base)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "startup_rss_mb": startup_rss_mb, "bytes": sum(f.stat().st_size for f in files),
                  "results": [[r.name, r.ok, str(r.observed), r.detail] for r in results]}))
"""


@pytest.fixture(scope="module")
def large_v3_pair() -> tuple[Path, Path]:
    import inspect

    import checkpoint_factory

    generator = hashlib.sha256((inspect.getsource(checkpoint_factory)
                                + inspect.getsource(pytest_whisperq.checks.packing)).encode()).hexdigest()
    entry = Cache(default_cache_root()).get_or_build(
        "synthetic", "whisper-large-v3-shapes", {"config": WHISPER_LARGE_V3, "seed": 0, "generator": generator},
        lambda out: build_synthetic_pair(out, WHISPER_LARGE_V3),
    )
    return entry / "w4a16", entry / "base"


def _child(task: str, cache_state: str, pair: tuple[Path, Path]) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, task, cache_state, str(pair[0]), str(pair[1])],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("cache_state", ["cold", "warm"])
@pytest.mark.parametrize("task", ["read", "headers", "values"])
def test_format_checks_on_whisper_large_v3_shapes(benchmark, large_v3_pair, task, cache_state):
    if cache_state == "warm":
        _child("read", "warm", large_v3_pair)  # bring every file into the page cache first
    report = benchmark.pedantic(lambda: _child(task, cache_state, large_v3_pair), rounds=1, iterations=1)
    benchmark.extra_info.update(report)
    benchmark.extra_info["gb_per_s"] = report["bytes"] / report["seconds"] / 1e9
    failed = [r for r in report["results"] if not r[1]]
    assert not failed, failed
    if task != "read":
        assert len(report["results"]) == (8 if task == "headers" else 2)
    if task == "values":  # bounded: far below the 4 GB of weights it read
        assert report["peak_rss_mb"] < 1500, report
