"""The one result type every check returns, and the assertion text made from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check.

    `observed` and `limit` are the figures compared; `detail` is one human sentence;
    `evidence` carries what a person needs to act (offending tensors, worst utterances).
    """

    name: str
    ok: bool
    observed: Any = None
    limit: Any = None
    unit: str = ""
    detail: str = ""
    evidence: list[Any] = field(default_factory=list)

    def describe(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        figures = ""
        if self.observed is not None:
            figures = f": observed {_fmt(self.observed)}{self.unit}"
            if self.limit is not None:
                figures += f", limit {_fmt(self.limit)}{self.unit}"
        lines = [f"{verdict} {self.name}{figures}"]
        if self.detail:
            lines.append(f"  {self.detail}")
        lines.extend(f"  - {item}" for item in self.evidence)
        return "\n".join(lines)


MAX_EVIDENCE = 20


def evidence_list(items: list[str], limit: int = MAX_EVIDENCE) -> list[str]:
    """The first `limit` items, and a count of the rest, so a report stays readable."""
    return items if len(items) <= limit else [*items[:limit], f"... and {len(items) - limit} more"]


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
