"""Throughput figures in the model card's form, and the floors a release gate puts on them.

A run sends `requests` transcriptions (the evaluation utterances, cycled) through a backend after
a warm-up, and times the whole batch: requests/s and output tokens/s over the wall time, RTFx
(audio seconds / wall seconds), and latency mean / median / p95 over the requests.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_whisperq.decision import Outcome, Rule, decide
from pytest_whisperq.results import CheckResult


@dataclass(frozen=True)
class Throughput:
    label: str
    backend: str
    requests: int
    succeeded: int
    wall_seconds: float
    audio_seconds: float
    output_tokens: int
    latencies: tuple[float, ...]
    retried: int = 0  # requests that needed a transport retry: their timing is not a clean measurement

    @property
    def requests_per_second(self) -> float:
        return self.succeeded / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def rtfx(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def latency_mean(self) -> float:
        return statistics.fmean(self.latencies) if self.latencies else 0.0

    @property
    def latency_median(self) -> float:
        return statistics.median(self.latencies) if self.latencies else 0.0

    @property
    def latency_p95(self) -> float:
        return percentile(self.latencies, 95.0)

    def figures(self) -> dict[str, float]:
        """The card's metrics, rounded for reports."""
        return {
            "total_time_s": round(self.wall_seconds, 2), "requests": self.requests, "successful_requests": self.succeeded,
            "latency_mean_s": round(self.latency_mean, 3), "latency_median_s": round(self.latency_median, 3),
            "latency_p95_s": round(self.latency_p95, 3), "requests_per_s": round(self.requests_per_second, 3),
            "output_tokens_per_s": round(self.tokens_per_second, 2), "rtfx": round(self.rtfx, 2),
        }

    def summary(self) -> str:
        return (f"{self.label} ({self.backend}): {self.succeeded}/{self.requests} requests in {self.wall_seconds:.2f} s, "
                f"{self.requests_per_second:.2f} req/s, {self.tokens_per_second:.1f} tok/s, RTFx {self.rtfx:.2f}, "
                f"latency mean {self.latency_mean:.2f} s / median {self.latency_median:.2f} s / p95 {self.latency_p95:.2f} s")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), without numpy."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def check_measured(result: Throughput) -> CheckResult:
    """The measurement itself: every request answered at the first attempt. Its figures are the
    result's detail. A measurement disturbed by retries is not repeated until it looks good: it fails."""
    disturbed = (f"; {result.retried} of {result.requests} requests needed a transport retry, so these figures "
                 "time a faltering server, not the model: check the server's log and run again") if result.retried else ""
    return CheckResult(
        name=f"throughput[{result.label}]",
        ok=result.succeeded == result.requests and result.wall_seconds > 0 and not result.retried,
        observed=round(result.requests_per_second, 3),
        unit=" req/s",
        detail=result.summary() + disturbed,
    )


def check_floor(result: Throughput, metric: str, minimum: float) -> CheckResult:
    """An absolute floor on one figure (`requests_per_second`, `rtfx`, `tokens_per_second`)."""
    observed = getattr(result, metric)
    return CheckResult(
        name=f"min_{metric}[{result.label}]",
        ok=observed >= minimum,
        observed=round(observed, 3),
        limit=minimum,
        detail=result.summary(),
    )


def check_floors(result: Throughput, floors: dict[str, float | None]) -> list[CheckResult]:
    """The floors the user set (`{metric: minimum or None}`); unset ones are not checks at all."""
    return [check_floor(result, metric, minimum) for metric, minimum in floors.items() if minimum is not None]


ROUND_RULE = Rule(min_units=3)  # fewer rounds cannot show their own spread
SHORTFALL_SE_FLOOR = 0.5  # percent: a few identical rounds do not prove a timer noise of zero


@dataclass(frozen=True)
class Rounds:
    """Base and model timed in interleaved rounds on one machine (round i: base then model when i is even,
    model then base when odd), so that the machine's drift falls on both alike. `not_comparable` says why
    their ratio means nothing on this run (None when it does)."""

    base: tuple[Throughput, ...]
    model: tuple[Throughput, ...]
    not_comparable: str | None = None

    def of(self, role: str) -> tuple[Throughput, ...]:
        return self.base if role == "base" else self.model

    def combined(self, role: str) -> Throughput:
        return combined(self.of(role))

    def ratios(self, metric: str = "rtfx") -> list[float]:
        """The model's figure over the base's, round by round."""
        return [getattr(m, metric) / getattr(b, metric) if getattr(b, metric) else 0.0
                for m, b in zip(self.model, self.base)]


def why_not_comparable(backend: str, quantized: bool, runs_quantized_weights: bool | None) -> str | None:
    """Why the model's speed over the base's means nothing on this backend (None when it does): both
    compute with the same dense weights."""
    if runs_quantized_weights is not False:
        return None
    if quantized:
        return (f"the {backend} backend dequantizes the checkpoint to dense weights when it loads it, so base and "
                "model run the same dense matrix multiplies and their ratio is noise, not the cost or gain of the "
                "quantized kernels; measure it where they run: --whisperq-backend=vllm or vllm-server")
    return "the model under test is not quantized: base and model run the same dense compute"


def combined(rounds: Sequence[Throughput]) -> Throughput:
    """One role's rounds as one measurement: every request, every second."""
    first = rounds[0]
    return Throughput(
        label=first.label, backend=first.backend, requests=sum(r.requests for r in rounds),
        succeeded=sum(r.succeeded for r in rounds), wall_seconds=sum(r.wall_seconds for r in rounds),
        audio_seconds=sum(r.audio_seconds for r in rounds), output_tokens=sum(r.output_tokens for r in rounds),
        latencies=tuple(x for r in rounds for x in r.latencies), retried=sum(r.retried for r in rounds),
    )


def t_factor(rounds: int, rule: Rule) -> float:
    """Student's t over the normal quantile at the rule's level: a standard error from a handful of rounds
    is itself uncertain, and the rule's z would understate the interval."""
    if rounds < 2:
        return math.inf
    from scipy.stats import t

    return float(t.ppf(1.0 - rule.alpha, rounds - 1)) / rule.z


# decide() words its bounds for a lower-is-better figure, here the shortfall; the ratio's run the other way
RATIO_WORDING = {
    "shown within the limit: the upper bound is at or below it": "shown above the floor: the lower bound is at or above it",
    "shown beyond the limit: the lower bound is above it": "shown below the floor: the upper bound is below it",
}


def check_ratio(rounds: Rounds, min_ratio: float, metric: str = "rtfx", rule: Rule = ROUND_RULE) -> CheckResult:
    """The model's figure over the base's, both measured in this run on this machine, judged by the rule:
    the per-round shortfall 100 * (1 - ratio) against the floor's 100 * (1 - min_ratio), so that a model as
    fast as its base is told from one at min_ratio - (1 - min_ratio) (0.6 for the default 0.8)."""
    name = f"throughput_ratio[{metric}]"
    ratios = rounds.ratios(metric)
    median = statistics.median(ratios) if ratios else 0.0
    evidence = [f"round {i + 1}: model {getattr(m, metric):.3f} / base {getattr(b, metric):.3f} = {r:.3f}"
                for i, (m, b, r) in enumerate(zip(rounds.model, rounds.base, ratios))]
    if rounds.not_comparable:
        return CheckResult(name=name, ok=True, observed=round(median, 3), limit=min_ratio, applicable=False,
                           gated=False, detail=f"not applicable: {rounds.not_comparable}", evidence=evidence)
    shortfalls = [100.0 * (1.0 - r) for r in ratios]
    limit = 100.0 * (1.0 - min_ratio)
    point = statistics.fmean(shortfalls)
    se = (statistics.stdev(shortfalls) / math.sqrt(len(shortfalls)) * t_factor(len(shortfalls), rule)
          if len(shortfalls) > 1 else math.inf)
    decision = decide(point, se, limit, limit, len(shortfalls), rule, SHORTFALL_SE_FLOOR, unit_name="rounds")
    low, high = 1.0 - decision.high / 100.0, 1.0 - decision.low / 100.0
    detail = (f"model {metric} / base {metric} over {len(ratios)} interleaved rounds: median {median:.3f}, mean "
              f"{1.0 - point / 100.0:.3f}, one-sided {rule.confidence:.0%} bounds [{low:.3f}, {high:.3f}] "
              f"(floor {min_ratio:g}); {str(decision.outcome).upper()}: {RATIO_WORDING.get(decision.how, decision.how)}")
    if decision.outcome is Outcome.INCONCLUSIVE:
        more = f"--whisperq-rounds={len(ratios) + (decision.more_units or 1)} or more"
        detail += (f". Too few rounds to show their own spread: run {more}" if len(ratios) < rule.min_units else
                   f". The rounds vary too much to tell: run more ({more}) on a quieter machine")
    return CheckResult(name=name, ok=decision.outcome is Outcome.PASS, observed=round(median, 3), limit=min_ratio,
                       detail=detail, evidence=evidence, decision=decision, interval=(round(low, 3), round(high, 3)))
