"""The accuracy gate: the quantized model's WER against the base's, on the same utterances.

The delta is `WER(model) - WER(base)` in percentage points, pooled over utterances (errors summed,
words summed). Its standard error is the ratio estimator's, from the per-utterance paired
differences: what both models get wrong (hard audio, a wrong reference) cancels, and only their
disagreement counts. The decision rule (`pytest_whisperq.decision`) turns it into PASS, FAIL or
INCONCLUSIVE; docs/statistics.md states the error rates and the simulations that prove them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_whisperq.checks.transcripts import UtteranceErrors, WerReport, pair_reports
from pytest_whisperq.decision import Decision, Rule, decide, ratio_delta_se
from pytest_whisperq.results import CheckResult, evidence_list
from pytest_whisperq.text import scored_by_characters

if TYPE_CHECKING:
    from pytest_whisperq.data import Utterance

MAX_REGRESSIONS_SHOWN = 5


@dataclass(frozen=True)
class WerDelta:
    """Both WERs on one pool of utterances, their difference and its standard error."""

    label: str
    utterances: int
    words: int
    base_errors: int
    model_errors: int
    se: float

    @property
    def base_wer(self) -> float:
        return 100.0 * self.base_errors / self.words if self.words else 0.0

    @property
    def model_wer(self) -> float:
        return 100.0 * self.model_errors / self.words if self.words else 0.0

    @property
    def delta(self) -> float:
        return self.model_wer - self.base_wer

    def decide(self, max_delta: float, rule: Rule) -> Decision:
        """The rule's verdict on this delta: good is 0 (no worse than the base), bad is twice the limit."""
        return decide(self.delta, self.se, max_delta, margin=max_delta, units=self.utterances, rule=rule,
                      se_floor=rule.rule_of_three_se(self.words))

    def summary(self, max_delta: float, rule: Rule) -> str:
        decision = self.decide(max_delta, rule)
        return (f"{self.label}: base {self.base_wer:.2f}% ({self.base_errors}/{self.words}), "
                f"model {self.model_wer:.2f}% ({self.model_errors}/{self.words}), "
                f"delta {self.delta:+.2f} [{decision.low:+.2f}, {decision.high:+.2f}] ({decision.outcome})")


def wer_delta(label: str, pairs: list[tuple[UtteranceErrors, UtteranceErrors]]) -> WerDelta:
    words = [b.words for b, _ in pairs]
    base_errors = [b.errors for b, _ in pairs]
    model_errors = [m.errors for _, m in pairs]
    _, se = ratio_delta_se(words, [m - b for b, m in zip(base_errors, model_errors)])
    return WerDelta(label, len(pairs), sum(words), sum(base_errors), sum(model_errors), se)


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
    rule: Rule = Rule(),
    per_subset: bool = True,
    gated: bool = True,
) -> CheckResult:
    """WER(model) - WER(base) judged by the decision rule against `max_delta` points (good: 0, bad:
    twice the limit). `gated=False` reports the figure without ever failing on it."""
    pairs = pair_reports(base, model)
    pooled = wer_delta(label, pairs)
    name = f"wer_delta[{label}]"
    if pooled.words == 0:
        return CheckResult(name=name, ok=False, limit=max_delta, unit=" points", gated=gated,
                           detail=f"the {pooled.utterances} references have no words after normalisation: "
                                  "no WER can be measured; check the data set's text column")
    decision = pooled.decide(max_delta, rule)
    rate, unit = ("CER", "characters") if all(scored_by_characters(m.language) for _, m in pairs) else ("WER", "words")
    detail = (f"base {rate} {pooled.base_wer:.2f}% ({pooled.base_errors}/{pooled.words} {unit}), "
              f"model {rate} {pooled.model_wer:.2f}% ({pooled.model_errors}/{pooled.words}), "
              f"delta {pooled.delta:+.2f} points on {pooled.utterances} utterances; {decision.outcome.upper()}: "
              f"{decision.how}")
    if not gated:
        detail += " (reported, not gated)"
    evidence = []
    if decision.outcome == "inconclusive":
        evidence.append(inconclusive_advice(decision, pooled.words))
    if per_subset:
        subsets = sorted({m.subset for _, m in pairs})
        if len(subsets) > 1:
            for subset in subsets:
                subset_pairs = [(b, m) for b, m in pairs if m.subset == subset]
                evidence.append("subset " + wer_delta(subset, subset_pairs).summary(max_delta, rule))
    worst = regressions(pairs)
    if decision.outcome == "fail":
        evidence.extend(worst)
        evidence.append("next: compare the recipe (calibration data and samples, group size, ignore list) with "
                        "the published one, or re-quantize; `--whisperq-max-wer-delta` sets the limit")
    elif worst:
        evidence.append(f"largest regression: {worst[0]}")
    return CheckResult(
        name=name,
        ok=decision.outcome == "pass",
        observed=round(float(pooled.delta), 2),
        limit=max_delta,
        unit=" points",
        detail=detail,
        evidence=evidence_list(evidence),
        decision=decision,
        gated=gated,
    )


def inconclusive_advice(decision: Decision, words: int) -> str:
    """How much more data would decide, at the variance this pool shows."""
    more = decision.more_units or 0
    per_unit = words / decision.units if decision.units else 0
    size = f"about {more} more utterances" + (f" (~{round(more * per_unit)} words)" if per_unit else "")
    return (f"to decide: the upper bound must reach the limit or the standard error fall to {decision.se_needed:.3f} "
            f"(now {decision.se:.3f}): {size} like these; point --whisperq-data at a larger set, or accept it "
            "knowingly with --whisperq-accept-inconclusive")


POOL_ORDER = ("real", "words", "synthetic", "long")
ALL_LANGUAGES = "all"


@dataclass(frozen=True)
class Pool:
    """A set of utterances judged on its own: one speech kind in one language, or (`language` "all") one kind
    in every language of the data together. Data in one language has one pool per kind, labelled by the kind
    alone ("real"); data in several has "real:en", "real:es", ... and "real:all"."""

    label: str
    kind: str
    language: str

    def gated(self, gated_kinds: Sequence[str]) -> bool:
        """Each language's pool gates on its own; the figure over all languages is reported beside them."""
        return self.kind in gated_kinds and self.language != ALL_LANGUAGES

    def holds(self, kind: str, language: str) -> bool:
        return kind == self.kind and self.language in (language, ALL_LANGUAGES)


def pool_gated(label: str, gated_kinds: Sequence[str]) -> bool:
    """Whether the pool with this label gates (labels as `Pool.label`)."""
    kind, _, language = label.partition(":")
    return kind in gated_kinds and language != ALL_LANGUAGES


def data_pools(utterances: Sequence[Utterance], first_language: str = "en") -> list[Pool]:
    """The pools the data has, kinds in POOL_ORDER, `first_language` first, then the others alphabetically."""
    present = {(u.speech, u.language) for u in utterances}
    languages = sorted({language for _, language in present}, key=lambda code: (code != first_language, code))
    pools = []
    for kind in POOL_ORDER:
        mine = [language for language in languages if (kind, language) in present]
        if len(languages) == 1:
            pools.extend(Pool(kind, kind, language) for language in mine)
            continue
        pools.extend(Pool(f"{kind}:{language}", kind, language) for language in mine)
        if len(mine) > 1:
            pools.append(Pool(f"{kind}:{ALL_LANGUAGES}", kind, ALL_LANGUAGES))
    return pools


def pool_of(utterance: Utterance, pools: Sequence[Pool]) -> str:
    """The label of the one language-specific pool an utterance is in."""
    return next(p.label for p in pools if p.language != ALL_LANGUAGES and p.holds(utterance.speech, utterance.language))


def speech_pools(utterances: Sequence[Utterance], *reports: WerReport, first_language: str = "en") -> list[tuple[Any, ...]]:
    """Split reports into their pools (speech kind and language), which are judged and reported apart:
    `[(pool, report_part, ...), ...]`, only for pools the data has."""
    where = {u.id: (u.speech, u.language) for u in utterances}
    result = []
    for pool in data_pools(utterances, first_language):
        parts = tuple(report.only(lambda u, pool=pool: pool.holds(*where.get(u.id, ("real", u.language))))
                      for report in reports)
        if parts and parts[0].utterances:
            result.append((pool, *parts))
    return result


def check_gated_pools_present(labels: Sequence[str], gated_pools: Sequence[str]) -> CheckResult | None:
    """A failing result when the data has none of the gated pools (every WER figure would be reported and
    none gate the release), else None."""
    if any(pool_gated(label, gated_pools) for label in labels):
        return None
    return CheckResult(name="wer_gated_pools", ok=False, observed=", ".join(labels) or "none", limit=", ".join(gated_pools),
                       detail=f"the data has the speech pools {', '.join(labels) or 'none'}, none of them gated "
                              f"({', '.join(gated_pools)}): no WER figure would gate the release; mark real speech "
                              "speech=real in metadata.tsv, or name the pools to gate with --whisperq-gated-pools")
