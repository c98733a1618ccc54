"""Cross-backend agreement: the same checkpoint, the same audio, two inference stacks.

Greedy decoding of identical weights should give the same words whichever stack runs it; where a
loader reads a checkpoint differently (a quantized head one stack ignores, a scale applied twice, a
fused projection split wrongly) the transcripts part ways even when each stack's WER looks plausible.
The figure is the WER of one backend's transcripts against the other's, pooled over the utterances,
after Whisper's normaliser, so spelling and punctuation differences between stacks do not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_whisperq.checks.sanity import disagreement
from pytest_whisperq.results import CheckResult, evidence_list
from pytest_whisperq.text import Normalizer

if TYPE_CHECKING:
    from pytest_whisperq.backends import Hypothesis


@dataclass(frozen=True)
class Divergence:
    id: str
    edits: int
    words: int
    reference_text: str
    other_text: str


def divergences(reference: Sequence[Hypothesis], other: Sequence[Hypothesis], normalize: Normalizer) -> list[Divergence]:
    """Per utterance, word edits from the reference backend's transcript to the other's (matched by id)."""
    others = {h.id: h for h in other}
    missing = [h.id for h in reference if h.id not in others]
    if missing or len(others) != len(reference):
        raise ValueError(f"the two backends transcribed different utterances (missing: {missing[:5]})")
    rows = []
    for ref in reference:
        edits, words = disagreement(ref.text, others[ref.id].text, normalize)
        rows.append(Divergence(ref.id, edits, words, ref.text, others[ref.id].text))
    return rows


def check_backend_agreement(
    reference_backend: str,
    other_backend: str,
    reference: Sequence[Hypothesis],
    other: Sequence[Hypothesis],
    normalize: Normalizer,
    max_disagreement: float,
) -> CheckResult:
    """Pooled WER of `other`'s transcripts measured against `reference`'s must stay within
    `max_disagreement` percent; every utterance where they differ is listed, most edits first."""
    rows = divergences(reference, other, normalize)
    edits, words = sum(r.edits for r in rows), sum(r.words for r in rows)
    if not rows or words == 0:
        return CheckResult(name=f"backends_agree[{other_backend}]", ok=False,
                           detail="no words to compare: the reference backend transcribed nothing "
                                  f"({len(rows)} utterances); check the data and the {reference_backend} backend")
    share = 100.0 * edits / words
    differing = sorted((r for r in rows if r.edits), key=lambda r: (-r.edits, r.id))
    ok = share <= max_disagreement
    detail = (f"{other_backend} vs {reference_backend} on the same checkpoint: {len(rows) - len(differing)} of "
              f"{len(rows)} transcripts identical after normalisation; {edits} word edits in {words} words")
    if not ok:
        detail += (f". The stacks read or run the checkpoint differently: compare the utterances below, then "
                   f"each stack's WER (--whisperq-backend={reference_backend} and ={other_backend}); raise "
                   f"--whisperq-max-backend-disagreement only if the difference is expected numerics")
    return CheckResult(
        name=f"backends_agree[{other_backend}]",
        ok=ok,
        observed=round(share, 2),
        limit=max_disagreement,
        unit="%",
        detail=detail,
        evidence=evidence_list([f"{r.id}: {r.edits} edits in {r.words} words | {reference_backend}: {r.reference_text} "
                                f"| {other_backend}: {r.other_text}" for r in differing], limit=10),
    )
