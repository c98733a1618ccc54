"""The decision rule's error rates, by simulation on real paired transcripts.

A population is the per-utterance word counts and word errors of a base and its quantized model on
the same utterances (a run's JSON report has them). Each simulated run draws as many utterances as
the population has, with replacement, and judges them with the rule the gate uses:

- a true delta of exactly 0 keeps every utterance's pair but swaps base and model at random (half the
  population each way), so the two models disagree as often and as much as the real ones do, and
  neither is better on average;
- a true delta of `d` points adds, on each drawn utterance, Binomial(words, |d|/100) errors to the
  model (d > 0) or to the base (d < 0), so that the pooled delta is `d` in expectation.

Sanity properties are simulated the same way from per-utterance flags: a good model's discordant
utterances go either way with equal chance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_whisperq.decision import Outcome, Rule, decide, paired_mean_se, ratio_delta_se


@dataclass(frozen=True)
class PairedErrors:
    """Per-utterance word counts and errors of a base and a model on the same utterances."""

    words: np.ndarray
    base: np.ndarray
    model: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, Any]]) -> PairedErrors:
        """From a report's `utterances` rows (`words`, `base_errors`, `model_errors`)."""
        rows = [row for row in rows if row["words"] > 0]
        return cls(np.array([r["words"] for r in rows]), np.array([r["base_errors"] for r in rows]),
                   np.array([r["model_errors"] for r in rows]))

    def __len__(self) -> int:
        return len(self.words)

    def delta(self) -> float:
        return 100.0 * float((self.model - self.base).sum()) / float(self.words.sum())

    def symmetric(self) -> PairedErrors:
        """Every pair both ways round: the same disagreements, a true delta of exactly zero."""
        return PairedErrors(np.concatenate([self.words, self.words]), np.concatenate([self.base, self.model]),
                            np.concatenate([self.model, self.base]))


@dataclass(frozen=True)
class OperatingPoint:
    true_delta: float
    runs: int
    passed: float
    failed: float
    inconclusive: float
    coverage: float  # share of runs whose two-sided interval [low, high] holds the true delta


def simulate_wer_delta(population: PairedErrors, true_delta: float, limit: float = 0.5, rule: Rule = Rule(),
                       runs: int = 2000, utterances: int | None = None, seed: int = 0) -> OperatingPoint:
    """P(PASS), P(FAIL), P(INCONCLUSIVE) of the WER delta gate at `true_delta` points."""
    rng = np.random.default_rng(seed)
    pool = population.symmetric()
    n = utterances or len(population)
    draw = rng.integers(0, len(pool), size=(runs, n))
    words, base, model = pool.words[draw], pool.base[draw].copy(), pool.model[draw].copy()
    extra = rng.binomial(words, abs(true_delta) / 100.0)
    if true_delta > 0:
        model += extra
    else:
        base += extra
    points, ses = ratio_delta_se(words, model - base)
    counts = {outcome: 0 for outcome in Outcome}
    covered = 0
    for point, se, total in zip(points, ses, words.sum(axis=1)):
        decision = decide(float(point), float(se), limit, limit, n, rule, rule.rule_of_three_se(float(total)))
        counts[decision.outcome] += 1
        covered += decision.low <= true_delta <= decision.high
    return OperatingPoint(true_delta, runs, counts[Outcome.PASS] / runs, counts[Outcome.FAIL] / runs,
                          counts[Outcome.INCONCLUSIVE] / runs, covered / runs)


def simulate_excess(base_flags: Sequence[bool], model_flags: Sequence[bool], limit: float = 2.0, rule: Rule = Rule(),
                    runs: int = 2000, seed: int = 0, symmetric: bool = True) -> OperatingPoint:
    """A sanity property judged on utterances drawn from these flags: how often the rule passes, fails or
    cannot tell. `symmetric` makes the model no worse than its base (each discordant utterance either way
    with equal chance, at the rate the flags show); otherwise the flags' own excess is the truth."""
    rng = np.random.default_rng(seed)
    base, model = np.asarray(base_flags, dtype=float), np.asarray(model_flags, dtype=float)
    both_ways = np.concatenate([model - base, base - model]) if symmetric else model - base
    n = len(base)
    differences = both_ways[rng.integers(0, len(both_ways), size=(runs, n))]
    points, ses = paired_mean_se(differences)
    truth = 0.0 if symmetric else 100.0 * float(both_ways.mean())
    counts = {outcome: 0 for outcome in Outcome}
    covered = 0
    for point, se in zip(np.atleast_1d(points), np.atleast_1d(ses)):
        decision = decide(float(point), float(se), limit, limit, n, rule, rule.rule_of_three_se(n))
        counts[decision.outcome] += 1
        covered += decision.low <= truth <= decision.high
    return OperatingPoint(truth, runs, counts[Outcome.PASS] / runs, counts[Outcome.FAIL] / runs,
                          counts[Outcome.INCONCLUSIVE] / runs, covered / runs)


def discordant_flags(utterances: int, discordant: int) -> tuple[list[bool], list[bool]]:
    """Flags of a property where the two models differ on `discordant` utterances, half each way."""
    base = [i < discordant // 2 for i in range(utterances)]
    model = [discordant // 2 <= i < discordant for i in range(utterances)]
    return base, model


def operating_characteristic(population: PairedErrors, deltas: Sequence[float], limit: float = 0.5,
                             rule: Rule = Rule(), runs: int = 2000, seed: int = 0) -> list[OperatingPoint]:
    return [simulate_wer_delta(population, d, limit, rule, runs, seed=seed + i) for i, d in enumerate(deltas)]


def draw_operating_characteristic(points: Sequence[OperatingPoint], limit: float, title: str, path: str) -> None:
    """P(PASS), P(FAIL), P(INCONCLUSIVE) against the true delta, as a PNG (matplotlib, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    x = [p.true_delta for p in points]
    axes.plot(x, [p.passed for p in points], "o-", color="tab:green", label="PASS")
    axes.plot(x, [p.failed for p in points], "s-", color="tab:red", label="FAIL")
    axes.plot(x, [p.inconclusive for p in points], "^-", color="tab:gray", label="INCONCLUSIVE")
    axes.axvline(limit, color="black", linestyle="--", linewidth=1, label=f"limit {limit:g}")
    for level in (0.05, 0.95):
        axes.axhline(level, color="black", linestyle=":", linewidth=0.8)
    axes.set_xlabel("true WER delta, model - base (points)")
    axes.set_ylabel("probability")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(loc="center right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def simulate_throughput_ratio(true_ratio: float, rounds: int = 5, noise: float = 0.1, drift: float = 0.2,
                              min_ratio: float = 0.8, runs: int = 2000, seed: int = 0) -> OperatingPoint:
    """P(PASS), P(FAIL), P(INCONCLUSIVE) of the throughput ratio gate (`checks.throughput.check_ratio`, run as
    the suite runs it) when the model's RTFx is `true_ratio` times the base's. Each round the machine is
    faster or slower for both alike (log-normal, sd `drift`: load from other jobs, thermal state) and each
    role's batch varies on its own (log-normal, sd `noise`); interleaving cancels the first, the interval has
    to carry the second."""
    from pytest_whisperq.checks.throughput import Rounds, Throughput, check_ratio

    rng = np.random.default_rng(seed)
    counts = {outcome: 0 for outcome in Outcome}
    covered = 0
    audio = 100.0
    for _ in range(runs):
        machine = rng.lognormal(0.0, drift, rounds)
        base_rtfx = 10.0 * machine * rng.lognormal(0.0, noise, rounds)
        model_rtfx = 10.0 * true_ratio * machine * rng.lognormal(0.0, noise, rounds)

        def timed(label: str, rtfx: np.ndarray) -> tuple[Throughput, ...]:
            return tuple(Throughput(label, "simulated", 8, 8, audio / float(x), audio, 800, (1.0,)) for x in rtfx)

        result = check_ratio(Rounds(timed("base", base_rtfx), timed("model", model_rtfx)), min_ratio)
        counts[result.outcome] += 1
        assert result.interval is not None
        covered += result.interval[0] <= true_ratio <= result.interval[1]
    return OperatingPoint(true_ratio, runs, counts[Outcome.PASS] / runs, counts[Outcome.FAIL] / runs,
                          counts[Outcome.INCONCLUSIVE] / runs, covered / runs)
