"""The processor as CPU kernels see it: reported with throughput figures, and a key of CPU transcripts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_whisperq.hardware import KERNEL_FLAGS, cpu_description, cpu_kernels, parse_cpuinfo

# two processors as /proc/cpuinfo shows them (trimmed): this project's CI runner kind and an AMX Xeon
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7763 64-Core Processor
flags\t\t: fpu sse2 avx avx2 fma bmi2 sha_ni

processor\t: 1
model name\t: AMD EPYC 7763 64-Core Processor
flags\t\t: fpu sse2 avx avx2 fma bmi2 sha_ni
"""
XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu avx2 fma avx512f avx512dq avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""


def test_the_kernel_selecting_flags_are_read_in_a_fixed_order():
    assert parse_cpuinfo(EPYC) == {"model": "AMD EPYC 7763 64-Core Processor", "isa": ["avx2", "fma"]}
    assert parse_cpuinfo(XEON) == {"model": "Intel(R) Xeon(R) Platinum 8480+", "isa": [
        "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"]}
    assert parse_cpuinfo("") == {"model": None, "isa": []}


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="Linux's /proc/cpuinfo")
def test_this_machine_is_described_as_its_cpuinfo_says():
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    found = cpu_kernels()
    assert found["model"] and found["isa"] == [flag for flag in KERNEL_FLAGS if flag in flags]
    assert cpu_description() == {**found, "usable_cores": len(os.sched_getaffinity(0))}
