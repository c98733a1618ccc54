"""The one result type every check returns, and the assertion text made from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_whisperq.decision import Decision, Outcome


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check.

    `observed` and `limit` are the figures compared; `detail` is one human sentence;
    `evidence` carries what a person needs to act (offending tensors, worst utterances).
    A statistical figure carries its `decision` (pass / fail / inconclusive, interval, error rate):
    `ok` is then true only for a PASS. A result that is not `gated` is shown and reported, never
    failed (a figure the data cannot resolve, kept for information); one that is not `applicable` is
    a figure this run cannot give meaning to, shown with the reason. `interval` is the figure's interval
    in `observed`'s units when the decision is taken on another scale (a ratio judged by its shortfall).
    """

    name: str
    ok: bool
    observed: Any = None
    limit: Any = None
    unit: str = ""
    detail: str = ""
    evidence: list[Any] = field(default_factory=list)
    decision: Decision | None = None
    gated: bool = True
    applicable: bool = True
    interval: tuple[float, float] | None = None

    @property
    def outcome(self) -> Outcome:
        if not self.applicable:
            return Outcome.NOT_APPLICABLE
        if self.decision is not None:
            return self.decision.outcome
        return Outcome.PASS if self.ok else Outcome.FAIL

    @property
    def label(self) -> str:
        """PASS, FAIL or INCONCLUSIVE; `INFO (...)` for a figure that is not gated (or not applicable)."""
        word = str(self.outcome).upper()
        return word if self.gated else f"INFO ({word.lower()}, not gated)"

    def describe(self) -> str:
        figures = ""
        if self.observed is not None:
            figures = f": observed {_fmt(self.observed)}{self.unit}"
            if self.limit is not None:
                figures += f", limit {_fmt(self.limit)}{self.unit}"
        if self.interval is not None and self.decision is not None:
            figures += (f", interval [{_fmt(self.interval[0])}, {_fmt(self.interval[1])}]{self.unit} (each end a "
                        f"one-sided {1 - self.decision.alpha:.0%} bound)")
        elif self.decision is not None:
            figures += f", interval {self.decision.interval_text(self.unit)}"
        lines = [f"{self.label} {self.name}{figures}"]
        if self.detail:
            lines.append(f"  {self.detail}")
        lines.extend(f"  - {item}" for item in self.evidence)
        return "\n".join(lines)


def blocks_release(result: CheckResult, accept_inconclusive: bool = False) -> bool:
    """Whether the result stops a release: a gated FAIL, or a gated INCONCLUSIVE unless accepted."""
    if not result.gated or result.outcome is Outcome.PASS:
        return False
    return not (accept_inconclusive and result.outcome is Outcome.INCONCLUSIVE)


def failure_message(blocking: list[CheckResult]) -> str:
    """The test's failure text: each blocking result; INCONCLUSIVE ones say that more data, not a new
    checkpoint, is what they need."""
    lines = [result.describe() for result in blocking]
    if any(result.outcome is Outcome.INCONCLUSIVE for result in blocking):
        lines.append("INCONCLUSIVE is not a release: the data could not tell within the limit from beyond it. "
                     "Add evaluation data (--whisperq-data, the estimate above), or accept it knowingly with "
                     "--whisperq-accept-inconclusive")
    return "\n".join(lines)


MAX_EVIDENCE = 20


def evidence_list(items: list[str], limit: int = MAX_EVIDENCE) -> list[str]:
    """The first `limit` items, and a count of the rest, so a report stays readable."""
    return items if len(items) <= limit else [*items[:limit], f"... and {len(items) - limit} more"]


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
