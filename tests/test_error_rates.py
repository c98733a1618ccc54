"""The gate's stated error rates, proven by simulation on real paired transcripts.

The population is whisper-base and its W4A16 (32 calibration utterances) on the shipped real speech:
per utterance, the words and both models' errors, from a `./dev gate --whisperq-json` run
(tests/data/paired-errors-whisper-base-w4a16.json; docs/statistics.md says how it was made). The
simulations draw runs of the same size, with the real disagreements between the two models, at
chosen true deltas (pytest_whisperq.simulation), and judge each with the gate's own rule.

Targets on the default data and options: P(the suite passes | no worse than the base on every gated
figure) >= 0.95, and P(the suite passes | real-speech WER delta = +1.0 point) <= 0.05.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_whisperq.decision import Rule
from pytest_whisperq.simulation import PairedErrors, discordant_flags, simulate_excess, simulate_wer_delta

POPULATION_FILE = Path(__file__).parent / "data" / "paired-errors-whisper-base-w4a16.json"
RUNS = 4000  # per true delta: a simulated probability of 0.05 is then known to about +-0.0035
SUITE_RUNS = 20000  # the suite's targets: +-0.0015
LIMIT = 0.5
RULE = Rule(alpha=0.05)


@pytest.fixture(scope="module")
def real_pool() -> PairedErrors:
    rows = json.loads(POPULATION_FILE.read_text())["utterances"]
    return PairedErrors.from_rows([row for row in rows if row["pool"] == "real"])


def test_the_population_is_the_shipped_real_speech(real_pool):
    assert len(real_pool) == 221 and int(real_pool.words.sum()) == 2253
    discordant = int((real_pool.base != real_pool.model).sum())
    assert 10 <= discordant <= 80  # the models disagree on some utterances, as real ones do


def test_a_model_no_worse_than_its_base_passes_the_wer_gate(real_pool):
    point = simulate_wer_delta(real_pool, 0.0, LIMIT, RULE, RUNS, seed=1)
    assert point.passed >= 0.95, point
    assert point.failed + point.inconclusive == pytest.approx(1 - point.passed)


def test_a_regression_of_twice_the_limit_does_not_pass(real_pool):
    point = simulate_wer_delta(real_pool, 2 * LIMIT, LIMIT, RULE, RUNS, seed=2)
    assert point.passed <= 0.05, point
    assert point.failed >= 0.5


@pytest.mark.parametrize("true_delta, most_likely, at_least", [(-0.5, "passed", 0.95), (0.25, "passed", 0.6),
                                                               (0.5, None, 0.0), (1.5, "failed", 0.9)])
def test_the_outcome_follows_the_true_delta(real_pool, true_delta, most_likely, at_least):
    point = simulate_wer_delta(real_pool, true_delta, LIMIT, RULE, 2000, seed=3)
    if most_likely is None:  # at the limit itself, neither side may claim it
        assert point.passed < 0.6 and point.failed < 0.6, point
    else:
        assert getattr(point, most_likely) >= at_least, point


@pytest.mark.parametrize("true_delta", [0.0, 0.5, 1.0])
def test_the_interval_covers_the_true_delta_near_its_nominal_rate(real_pool, true_delta):
    point = simulate_wer_delta(real_pool, true_delta, LIMIT, RULE, RUNS, seed=4)
    assert 0.86 <= point.coverage <= 0.96, point  # two one-sided 95% bounds: 90% nominal


def test_a_pool_of_three_utterances_never_passes(real_pool):
    point = simulate_wer_delta(real_pool, 0.0, LIMIT, RULE, 500, utterances=3, seed=5)
    assert point.passed == 0.0 and point.inconclusive > 0.9


def test_a_quarter_of_the_pool_is_mostly_inconclusive_not_a_coin_toss(real_pool):
    point = simulate_wer_delta(real_pool, 0.0, LIMIT, RULE, 1000, utterances=78, seed=6)
    assert point.inconclusive > 0.5 and point.failed < 0.05, point


# A good model's disagreements with its base on each sanity property, measured on the shipped data
# (./dev gate, whisper-base vs its W4A16, 488 utterances and 32 no-speech clips): utterances where one
# of the two has the property and the other not. The simulations use these, and twice these.
UTTERANCES, CLIPS = 488, 32
MEASURED_DISCORDANT = {"non_empty_transcripts": 0, "no_repetition_loops": 0, "language": 0,
                       "close_to_reference": 9, "close_to_base": 8}
MEASURED_SILENCE_DISCORDANT = 0
SANITY_LIMIT, SILENCE_LIMIT = 2.0, 10.0  # the defaults


@pytest.mark.parametrize("name", sorted(MEASURED_DISCORDANT))
@pytest.mark.parametrize("factor", [1, 2])
def test_a_sanity_property_of_a_good_model_passes(name, factor):
    """Disagreements either way with equal chance, at the measured rate (at least 2) and at twice it."""
    base, model = discordant_flags(UTTERANCES, factor * max(2, MEASURED_DISCORDANT[name]))
    point = simulate_excess(base, model, SANITY_LIMIT, RULE, RUNS, seed=7 + factor)
    assert point.passed >= (0.995 if factor == 1 else 0.98), point


def test_a_sanity_property_the_model_adds_on_4_percent_of_utterances_fails():
    base = [False] * UTTERANCES
    model = [i < 0.04 * UTTERANCES for i in range(UTTERANCES)]  # twice the limit, none of them the base's
    point = simulate_excess(base, model, SANITY_LIMIT, RULE, RUNS, seed=12, symmetric=False)
    assert point.failed >= 0.9 and point.passed <= 0.05, point


def test_talk_on_silence_of_a_good_model_passes():
    base, model = discordant_flags(CLIPS, max(2, MEASURED_SILENCE_DISCORDANT))
    assert simulate_excess(base, model, SILENCE_LIMIT, RULE, RUNS, seed=11).passed >= 0.85


def test_the_whole_suite_meets_both_targets(real_pool):
    """The suite passes only if every gated figure passes: the WER gate on real speech, the WER ceiling
    (whisper-base at ~3.5% against 15%: never near it), five sanity properties and talk on silence at their
    measured disagreement. Independent figures multiply; the product is a lower bound when they are not."""
    wer_good = simulate_wer_delta(real_pool, 0.0, LIMIT, RULE, SUITE_RUNS, seed=21).passed
    sanity_good = [simulate_excess(*discordant_flags(UTTERANCES, max(2, count)), SANITY_LIMIT, RULE, RUNS,
                                   seed=22 + i).passed for i, count in enumerate(MEASURED_DISCORDANT.values())]
    silence_good = simulate_excess(*discordant_flags(CLIPS, MEASURED_SILENCE_DISCORDANT), SILENCE_LIMIT, RULE, RUNS,
                                   seed=30).passed
    suite_good = wer_good * float(np.prod(sanity_good)) * silence_good
    assert suite_good >= 0.95, (wer_good, sanity_good, silence_good)
    wer_bad = simulate_wer_delta(real_pool, 1.0, LIMIT, RULE, SUITE_RUNS, seed=31).passed
    assert wer_bad <= 0.05  # the suite passes at most as often as its WER gate does


def test_the_resolution_command_simulates_any_report(tmp_path, capsys):
    from pytest_whisperq.__main__ import main

    rows = json.loads(POPULATION_FILE.read_text())["utterances"]
    report = tmp_path / "run.json"
    report.write_text(json.dumps({"utterances": rows, "settings": {"max_wer_delta": 0.5, "confidence": 0.95}}))
    assert main(["resolution", str(report), "--runs", "300", "--png", str(tmp_path / "oc.png")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("real pool: 221 utterances, 2253 words, observed delta +0.27 points; limit 0.5")
    assert "true delta  P(pass)  P(fail)  P(inconclusive)  interval coverage" in out
    assert (tmp_path / "oc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report.write_text(json.dumps({"checks": []}))  # a report from before schema 2
    assert main(["resolution", str(report)]) == 2
    assert "has no per-utterance errors in the 'real' pool" in capsys.readouterr().err


# The throughput ratio, judged on interleaved rounds: each side's error at most alpha whatever the noise, at
# the floor's two ends (1.0 and 0.6 for the default floor 0.8); power where the rounds agree to ~10%.
THROUGHPUT_RUNS = 400  # per point: a simulated probability of 0.05 is then known to about +-0.011


@pytest.mark.parametrize(("rounds", "noise"), [(3, 0.05), (5, 0.1), (5, 0.3)])
def test_the_throughput_ratio_errs_at_most_alpha_on_each_side(rounds, noise):
    from pytest_whisperq.simulation import simulate_throughput_ratio

    as_fast = simulate_throughput_ratio(1.0, rounds, noise, runs=THROUGHPUT_RUNS, seed=41)
    much_slower = simulate_throughput_ratio(0.6, rounds, noise, runs=THROUGHPUT_RUNS, seed=42)
    assert as_fast.failed <= RULE.alpha and much_slower.passed <= RULE.alpha, (as_fast, much_slower)
    assert as_fast.coverage >= 0.85 and much_slower.coverage >= 0.85  # the two-sided 90% interval


def test_five_rounds_that_agree_to_ten_percent_tell_a_good_model_from_a_bad_one():
    from pytest_whisperq.simulation import simulate_throughput_ratio

    assert simulate_throughput_ratio(1.0, 5, 0.1, runs=THROUGHPUT_RUNS, seed=43).passed >= 0.9
    assert simulate_throughput_ratio(0.6, 5, 0.1, runs=THROUGHPUT_RUNS, seed=44).failed >= 0.95
