"""Throughput figures and floors, on hand-made timings."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_whisperq.checks.throughput import Throughput, check_floor, check_floors, check_measured, check_ratio, percentile


def run(label: str, wall: float, latencies: list[float], tokens: int = 200, audio: float = 40.0) -> Throughput:
    return Throughput(label, "fake", len(latencies), len(latencies), wall, audio, tokens, tuple(latencies))


def test_figures_in_the_cards_form():
    result = run("model", 4.0, [1.0, 2.0, 3.0, 4.0], tokens=100, audio=20.0)
    assert result.figures() == {
        "total_time_s": 4.0, "requests": 4, "successful_requests": 4, "latency_mean_s": 2.5,
        "latency_median_s": 2.5, "latency_p95_s": 3.85, "requests_per_s": 1.0, "output_tokens_per_s": 25.0, "rtfx": 5.0,
    }


@pytest.mark.parametrize("q", [0, 50, 90, 95, 100])
def test_percentile_matches_numpy(q):
    values = [0.3, 1.2, 0.7, 2.5, 0.9, 1.1, 4.0]
    assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_absolute_floors_fail_with_the_figures():
    slow = run("model", 10.0, [2.0] * 5)
    result = check_floor(slow, "requests_per_second", 1.0)
    assert not result.ok and result.observed == 0.5 and result.limit == 1.0
    assert "5/5 requests in 10.00 s, 0.50 req/s" in result.detail
    assert check_floor(slow, "rtfx", 3.9).ok and not check_floor(slow, "rtfx", 4.1).ok


def test_the_relative_floor_compares_with_the_base_of_the_same_run():
    base, model = run("base", 4.0, [1.0] * 4), run("model", 8.0, [2.0] * 4)
    result = check_ratio(model, base, 0.8)
    assert not result.ok and result.observed == 0.5
    assert result.detail == "model 5.000 / base 10.000"
    assert result.evidence[0].startswith("model (fake): 4/4 requests in 8.00 s")
    assert check_ratio(base, base, 0.8).ok


def test_a_measurement_with_failed_requests_fails():
    complete = run("base", 4.0, [1.0] * 4)
    assert check_measured(complete).ok and check_measured(complete).observed == 1.0
    partial = Throughput("model", "fake", 4, 3, 4.0, 40.0, 200, (1.0, 1.0, 1.0))
    assert not check_measured(partial).ok


def test_only_the_floors_the_user_set_are_checks():
    result = run("model", 10.0, [2.0] * 5)
    checks = check_floors(result, {"requests_per_second": None, "rtfx": 4.1, "tokens_per_second": None})
    assert [(c.name, c.ok) for c in checks] == [("min_rtfx[model]", False)]
    assert check_floors(result, {"requests_per_second": None}) == []
