"""One decision rule for every gated figure: PASS, FAIL or INCONCLUSIVE, with stated error rates.

A gated figure (a WER delta, a sanity property's excess over the base) is an estimate `point` with a
standard error `se`, and "lower is better" with a `limit`. The rule is built to tell a figure at or
below `limit - margin` (good) from one at or above `limit + margin` (bad), misjudging each with
probability at most `alpha` (one-sided). With the defaults the margin is the limit itself: a model
truly no worse than its base (0) is told from one twice the limit worse (a WER delta of +1.0 point).

- FAIL, shown beyond: the lower one-sided bound is above the limit.
- PASS, shown within: the upper one-sided bound is at or below the limit.
- Otherwise, when the data resolve the margin (`z * se <= margin`), the point decides: PASS at or
  below the limit, FAIL above it. At `limit - margin` the point lands above the limit with
  probability at most alpha, and at `limit + margin` below it with probability at most alpha.
- Otherwise INCONCLUSIVE: the data cannot tell good from bad; the result says how much more data
  would (the variance shrinks with the number of utterances).

No PASS comes from fewer than `min_units` utterances, whose standard error means nothing, and the
standard error is never taken below `se_floor`: when base and model agree on every utterance drawn
the observed variance is zero, but a few differences would still be plausible (the rule of three).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where it is used: the plugin loads this module, `pytest --help` must not
    from numpy.typing import ArrayLike


class Outcome(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not applicable"  # a figure this run cannot give meaning to (never gated)

    def __str__(self) -> str:
        return self.value


MIN_UNITS = 30  # below this many utterances a standard error is not worth trusting for a PASS


@dataclass(frozen=True)
class Rule:
    """The rule's error rate per side and the smallest pool that may pass."""

    alpha: float = 0.05
    min_units: int = MIN_UNITS

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha}")

    @property
    def z(self) -> float:
        return NormalDist().inv_cdf(1.0 - self.alpha)

    @property
    def confidence(self) -> float:
        return 1.0 - self.alpha

    def rule_of_three_se(self, total: float, scale: float = 100.0) -> float:
        """The smallest standard error a figure `scale * count / total` is given: with no difference seen,
        -ln(alpha) differences (3 at alpha = 0.05) are still plausible, and the upper bound is put there."""
        return scale * -math.log(self.alpha) / (self.z * total) if total > 0 else math.inf


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    point: float
    se: float  # as used: the observed standard error, or the floor when larger
    low: float  # one-sided (1 - alpha) bounds
    high: float
    limit: float
    margin: float
    alpha: float
    units: int  # utterances (or clips) the figure was measured on
    how: str  # why this outcome, in a few words
    more_units: int | None = None  # INCONCLUSIVE: about this many more utterances would decide

    @property
    def se_needed(self) -> float:
        return self.margin / NormalDist().inv_cdf(1.0 - self.alpha)

    def interval_text(self, unit: str = "") -> str:
        return (f"[{self.low:+.2f}, {self.high:+.2f}]{unit} (each end a one-sided {1 - self.alpha:.0%} bound, "
                f"standard error {self.se:.3f}{unit})")

    def record(self) -> dict[str, object]:
        return {"outcome": str(self.outcome), "point": round(self.point, 4), "low": round(self.low, 4),
                "high": round(self.high, 4), "se": round(self.se, 4), "se_needed": round(self.se_needed, 4),
                "limit": self.limit, "margin": self.margin, "alpha": self.alpha, "units": self.units,
                "how": self.how, "more_units": self.more_units}


def decide(point: float, se: float, limit: float, margin: float, units: int, rule: Rule = Rule(),
           se_floor: float = 0.0, unit_name: str = "utterances") -> Decision:
    """The rule above, for a lower-is-better figure measured on `units` `unit_name` (utterances, rounds)."""
    if margin <= 0:
        raise ValueError(f"margin must be positive, got {margin}")
    se = max(se, se_floor, 0.0)
    z = rule.z
    low, high = point - z * se, point + z * se
    resolved = z * se <= margin + 1e-12

    def made(outcome: Outcome, how: str, more: int | None = None) -> Decision:
        return Decision(outcome, point, se, low, high, limit, margin, rule.alpha, units, how, more)

    if low > limit:
        return made(Outcome.FAIL, "shown beyond the limit: the lower bound is above it")
    if units < rule.min_units:
        return made(Outcome.INCONCLUSIVE, f"too few {unit_name} ({units}, at least {rule.min_units} to pass)",
                    max(rule.min_units - units, _more_units(units, se, z, margin)))
    if high <= limit:
        return made(Outcome.PASS, "shown within the limit: the upper bound is at or below it")
    if resolved:
        if point <= limit:
            return made(Outcome.PASS, f"resolved (z*se {z * se:.2f} <= margin {margin:g}), the point is within the limit")
        return made(Outcome.FAIL, f"resolved (z*se {z * se:.2f} <= margin {margin:g}), the point is beyond the limit")
    return made(Outcome.INCONCLUSIVE, f"unresolved: z*se {z * se:.2f} > margin {margin:g}",
                _more_units(units, se, z, margin))


def _more_units(units: int, se: float, z: float, margin: float) -> int:
    """Utterances to add so that z * se falls to the margin, at the observed variance (se ~ 1/sqrt(n))."""
    if not math.isfinite(se) or units <= 0:
        return 0
    factor = (z * se / margin) ** 2
    return max(0, math.ceil(units * factor) - units)


def paired_mean_se(differences: ArrayLike, scale: float = 100.0) -> tuple[Any, Any]:
    """Mean of per-utterance paired differences (times `scale`) and its standard error. Along the last
    axis, so that many simulated pools are judged at once."""
    import numpy as np

    d = np.asarray(differences, dtype=float)
    n = d.shape[-1]
    if n == 0:
        return 0.0, math.inf
    mean = d.mean(axis=-1)
    if n == 1:
        return scale * mean, math.inf
    return scale * mean, scale * np.sqrt(d.var(axis=-1, ddof=1) / n)


def ratio_delta_se(words: ArrayLike, differences: ArrayLike, scale: float = 100.0) -> tuple[Any, Any]:
    """`scale * sum(differences) / sum(words)` (a pooled WER, or WER delta) and its linearised standard
    error: the ratio estimator's variance sum((d_i - R w_i)^2) / W^2 * n / (n - 1), over utterances.
    Along the last axis."""
    import numpy as np

    w, d = np.asarray(words, dtype=float), np.asarray(differences, dtype=float)
    n = w.shape[-1]
    total = w.sum(axis=-1)
    if n == 0 or np.all(total == 0):
        return 0.0, math.inf
    ratio = d.sum(axis=-1) / np.maximum(total, 1e-12)
    if n == 1:
        return scale * ratio, math.inf
    residual = ((d - ratio[..., None] * w if w.ndim > 1 else d - ratio * w) ** 2).sum(axis=-1)
    return scale * ratio, scale * np.sqrt(residual * n / (n - 1)) / np.maximum(total, 1e-12)
