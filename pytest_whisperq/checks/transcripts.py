"""Word error rate of transcripts against references, per utterance and per subset."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_whisperq.results import CheckResult
from pytest_whisperq.text import Normalizer

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
    words: int  # normalised reference words

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
    import jiwer

    ref_words, hyp_words = reference.split(), hypothesis.split()
    if not ref_words:
        return len(hyp_words)
    if not hyp_words:
        return len(ref_words)
    output = jiwer.process_words(reference, hypothesis)
    return output.substitutions + output.deletions + output.insertions


def measure_wer(
    ids: Sequence[str],
    subsets: Sequence[str],
    references: Sequence[str],
    hypotheses: Sequence[str],
    normalize: Normalizer,
) -> WerReport:
    if not (len(ids) == len(subsets) == len(references) == len(hypotheses)):
        raise ValueError("ids, subsets, references and hypotheses must have the same length")
    rows = []
    for uid, subset, reference, hypothesis in zip(ids, subsets, references, hypotheses):
        ref, hyp = normalize(reference), normalize(hypothesis)
        rows.append(UtteranceErrors(uid, subset, reference, hypothesis, word_errors(ref, hyp), len(ref.split())))
    return WerReport(tuple(rows))


def score(utterances: Sequence[Utterance], hypotheses: Sequence[Hypothesis], normalize: Normalizer) -> WerReport:
    """The WER report of `hypotheses` (in the order of `utterances`) against the utterances' texts."""
    if [h.id for h in hypotheses] != [u.id for u in utterances]:
        raise ValueError("hypotheses are not in the order of the utterances")
    return measure_wer([u.id for u in utterances], [u.subset for u in utterances], [u.text for u in utterances],
                       [h.text for h in hypotheses], normalize)


def check_wer_ceiling(report: WerReport, max_wer_percent: float, label: str) -> CheckResult:
    """The WER on `report` must not exceed an absolute ceiling (a sanity floor on quality)."""
    observed = round(report.wer_percent, 2)
    ok = observed <= max_wer_percent and report.words > 0
    evidence = [
        f"{u.id}: {u.errors} errors / {u.words} words | ref: {u.reference!r} | hyp: {u.hypothesis!r}"
        for u in report.worst(5) if u.errors
    ]
    return CheckResult(
        name=f"wer[{label}]",
        ok=ok,
        observed=observed,
        limit=max_wer_percent,
        unit="%",
        detail=(
            ("the references have no words after normalisation: no WER can be measured; " if not report.words else "")
            + f"{report.errors} word errors in {report.words} reference words, {len(report.utterances)} utterances; "
            "per subset: " + ", ".join(
                f"{name} {sub.wer_percent:.2f}% ({sub.errors}/{sub.words})"
                for name in report.subsets() for sub in [report.subset(name)]
            )
        ),
        evidence=evidence if not ok else evidence[:3],
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
