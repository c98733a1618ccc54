"""pytest-benchmark as the store of the throughput rounds.

pytest-benchmark times consecutive calls of one function in one test. A speed ratio needs base and model
interleaved round by round on the same machine state, in one measurement made once a run for two tests, so
the plugin times the rounds itself (`WhisperqSession.throughput_rounds`) and hands each role's per-round wall
times to pytest-benchmark as that test's rounds: its statistics, `--benchmark-json`, `--benchmark-autosave`
and `--benchmark-compare` then work on the real rounds, and the card's figures ride in `extra_info`.
(`_make_stats` is pytest-benchmark's own constructor of a test's statistics; the version is pinned.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_whisperq.checks.throughput import Throughput

MODE = "pytest-whisperq rounds"  # what pytest-benchmark names as the fixture's use


def record_rounds(benchmark: Any, rounds: Sequence[Throughput], combined: Throughput) -> None:
    """Give `benchmark` the rounds' wall times and the card's figures (over all rounds, and per round)."""
    benchmark.extra_info.update(combined.figures())
    benchmark.extra_info["rounds"] = [r.figures() for r in rounds]
    if benchmark.disabled or not rounds:
        return
    stats = benchmark._make_stats(1)
    for measured in rounds:
        stats.update(measured.wall_seconds)
    benchmark._mode = MODE
