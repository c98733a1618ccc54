"""Long-form audio (over Whisper's 30 s window): what goes wrong there goes wrong at window boundaries,
where decoding loops, drops the text of a window, or repeats it. Each long file is scored whole, and each
is checked for the three against the base's transcript of the same file.

There are few long files (a handful of minutes of audio), far too few for the paired decision rule to
resolve a small WER difference: their WER delta is reported as its own pool ("long"). This check is for
gross failures, which need no statistics: a loop, or a run of `max_gap`+ consecutive reference words
missing or invented where the base's transcript has no such run, fails the file, and the file is named.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from pytest_whisperq.checks.sanity import loop_reason
from pytest_whisperq.checks.transcripts import UtteranceErrors, WerReport, pair_reports
from pytest_whisperq.results import CheckResult, evidence_list
from pytest_whisperq.text import Normalizer, Scoring, as_scoring

MAX_SHOWN_CHARS = 240


@dataclass(frozen=True)
class Gaps:
    """The longest run of consecutive reference units a transcript left out, and of units it added."""

    dropped: int
    inserted: int
    dropped_text: str = ""
    inserted_text: str = ""


def gaps(reference: list[str], hypothesis: list[str], joiner: str = " ") -> Gaps:
    """Longest deletion and insertion runs in the alignment of `hypothesis` to `reference` (jiwer's)."""
    import jiwer

    if not reference or not hypothesis:
        return Gaps(len(reference), len(hypothesis), joiner.join(reference[:30]), joiner.join(hypothesis[:30]))
    alignment = jiwer.process_words(" ".join(reference), " ".join(hypothesis)).alignments[0]
    dropped = max((c for c in alignment if c.type == "delete"), key=lambda c: c.ref_end_idx - c.ref_start_idx, default=None)
    inserted = max((c for c in alignment if c.type == "insert"), key=lambda c: c.hyp_end_idx - c.hyp_start_idx, default=None)
    return Gaps(
        dropped.ref_end_idx - dropped.ref_start_idx if dropped else 0,
        inserted.hyp_end_idx - inserted.hyp_start_idx if inserted else 0,
        joiner.join(reference[dropped.ref_start_idx : dropped.ref_end_idx]) if dropped else "",
        joiner.join(hypothesis[inserted.hyp_start_idx : inserted.hyp_end_idx]) if inserted else "",
    )


def _short(text: str) -> str:
    return repr(text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "...")


def file_problems(base: UtteranceErrors, model: UtteranceErrors, scoring: Scoring, max_repeats: int,
                  max_gap: int) -> tuple[list[str], str]:
    """The model's long-form failures on one file that the base's transcript of it does not share, and a
    line with both transcripts' figures."""
    unit = scoring.unit_name(model.language)
    joiner = "" if unit == "characters" else " "
    reference = scoring.units(model.reference, model.language)
    model_gaps = gaps(reference, scoring.units(model.hypothesis, model.language), joiner)
    base_gaps = gaps(reference, scoring.units(base.hypothesis, base.language), joiner)
    problems = []
    model_loop = loop_reason(model.reference, model.hypothesis, max_repeats, 2.0, model.language)
    if model_loop and not loop_reason(base.reference, base.hypothesis, max_repeats, 2.0, base.language):
        problems.append(f"loop: {model_loop}")
    if model_gaps.dropped >= max_gap and model_gaps.dropped > base_gaps.dropped:
        problems.append(f"dropped {model_gaps.dropped} consecutive reference {unit} (base: at most {base_gaps.dropped}): "
                        f"{_short(model_gaps.dropped_text)}")
    if model_gaps.inserted >= max_gap and model_gaps.inserted > base_gaps.inserted:
        problems.append(f"invented {model_gaps.inserted} consecutive {unit} (base: at most {base_gaps.inserted}): "
                        f"{_short(model_gaps.inserted_text)}")
    line = (f"{model.id} ({model.language}, {model.words} {unit}): errors base {base.errors}, model {model.errors}; "
            f"longest dropped run base {base_gaps.dropped} / model {model_gaps.dropped}, invented base "
            f"{base_gaps.inserted} / model {model_gaps.inserted}")
    return problems, line


def check_long_form(base: WerReport, model: WerReport, long_ids: Collection[str], normalize: Normalizer | Scoring,
                    max_repeats: int = 3, max_gap: int = 8) -> CheckResult:
    """Every long file's transcript free of loops and of dropped or invented runs of `max_gap`+ units that the
    base's transcript of the same file does not have. Fails when the data has no long file: then long-form
    decoding was not checked at all."""
    scoring = as_scoring(normalize)
    pairs = [(b, m) for b, m in pair_reports(base, model) if m.id in long_ids]
    name = "long_form"
    if not pairs:
        return CheckResult(name=name, ok=False, observed=0, unit=" files",
                           detail="the evaluation data has no audio over 30 s, so long-form decoding (where quantized "
                                  "Whisper loops and drops text at window boundaries) was not checked; add long "
                                  "recordings with their references (metadata.tsv speech=long), or deselect this test "
                                  "(-k 'not long_form') and the release verdict says so")
    failing, lines = [], []
    for b, m in pairs:
        problems, line = file_problems(b, m, scoring, max_repeats, max_gap)
        if problems:
            failing.append(m.id)
            lines.append(f"{line}: {'; '.join(problems)} | base: {_short(b.hypothesis)} | model: {_short(m.hypothesis)}")
        else:
            lines.append(line)
    ok = not failing
    detail = (f"{len(pairs)} long files; {len(failing)} with a loop or a run of {max_gap}+ dropped or invented words "
              "(characters where words have no spaces) that the base's transcript of the file does not have"
              + (f": {', '.join(failing)}" if failing else ""))
    if not ok:
        lines.append("next: transcribe the named file with the base and the model on this backend and compare them at "
                     "the 30 s boundaries; a quantized decoder that loops there often needs its calibration data to "
                     "include long-form (timestamped) decoding")
    return CheckResult(name=name, ok=ok, observed=len(failing), limit=0, unit=" files", detail=detail,
                       evidence=evidence_list(lines))
