"""Throughput figures in the model card's form, and the floors a release gate puts on them.

A run sends `requests` transcriptions (the evaluation utterances, cycled) through a backend after
a warm-up, and times the whole batch: requests/s and output tokens/s over the wall time, RTFx
(audio seconds / wall seconds), and latency mean / median / p95 over the requests.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

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


def check_ratio(model: Throughput, base: Throughput, min_ratio: float, metric: str = "rtfx") -> CheckResult:
    """The model's figure over the base's, both measured in this run on this machine: what stays
    meaningful across runners whose absolute speed differs."""
    base_value, model_value = getattr(base, metric), getattr(model, metric)
    ratio = model_value / base_value if base_value else 0.0
    return CheckResult(
        name=f"throughput_ratio[{metric}]",
        ok=ratio >= min_ratio,
        observed=round(ratio, 3),
        limit=min_ratio,
        detail=f"model {model_value:.3f} / base {base_value:.3f}",
        evidence=[model.summary(), base.summary()],
    )
