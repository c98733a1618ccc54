"""Throughput figures and floors, on hand-made timings."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_whisperq.checks.throughput import (
    Rounds,
    Throughput,
    check_floor,
    check_floors,
    check_measured,
    check_ratio,
    percentile,
    why_not_comparable,
)
from pytest_whisperq.results import blocks_release


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


def rounds_of(base_walls: list[float], model_walls: list[float], why: str | None = None) -> Rounds:
    return Rounds(tuple(run("base", w, [1.0] * 4) for w in base_walls),
                  tuple(run("model", w, [1.0] * 4) for w in model_walls), why)


def test_a_model_as_fast_as_its_base_round_after_round_passes_with_its_interval():
    result = check_ratio(rounds_of([4.0, 4.4, 3.8, 4.2, 4.0], [4.1, 4.3, 3.9, 4.2, 4.1]), 0.8)
    assert result.ok and str(result.outcome) == "pass" and result.gated
    assert result.limit == 0.8 and 0.95 < result.observed <= 1.0
    low, high = result.interval
    assert 0.9 < low < result.observed < high < 1.05
    assert "over 5 interleaved rounds: median" in result.detail and "(floor 0.8)" in result.detail
    assert result.evidence[0] == "round 1: model 9.756 / base 10.000 = 0.976"
    assert "interval [0.9" in result.describe()
    assert "PASS: shown above the floor: the lower bound is at or above it" in result.detail


def test_a_model_at_half_the_speed_fails_naming_the_rounds():
    result = check_ratio(rounds_of([4.0, 4.2, 3.9], [8.0, 8.5, 7.7]), 0.8)
    assert not result.ok and str(result.outcome) == "fail" and result.observed == pytest.approx(0.5, abs=0.02)
    assert result.interval[1] < 0.8
    assert "FAIL: shown below the floor: the upper bound is below it" in result.detail


def test_one_round_is_never_a_verdict():
    """One round each (what the suite did before rounds): whatever the ratio, it cannot show its own spread."""
    for model_wall in (6.25, 4.0, 2.0):  # 0.64, 1.0, 2.0
        result = check_ratio(rounds_of([4.0], [model_wall]), 0.8)
        assert str(result.outcome) == "inconclusive" and not result.ok
        assert "too few rounds (1, at least 3 to pass)" in result.detail
        assert "Too few rounds to show their own spread: run --whisperq-rounds=3 or more" in result.detail


def test_rounds_that_disagree_are_inconclusive_and_say_how_to_resolve_them():
    result = check_ratio(rounds_of([4.0, 4.0, 4.0], [3.0, 6.5, 4.0]), 0.8)
    assert str(result.outcome) == "inconclusive"
    assert "The rounds vary too much to tell: run more (--whisperq-rounds=" in result.detail


def test_on_dense_compute_the_ratio_is_not_applicable_and_never_gated():
    why = why_not_comparable("transformers", quantized=True, runs_quantized_weights=False)
    result = check_ratio(rounds_of([4.0], [6.25], why), 0.8)  # what a noisy dense run can look like: 0.64
    assert str(result.outcome) == "not applicable" and not result.gated and result.decision is None
    assert result.label == "INFO (not applicable, not gated)"
    assert result.detail.startswith("not applicable: the transformers backend dequantizes the checkpoint")
    assert not blocks_release(result)
    assert why_not_comparable("vllm", quantized=True, runs_quantized_weights=True) is None
    assert why_not_comparable("openai", quantized=True, runs_quantized_weights=None) is None  # a remote server
    assert "not quantized" in why_not_comparable("vllm", quantized=False, runs_quantized_weights=False)


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
