"""The accuracy gate: the quantized model's WER against the base's, on the same utterances.

The delta is `WER(model) - WER(base)` in percentage points, pooled over utterances (errors summed,
words summed). Its uncertainty comes from a paired bootstrap over utterances: each resample draws
utterances with replacement and recomputes both WERs on the same draw, so what is shared by both
models (hard audio, a wrong reference) cancels and only their disagreement widens the interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pytest_whisperq.checks.transcripts import UtteranceErrors, WerReport, pair_reports
from pytest_whisperq.results import CheckResult, evidence_list

if TYPE_CHECKING:
    from pytest_whisperq.data import Utterance

GateOn = Literal["point", "upper"]
GATE_ON: tuple[GateOn, ...] = ("point", "upper")
MAX_REGRESSIONS_SHOWN = 5


@dataclass(frozen=True)
class WerDelta:
    """Both WERs on one pool of utterances, their difference and its bootstrap interval."""

    label: str
    utterances: int
    words: int
    base_errors: int
    model_errors: int
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int

    @property
    def base_wer(self) -> float:
        return 100.0 * self.base_errors / self.words if self.words else 0.0

    @property
    def model_wer(self) -> float:
        return 100.0 * self.model_errors / self.words if self.words else 0.0

    @property
    def delta(self) -> float:
        return self.model_wer - self.base_wer

    def summary(self) -> str:
        return (f"{self.label}: base {self.base_wer:.2f}% ({self.base_errors}/{self.words}), "
                f"model {self.model_wer:.2f}% ({self.model_errors}/{self.words}), "
                f"delta {self.delta:+.2f} [{self.ci_low:+.2f}, {self.ci_high:+.2f}]")


def bootstrap_interval(
    words: np.ndarray, base_errors: np.ndarray, model_errors: np.ndarray,
    resamples: int, confidence: float, seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the pooled WER delta (points) under a paired bootstrap over utterances."""
    n = len(words)
    if n == 0 or resamples < 1:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    diff = (model_errors - base_errors).astype(np.int64)
    words = words.astype(np.int64)
    deltas = np.empty(resamples)
    chunk = max(1, 2_000_000 // n)  # bounded memory for large data sets
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        draw = rng.integers(0, n, size=(stop - start, n))
        total_words = words[draw].sum(axis=1)
        deltas[start:stop] = 100.0 * diff[draw].sum(axis=1) / np.maximum(total_words, 1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(deltas, [tail, 1.0 - tail])
    return (float(low), float(high))


def wer_delta(
    label: str, pairs: list[tuple[UtteranceErrors, UtteranceErrors]],
    resamples: int = 10_000, confidence: float = 0.95, seed: int = 0,
) -> WerDelta:
    words = np.array([b.words for b, _ in pairs], dtype=np.int64)
    base_errors = np.array([b.errors for b, _ in pairs], dtype=np.int64)
    model_errors = np.array([m.errors for _, m in pairs], dtype=np.int64)
    low, high = bootstrap_interval(words, base_errors, model_errors, resamples, confidence, seed)
    return WerDelta(label, len(pairs), int(words.sum()), int(base_errors.sum()), int(model_errors.sum()),
                    low, high, confidence, resamples)


def regressions(pairs: list[tuple[UtteranceErrors, UtteranceErrors]], count: int = MAX_REGRESSIONS_SHOWN) -> list[str]:
    """The utterances the model got most wrong relative to the base, with all three texts."""
    worse = sorted(((b, m) for b, m in pairs if m.errors > b.errors), key=lambda pair: (pair[0].errors - pair[1].errors, pair[1].id))
    return [
        f"{m.id} ({m.subset}): +{m.errors - b.errors} errors ({b.errors} -> {m.errors} of {m.words} words) | "
        f"ref: {m.reference!r} | base: {b.hypothesis!r} | model: {m.hypothesis!r}"
        for b, m in worse[:count]
    ]


def check_wer_delta(
    label: str,
    base: WerReport,
    model: WerReport,
    max_delta: float,
    gate_on: GateOn = "point",
    resamples: int = 10_000,
    confidence: float = 0.95,
    per_subset: bool = True,
) -> CheckResult:
    """WER(model) - WER(base) must not exceed `max_delta` points: the point value, or with
    `gate_on="upper"` the upper end of its paired bootstrap interval (a stricter, noise-aware gate)."""
    if gate_on not in GATE_ON:
        raise ValueError(f"gate_on must be one of {GATE_ON}, got {gate_on!r}")
    pairs = pair_reports(base, model)
    pooled = wer_delta(label, pairs, resamples, confidence)
    if pooled.words == 0:
        return CheckResult(name=f"wer_delta[{label}]", ok=False, limit=max_delta, unit=" points",
                           detail=f"the {pooled.utterances} references have no words after normalisation: "
                                  "no WER can be measured; check the data set's text column")
    observed = pooled.ci_high if gate_on == "upper" else pooled.delta
    ok = observed <= max_delta + 1e-9
    gated = "upper end of the interval" if gate_on == "upper" else "point delta"
    detail = (f"base WER {pooled.base_wer:.2f}% ({pooled.base_errors}/{pooled.words} words), "
              f"model WER {pooled.model_wer:.2f}% ({pooled.model_errors}/{pooled.words}), "
              f"delta {pooled.delta:+.2f} points, {confidence:.0%} CI [{pooled.ci_low:+.2f}, {pooled.ci_high:+.2f}] "
              f"(paired bootstrap, {resamples} resamples of {pooled.utterances} utterances); gated on the {gated}")
    evidence = []
    if per_subset:
        subsets = sorted({m.subset for _, m in pairs})
        if len(subsets) > 1:
            for name in subsets:
                subset_pairs = [(b, m) for b, m in pairs if m.subset == name]
                evidence.append("subset " + wer_delta(name, subset_pairs, resamples, confidence).summary())
    worst = regressions(pairs)
    if not ok:
        evidence.extend(worst)
        if gate_on == "upper" and pooled.delta <= max_delta:
            evidence.append(f"the point delta {pooled.delta:+.2f} is within the limit but the interval reaches "
                            f"{pooled.ci_high:+.2f}: more evaluation data (--whisperq-data) narrows it")
        evidence.append("next: compare the recipe (calibration data and samples, group size, ignore list) with "
                        "the published one, or re-quantize; `--whisperq-max-wer-delta` sets the limit")
    elif worst:
        evidence.append(f"largest regression: {worst[0]}")
    return CheckResult(
        name=f"wer_delta[{label}]",
        ok=ok,
        observed=round(observed, 2),
        limit=max_delta,
        unit=" points",
        detail=detail,
        evidence=evidence_list(evidence),
    )


def speech_pools(utterances: Sequence[Utterance], *reports: WerReport) -> list[tuple[Any, ...]]:
    """Split reports into real and synthetic speech, which are gated and reported apart:
    `[(label, report_part, ...), ...]`, only for kinds the data has."""
    synthetic = {u.id for u in utterances if u.synthetic}
    pools = []
    for label, wanted in (("real", False), ("synthetic", True)):
        parts = tuple(report.only(lambda u: (u.id in synthetic) == wanted) for report in reports)
        if parts and parts[0].utterances:
            pools.append((label, *parts))
    return pools
