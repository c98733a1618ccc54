"""The WER delta gate and its paired bootstrap interval, on hand-made reports."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_whisperq.checks.accuracy import bootstrap_interval, check_wer_delta, speech_pools, wer_delta
from pytest_whisperq.checks.transcripts import UtteranceErrors, WerReport, pair_reports


def make_report(errors: list[int], words: list[int], subsets: list[str] | None = None, tag: str = "hyp") -> WerReport:
    subsets = subsets or ["s"] * len(errors)
    return WerReport(tuple(
        UtteranceErrors(f"u{i:03d}", subset, f"reference {i}", f"{tag} {i}", e, w)
        for i, (e, w, subset) in enumerate(zip(errors, words, subsets))
    ))


def test_identical_models_have_delta_zero_and_a_zero_width_interval():
    base = make_report([1, 0, 3, 2] * 25, [10] * 100)
    result = check_wer_delta("real", base, base, max_delta=0.5)
    assert result.ok and result.observed == 0.0 and result.limit == 0.5
    assert "delta +0.00 points, 95% CI [+0.00, +0.00]" in result.detail
    assert "base WER 15.00% (150/1000 words), model WER 15.00% (150/1000)" in result.detail


def test_delta_is_pooled_over_words_not_averaged_over_utterances():
    base = make_report([0, 0], [2, 98])
    model = make_report([1, 0], [2, 98])  # one utterance at 50%, the pool at 1%
    delta = wer_delta("real", pair_reports(base, model), resamples=200)
    assert delta.base_wer == 0.0 and delta.model_wer == 1.0 and delta.delta == 1.0


def test_a_regression_over_the_limit_fails_with_both_wers_and_the_worst_utterances():
    base = make_report([0] * 50, [20] * 50, tag="base says")
    model = make_report([0] * 44 + [3, 1, 2, 1, 1, 2], [20] * 50, tag="model says")
    result = check_wer_delta("real", base, model, max_delta=0.5)
    assert not result.ok and result.observed == 1.0
    text = result.describe()
    assert "FAIL wer_delta[real]: observed 1 points, limit 0.5 points" in text
    assert "base WER 0.00% (0/1000 words), model WER 1.00% (10/1000)" in text
    first = result.evidence[0]
    assert first.startswith("u044 (s): +3 errors (0 -> 3 of 20 words)")
    assert "ref: 'reference 44' | base: 'base says 44' | model: 'model says 44'" in first
    assert "--whisperq-max-wer-delta" in result.evidence[-1]


def test_the_interval_covers_the_point_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    widths = []
    for n in (50, 800):
        words = rng.integers(3, 20, size=n)
        base = rng.binomial(words, 0.05)
        model = base + rng.binomial(1, 0.1, size=n)
        low, high = bootstrap_interval(words, base, model, resamples=4000, confidence=0.95)
        point = 100 * (model.sum() - base.sum()) / words.sum()
        assert low < point < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2.5  # ~ 1/sqrt(16)


def test_bootstrap_matches_a_slow_reference_and_is_reproducible():
    words = np.array([5, 8, 3, 12, 7])
    base = np.array([0, 1, 0, 2, 1])
    model = np.array([1, 1, 0, 3, 1])
    fast = bootstrap_interval(words, base, model, resamples=3000, confidence=0.9, seed=7)
    rng = np.random.default_rng(7)
    draws = rng.integers(0, 5, size=(3000, 5))
    slow = [100 * sum(model[i] - base[i] for i in row) / sum(words[i] for i in row) for row in draws]
    assert fast == pytest.approx(tuple(np.quantile(slow, [0.05, 0.95])))
    assert fast == bootstrap_interval(words, base, model, resamples=3000, confidence=0.9, seed=7)


def test_gating_on_the_upper_bound_is_stricter_than_on_the_point():
    base = make_report([0] * 40, [10] * 40)
    model = make_report([0] * 38 + [1, 1], [10] * 40)  # +0.5 points exactly, on 2 utterances
    assert check_wer_delta("real", base, model, max_delta=0.5, gate_on="point").ok
    upper = check_wer_delta("real", base, model, max_delta=0.5, gate_on="upper")
    assert not upper.ok and upper.observed > 0.5 and "gated on the upper end of the interval" in upper.detail
    assert any("the point delta +0.50 is within the limit but the interval reaches" in line for line in upper.evidence)


def test_per_subset_figures_are_shown_in_every_result():
    base = make_report([0, 1, 0, 0], [10] * 4, ["ivr", "ivr", "read", "read"])
    model = make_report([0, 1, 1, 0], [10] * 4, ["ivr", "ivr", "read", "read"])
    result = check_wer_delta("real", base, model, max_delta=5.0, resamples=500)
    assert result.ok
    assert any(line.startswith("subset ivr: base 5.00% (1/20), model 5.00% (1/20), delta +0.00") for line in result.evidence)
    assert any(line.startswith("subset read: base 0.00% (0/20), model 5.00% (1/20), delta +5.00") for line in result.evidence)
    assert any(line.startswith("largest regression: u002 (read): +1 errors") for line in result.evidence)


def test_real_and_synthetic_speech_are_pooled_apart():
    class Utt:
        def __init__(self, uid: str, synthetic: bool) -> None:
            self.id, self.synthetic = uid, synthetic

    report = make_report([1, 2, 3], [10, 10, 10])
    pools = speech_pools([Utt("u000", False), Utt("u001", True), Utt("u002", False)], report, report)
    assert [(label, [u.id for u in part.utterances]) for label, part, _ in pools] == [
        ("real", ["u000", "u002"]), ("synthetic", ["u001"])]
    only_real = speech_pools([Utt("u000", False), Utt("u001", False), Utt("u002", False)], report)
    assert [label for label, _ in only_real] == ["real"]


def test_references_without_words_fail_instead_of_passing_at_zero():
    base = make_report([0, 0], [0, 0])
    model = make_report([6, 3], [0, 0])
    result = check_wer_delta("real", base, model, max_delta=0.5)
    assert not result.ok and "references have no words after normalisation" in result.detail


def test_an_unknown_gate_is_refused():
    base = make_report([0], [5])
    with pytest.raises(ValueError, match="gate_on must be one of"):
        check_wer_delta("real", base, base, max_delta=0.5, gate_on="Upper")
