"""The decision rule: each branch, the floor on the standard error, the estimate of data to add."""

from __future__ import annotations

import math

import pytest

from pytest_whisperq.decision import Outcome, Rule, decide, paired_mean_se

RULE = Rule(alpha=0.05)
Z = 1.6448536269514722


def test_shown_within_passes_and_shown_beyond_fails_whatever_the_resolution():
    assert decide(-2.0, 0.5, limit=0.5, margin=0.5, units=100).outcome is Outcome.PASS  # high = -1.18
    beyond = decide(3.0, 1.0, limit=0.5, margin=0.5, units=100)
    assert beyond.outcome is Outcome.FAIL and beyond.how.startswith("shown beyond")
    assert beyond.low == pytest.approx(3.0 - Z) and beyond.high == pytest.approx(3.0 + Z)


@pytest.mark.parametrize("point, outcome", [(0.45, Outcome.PASS), (0.5, Outcome.PASS), (0.55, Outcome.FAIL)])
def test_a_resolved_figure_is_decided_by_its_point(point, outcome):
    decision = decide(point, 0.3, limit=0.5, margin=0.5, units=300)  # z * se = 0.49 <= 0.5
    assert decision.outcome is outcome and decision.how.startswith("resolved")


def test_an_unresolved_figure_is_inconclusive_with_the_data_that_would_decide():
    decision = decide(0.4, 0.6, limit=0.5, margin=0.5, units=100)
    assert decision.outcome is Outcome.INCONCLUSIVE
    # se ~ 1/sqrt(n): n * (z * se / margin)^2 utterances bring z * se to the margin
    assert decision.more_units == math.ceil(100 * (Z * 0.6 / 0.5) ** 2) - 100
    assert decision.se_needed == pytest.approx(0.5 / Z)


def test_fewer_utterances_than_the_minimum_never_pass_but_can_fail():
    assert decide(-5.0, 0.1, 0.5, 0.5, units=10).outcome is Outcome.INCONCLUSIVE
    assert decide(9.0, 0.1, 0.5, 0.5, units=10).outcome is Outcome.FAIL
    assert decide(-5.0, 0.1, 0.5, 0.5, units=10).more_units >= 20


def test_the_floor_keeps_an_all_agreeing_pool_from_a_zero_width_interval():
    floor = RULE.rule_of_three_se(23)  # three utterances, 23 words, all the same for both models
    decision = decide(0.0, 0.0, 0.5, 0.5, units=3, rule=RULE, se_floor=floor)
    assert decision.high == pytest.approx(100 * 3 / 23, rel=0.01)  # 3 errors in 23 words still plausible
    assert decision.outcome is Outcome.INCONCLUSIVE
    large = decide(0.0, 0.0, 0.5, 0.5, units=312, rule=RULE, se_floor=RULE.rule_of_three_se(1591))
    assert large.outcome is Outcome.PASS and large.high == pytest.approx(100 * 3 / 1591, rel=0.01)


def test_the_error_rate_sets_the_quantile_and_must_be_sensible():
    assert Rule(alpha=0.01).z == pytest.approx(2.326, abs=1e-3)
    with pytest.raises(ValueError, match="alpha"):
        Rule(alpha=0.6)
    with pytest.raises(ValueError, match="margin"):
        decide(0.0, 0.1, 0.5, 0.0, 100)


def test_paired_mean_and_its_standard_error():
    mean, se = paired_mean_se([1, 0, 0, 0, -1, 0, 1, 0])
    assert mean == pytest.approx(12.5) and se == pytest.approx(100 * math.sqrt(0.4107142857 / 8))
    assert paired_mean_se([1])[1] == math.inf and paired_mean_se([])[1] == math.inf
