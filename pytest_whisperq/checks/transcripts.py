"""Word error rate of transcripts against references, per utterance and per subset (character error
rate for languages written without spaces: `pytest_whisperq.text`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_whisperq.decision import Outcome, Rule, decide, ratio_delta_se
from pytest_whisperq.results import CheckResult
from pytest_whisperq.text import Normalizer, Scoring, as_scoring, scored_by_characters

if TYPE_CHECKING:
    from pytest_whisperq.backends import Hypothesis
    from pytest_whisperq.data import Utterance


@dataclass(frozen=True)
class UtteranceErrors:
    id: str
    subset: str
    reference: str
    hypothesis: str
    errors: int  # substitutions + deletions + insertions, after normalisation
    words: int  # normalised reference words (characters for a language scored by characters)
    language: str = "en"

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else float(self.errors > 0)


@dataclass(frozen=True)
class WerReport:
    utterances: tuple[UtteranceErrors, ...]

    @property
    def errors(self) -> int:
        return sum(u.errors for u in self.utterances)

    @property
    def words(self) -> int:
        return sum(u.words for u in self.utterances)

    @property
    def wer_percent(self) -> float:
        return 100.0 * self.errors / self.words if self.words else 0.0

    def subsets(self) -> list[str]:
        return sorted({u.subset for u in self.utterances})

    def subset(self, name: str) -> WerReport:
        return self.only(lambda u: u.subset == name)

    def only(self, keep: Callable[[UtteranceErrors], bool]) -> WerReport:
        return WerReport(tuple(u for u in self.utterances if keep(u)))

    def worst(self, count: int = 5) -> list[UtteranceErrors]:
        return sorted(self.utterances, key=lambda u: (-u.errors, u.id))[:count]


def word_errors(reference: str, hypothesis: str) -> int:
    """Levenshtein distance over words (jiwer), for already normalised texts."""
    return unit_errors(reference.split(), hypothesis.split())


def unit_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Levenshtein distance over scoring units (words or characters), already normalised."""
    import jiwer

    if not reference:
        return len(hypothesis)
    if not hypothesis:
        return len(reference)
    output = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return output.substitutions + output.deletions + output.insertions


def measure_wer(
    ids: Sequence[str],
    subsets: Sequence[str],
    references: Sequence[str],
    hypotheses: Sequence[str],
    normalize: Normalizer | Scoring,
    languages: Sequence[str] | None = None,
) -> WerReport:
    """Per-utterance errors, each utterance scored by its language's rules (English when none is given)."""
    languages = languages if languages is not None else ["en"] * len(ids)
    if not (len(ids) == len(subsets) == len(references) == len(hypotheses) == len(languages)):
        raise ValueError("ids, subsets, references, hypotheses and languages must have the same length")
    scoring = as_scoring(normalize)
    rows = []
    for uid, subset, reference, hypothesis, language in zip(ids, subsets, references, hypotheses, languages):
        ref, hyp = scoring.units(reference, language), scoring.units(hypothesis, language)
        rows.append(UtteranceErrors(uid, subset, reference, hypothesis, unit_errors(ref, hyp), len(ref), language))
    return WerReport(tuple(rows))


def score(utterances: Sequence[Utterance], hypotheses: Sequence[Hypothesis], normalize: Normalizer | Scoring) -> WerReport:
    """The WER report of `hypotheses` (in the order of `utterances`) against the utterances' texts."""
    if [h.id for h in hypotheses] != [u.id for u in utterances]:
        raise ValueError("hypotheses are not in the order of the utterances")
    return measure_wer([u.id for u in utterances], [u.subset for u in utterances], [u.text for u in utterances],
                       [h.text for h in hypotheses], normalize, [u.language for u in utterances])


CEILING_MARGIN = 0.2  # the WER ceiling's margin, a share of the ceiling: 15% tells 12% from 18%


def check_wer_ceiling(report: WerReport, max_wer_percent: float, label: str, rule: Rule = Rule(),
                      gated: bool = True) -> CheckResult:
    """The WER on `report` must stay under an absolute ceiling (a floor on quality), judged by the
    decision rule with a margin of a fifth of the ceiling."""
    rows = report.utterances
    unit = "characters" if rows and all(scored_by_characters(u.language) for u in rows) else "words"
    observed, se = ratio_delta_se([u.words for u in rows], [u.errors for u in rows])
    decision = decide(observed, se, max_wer_percent, margin=max(CEILING_MARGIN * max_wer_percent, 0.1),
                      units=len(rows), rule=rule, se_floor=rule.rule_of_three_se(report.words))
    ok = decision.outcome is Outcome.PASS and report.words > 0
    evidence = [
        f"{u.id}: {u.errors} errors / {u.words} words | ref: {u.reference!r} | hyp: {u.hypothesis!r}"
        for u in report.worst(5) if u.errors
    ]
    return CheckResult(
        name=f"wer[{label}]",
        ok=ok,
        observed=round(float(observed), 2),
        limit=max_wer_percent,
        unit="%",
        detail=(
            ("the references have no words after normalisation: no WER can be measured; " if not report.words else "")
            + f"{report.errors} {unit[:-1]} errors in {report.words} reference {unit}, {len(rows)} utterances "
            f"({decision.outcome.upper()}: {decision.how}); per subset: " + ", ".join(
                f"{name} {sub.wer_percent:.2f}% ({sub.errors}/{sub.words})"
                for name in report.subsets() for sub in [report.subset(name)]
            )
        ),
        evidence=evidence if not ok else evidence[:3],
        decision=decision if report.words else None,
        gated=gated,
    )


def pair_reports(base: WerReport, model: WerReport) -> list[tuple[UtteranceErrors, UtteranceErrors]]:
    """Match utterances by id; both reports must cover exactly the same ones with the same references."""
    by_id = {u.id: u for u in base.utterances}
    if len(by_id) != len(base.utterances):
        raise ValueError("the base report has duplicate utterance ids")
    model_ids = [u.id for u in model.utterances]
    if sorted(model_ids) != sorted(by_id):
        missing = sorted(set(by_id) - set(model_ids))[:5]
        extra = sorted(set(model_ids) - set(by_id))[:5]
        raise ValueError(f"base and model were scored on different utterances (only base: {missing}, only model: {extra})")
    pairs = []
    for m in model.utterances:
        b = by_id[m.id]
        if b.reference != m.reference or b.words != m.words:
            raise ValueError(f"{m.id}: base and model were scored against different references")
        pairs.append((b, m))
    return pairs
