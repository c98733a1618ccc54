"""The WER delta gate judged by the decision rule, on hand-made reports."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_whisperq.checks.accuracy import check_wer_delta, speech_pools, wer_delta
from pytest_whisperq.decision import ratio_delta_se
from pytest_whisperq.checks.transcripts import UtteranceErrors, WerReport, pair_reports


def make_report(errors: list[int], words: list[int], subsets: list[str] | None = None, tag: str = "hyp") -> WerReport:
    subsets = subsets or ["s"] * len(errors)
    return WerReport(tuple(
        UtteranceErrors(f"u{i:03d}", subset, f"reference {i}", f"{tag} {i}", e, w)
        for i, (e, w, subset) in enumerate(zip(errors, words, subsets))
    ))


def test_identical_models_pass_on_a_large_pool_with_a_floor_on_the_interval():
    base = make_report([1, 0, 3, 2] * 75, [10] * 300)
    result = check_wer_delta("real", base, base, max_delta=0.5)
    assert result.outcome == "pass" and result.observed == 0.0 and result.limit == 0.5
    # no utterance differs, yet the interval is not [0, 0]: 3 differing errors stay plausible (rule of three)
    assert result.decision.high == pytest.approx(0.1, abs=0.001) and result.decision.low < 0
    assert "base WER 15.00% (450/3000 words), model WER 15.00% (450/3000)" in result.detail


def test_three_utterances_that_agree_are_inconclusive_never_a_pass():
    base = make_report([0, 1, 0], [8, 7, 8])
    result = check_wer_delta("real", base, base, max_delta=0.5)
    assert result.outcome == "inconclusive" and not result.ok
    assert "too few utterances (3, at least 30 to pass)" in result.detail
    assert result.evidence[0].startswith("to decide: the upper bound must reach the limit or the standard error fall to 0.304")
    assert "--whisperq-accept-inconclusive" in result.evidence[0]


def test_delta_is_pooled_over_words_not_averaged_over_utterances():
    base = make_report([0, 0], [2, 98])
    model = make_report([1, 0], [2, 98])  # one utterance at 50%, the pool at 1%
    delta = wer_delta("real", pair_reports(base, model))
    assert delta.base_wer == 0.0 and delta.model_wer == 1.0 and delta.delta == 1.0


def test_a_regression_shown_beyond_the_limit_fails_with_both_wers_and_the_worst_utterances():
    base = make_report([0] * 200, [20] * 200, tag="base says")
    model = make_report([0] * 150 + [3, 1, 2, 1, 1, 2] * 8 + [0, 0], [20] * 200, tag="model says")
    result = check_wer_delta("real", base, model, max_delta=0.5)
    assert result.outcome == "fail" and result.observed == 2.0
    text = result.describe()
    assert text.startswith("FAIL wer_delta[real]: observed 2 points, limit 0.5 points, interval [+1.")
    assert "base WER 0.00% (0/4000 words), model WER 2.00% (80/4000)" in text
    assert "FAIL: shown beyond the limit" in text
    first = result.evidence[0]
    assert first.startswith("u150 (s): +3 errors (0 -> 3 of 20 words)")
    assert "ref: 'reference 150' | base: 'base says 150' | model: 'model says 150'" in first
    assert "--whisperq-max-wer-delta" in result.evidence[-1]


def test_a_resolved_pool_is_decided_by_its_point():
    rng = np.random.default_rng(3)
    words = rng.integers(5, 15, size=400)
    base_errors = rng.binomial(words, 0.05)
    flips = rng.choice([-1, 0, 0, 0, 1], size=400)
    model_errors = np.maximum(base_errors + flips, 0)
    base, model = make_report(list(base_errors), list(words)), make_report(list(model_errors), list(words))
    result = check_wer_delta("real", base, model, max_delta=0.5)
    d = result.decision
    assert d.se * 1.645 <= 0.5 and d.low <= 0.5 <= d.high or d.high <= 0.5
    assert result.outcome == ("pass" if d.point <= 0.5 else "fail")


def test_an_unresolved_pool_is_inconclusive_and_says_how_much_more_data_would_decide():
    base = make_report([0] * 40, [10] * 40)
    model = make_report([0] * 36 + [1, 2, 0, 1], [10] * 40)  # +1.0 point on 4 of 40 utterances
    result = check_wer_delta("real", base, model, max_delta=0.5)
    assert result.outcome == "inconclusive"
    more = result.decision.more_units
    assert more > 40 and f"about {more} more utterances (~{more * 10} words)" in result.evidence[0]


def test_the_standard_error_is_the_ratio_estimators():
    words = np.array([5, 8, 3, 12, 7])
    diff = np.array([1, 0, 0, 1, 0])
    point, se = ratio_delta_se(words, diff)
    ratio = diff.sum() / words.sum()
    expected = 100 * np.sqrt(((diff - ratio * words) ** 2).sum() * 5 / 4) / words.sum()
    assert point == pytest.approx(100 * 2 / 35) and se == pytest.approx(expected)


def test_per_subset_figures_are_shown_in_every_result():
    base = make_report([0, 1, 0, 0] * 50, [10] * 200, ["ivr", "ivr", "read", "read"] * 50)
    model = make_report([0, 1, 0, 0] * 49 + [0, 1, 1, 0], [10] * 200, ["ivr", "ivr", "read", "read"] * 50)
    result = check_wer_delta("real", base, model, max_delta=5.0)
    assert result.ok
    assert any(line.startswith("subset ivr: base 5.00% (50/1000), model 5.00% (50/1000), delta +0.00") for line in result.evidence)
    assert any(line.startswith("subset read: base 0.00% (0/1000), model 0.10% (1/1000), delta +0.10") for line in result.evidence)
    assert any(line.startswith("largest regression: u198 (read): +1 errors") for line in result.evidence)


def test_a_pool_that_is_not_gated_never_fails():
    base = make_report([0] * 40, [10] * 40)
    model = make_report([5] * 40, [10] * 40)
    result = check_wer_delta("synthetic", base, model, max_delta=0.5, gated=False)
    assert result.outcome == "fail" and not result.gated
    assert result.describe().startswith("INFO (fail, not gated) wer_delta[synthetic]")



def test_real_words_and_synthetic_speech_are_pooled_apart():
    report = make_report([1, 2, 3, 4], [10, 10, 10, 1])
    pools = speech_pools([Utt("u000", "real"), Utt("u001", "synthetic"), Utt("u002", "real"), Utt("u003", "words")],
                         report, report)
    assert [(pool.label, [u.id for u in part.utterances]) for pool, part, _ in pools] == [
        ("real", ["u000", "u002"]), ("words", ["u003"]), ("synthetic", ["u001"])]
    only_real = speech_pools([Utt("u000", "real"), Utt("u001", "real"), Utt("u002", "real")], report)
    assert [pool.label for pool, _ in only_real] == ["real"]


class Utt:
    def __init__(self, uid: str, speech: str, language: str = "en") -> None:
        self.id, self.speech, self.language = uid, speech, language


def test_each_language_is_a_pool_gated_on_its_own_beside_the_figure_over_all():
    report = make_report([1, 2, 3, 4, 5], [10, 10, 10, 10, 10])
    data = [Utt("u000", "real"), Utt("u001", "real", "fr"), Utt("u002", "real", "es"), Utt("u003", "words"),
            Utt("u004", "real", "fr")]
    pools = speech_pools(data, report, first_language="en")
    assert [(pool.label, [u.id for u in part.utterances]) for pool, part in pools] == [
        ("real:en", ["u000"]), ("real:es", ["u002"]), ("real:fr", ["u001", "u004"]),
        ("real:all", ["u000", "u001", "u002", "u004"]), ("words:en", ["u003"])]
    assert [pool.gated(("real",)) for pool, _ in pools] == [True, True, True, False, False]
    from pytest_whisperq.checks.accuracy import check_gated_pools_present, pool_gated

    assert pool_gated("real:fr", ("real",)) and not pool_gated("real:all", ("real",)) and pool_gated("real", ("real",))
    assert check_gated_pools_present(["real:all", "words:en"], ("real",)) is not None


def test_references_without_words_fail_instead_of_passing_at_zero():
    base = make_report([0, 0], [0, 0])
    model = make_report([6, 3], [0, 0])
    result = check_wer_delta("real", base, model, max_delta=0.5)
    assert not result.ok and "references have no words after normalisation" in result.detail




def test_data_without_a_gated_pool_fails_instead_of_passing_ungated():
    from pytest_whisperq.checks.accuracy import check_gated_pools_present

    assert check_gated_pools_present(["real", "synthetic"], ("real",)) is None
    result = check_gated_pools_present(["synthetic"], ("real",))
    assert not result.ok and "none of them gated (real)" in result.detail and "--whisperq-gated-pools" in result.detail
