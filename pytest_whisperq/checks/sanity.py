"""Transcript sanity: the failure modes a broken quantization shows before its WER does.

Each check looks at every sample and names the ones that fail with their texts: empty output,
a repetition loop, text on silence, another language, and transcripts far from the reference
or from the base model's transcript of the same audio.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pytest_whisperq.checks.transcripts import WerReport, pair_reports, word_errors
from pytest_whisperq.results import CheckResult, evidence_list
from pytest_whisperq.text import Normalizer

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
MAX_SHOWN_CHARS = 160


def words_of(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _short(text: str) -> str:
    return repr(text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "...")


def check_non_empty(report: WerReport) -> CheckResult:
    """Every utterance whose reference has words must get a non-empty transcript."""
    empty = [u for u in report.utterances if u.words and not u.hypothesis.strip()]
    return CheckResult(
        name="non_empty_transcripts",
        ok=not empty,
        observed=len(empty),
        limit=0,
        detail=f"{len(empty)} of {len(report.utterances)} transcripts are empty",
        evidence=evidence_list([f"{u.id} ({u.subset}): empty transcript, reference {_short(u.reference)}" for u in empty]),
    )


# --- repetition loops ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Repetition:
    phrase: tuple[str, ...]
    count: int  # consecutive occurrences


MAX_PHRASE_WORDS = 16


def longest_repetition(words: Sequence[str], max_phrase: int = MAX_PHRASE_WORDS) -> Repetition:
    """The phrase (1..max_phrase words) repeated the most times in a row; ties go to the shorter."""
    best = Repetition((), 1)
    n = len(words)
    for size in range(1, max_phrase + 1):
        start = 0
        while start + 2 * size <= n:
            count = 1
            while (start + (count + 1) * size <= n
                   and words[start + count * size : start + (count + 1) * size] == words[start : start + size]):
                count += 1
            if count > best.count:
                best = Repetition(tuple(words[start : start + size]), count)
            start += max(1, (count - 1) * size) if count > 1 else 1
    return best


def repeats_of(phrase: tuple[str, ...], words: Sequence[str]) -> int:
    """How many times `phrase` occurs in a row at most in `words` (0 if never)."""
    size, best = len(phrase), 0
    for start in range(len(words) - size + 1):
        count = 0
        while tuple(words[start + count * size : start + (count + 1) * size]) == phrase:
            count += 1
        best = max(best, count)
    return best


def loop_reason(reference: str, hypothesis: str, max_repeats: int, max_length_ratio: float) -> str | None:
    """Why `hypothesis` looks like a decoding loop, or None. Repetition the reference itself has
    ("no, no, no") is not a loop."""
    hyp, ref = words_of(hypothesis), words_of(reference)
    run = longest_repetition(hyp)
    if run.count >= max_repeats and run.count > repeats_of(run.phrase, ref):
        return f"{' '.join(run.phrase)!r} repeated {run.count} times in a row (limit {max_repeats - 1})"
    if ref and len(hyp) > max_length_ratio * len(ref) + 10:
        return f"{len(hyp)} words for a {len(ref)}-word reference (runaway output)"
    return None


def check_no_loops(report: WerReport, max_repeats: int = 3, max_length_ratio: float = 2.0) -> CheckResult:
    """No transcript repeats a phrase `max_repeats` times in a row or runs far past its reference."""
    looping = []
    for u in report.utterances:
        reason = loop_reason(u.reference, u.hypothesis, max_repeats, max_length_ratio)
        if reason:
            looping.append(f"{u.id} ({u.subset}): {reason} | ref: {_short(u.reference)} | hyp: {_short(u.hypothesis)}")
    return CheckResult(
        name="no_repetition_loops",
        ok=not looping,
        observed=len(looping),
        limit=0,
        detail=f"{len(looping)} of {len(report.utterances)} transcripts loop "
               f"(a phrase of up to {MAX_PHRASE_WORDS} words {max_repeats}+ times in a row, more than in the reference, or more than "
               f"{max_length_ratio:g} x the reference's words + 10)",
        evidence=evidence_list(looping),
    )


# --- silence ------------------------------------------------------------------------------------

def check_silence(model: Sequence[tuple[str, str]], base: Sequence[tuple[str, str]], max_words: int) -> CheckResult:
    """On audio with no speech the model may say no more than the base says on the same clip, and
    at most `max_words` words where the base says less (Whisper itself often says "you" on silence).
    `model` and `base` are `(clip, transcript)` pairs for the same clips."""
    base_text = dict(base)
    if set(base_text) != {clip for clip, _ in model}:
        raise ValueError("model and base silence transcripts are for different clips")
    if not model or len(base_text) != len(model):
        raise ValueError("the silence check needs at least one clip, each with a unique id")
    talkative = []
    for clip, text in model:
        said, base_said = len(words_of(text)), len(words_of(base_text[clip]))
        allowed = max(max_words, base_said)
        if said > allowed:
            talkative.append(f"{clip}: {said} words on silence (base {base_said}, allowed {allowed}): "
                             f"model {_short(text)}, base {_short(base_text[clip])}")
    return CheckResult(
        name="silent_on_silence",
        ok=not talkative,
        observed=len(talkative),
        limit=0,
        detail="clips without speech, model | base: " + "; ".join(
            f"{clip} {text!r} | {base_text[clip]!r}" for clip, text in model),
        evidence=evidence_list(talkative),
    )


# --- language -----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _language_identifier() -> Any:
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def identifiable_languages() -> frozenset[str]:
    return frozenset(_language_identifier().nb_classes)


def identify_language(text: str) -> tuple[str, float]:
    """ISO 639-1 code and probability (langid.py's model, 97 languages; shipped in its wheel)."""
    language, probability = _language_identifier().classify(text)
    return str(language), float(probability)


def non_latin_share(text: str) -> float:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(not unicodedata.name(ch, "").startswith("LATIN") for ch in letters) / len(letters)


LATIN_SCRIPT_LANGUAGES = frozenset("en de fr es it nl pt sv da no nb nn fi pl cs sk sl hr ro hu tr id ms vi".split())


def language_reason(reference: str, hypothesis: str, language: str, min_words: int, min_probability: float) -> str | None:
    """Why `hypothesis` is not in `language`, or None when it is or when the text cannot tell.

    Two tests: letters of a non-Latin script in a Latin-script language (any length); and the
    identifier's verdict, only for transcripts of `min_words`+ words, only when it is confident,
    and only when it puts the reference in the expected language (short prompts fool it)."""
    if language in LATIN_SCRIPT_LANGUAGES and non_latin_share(hypothesis) > 0.5:
        return f"{non_latin_share(hypothesis):.0%} of its letters are not Latin script"
    if len(words_of(hypothesis)) < min_words:
        return None
    found, probability = identify_language(hypothesis)
    if found == language or probability < min_probability:
        return None
    if reference.strip() and identify_language(reference)[0] != language:
        return None  # the identifier misjudges this sample's reference too: it cannot tell
    return f"identified as {found!r} (p={probability:.2f}), expected {language!r}"


def check_language(report: WerReport, language: str = "en", min_words: int = 4, min_probability: float = 0.9) -> CheckResult:
    if language not in identifiable_languages():
        return CheckResult(
            name=f"language[{language}]", ok=False,
            detail=f"cannot check the language: langid.py does not know {language!r}; it knows "
                   f"{', '.join(sorted(identifiable_languages()))}. Pass --whisperq-language with one of these "
                   "codes, or deselect this test (-k 'not language') if your language is not among them",
        )
    wrong = []
    for u in report.utterances:
        reason = language_reason(u.reference, u.hypothesis, language, min_words, min_probability)
        if reason:
            wrong.append(f"{u.id} ({u.subset}): {reason} | ref: {_short(u.reference)} | hyp: {_short(u.hypothesis)}")
    return CheckResult(
        name=f"language[{language}]",
        ok=not wrong,
        observed=len(wrong),
        limit=0,
        detail=f"{len(wrong)} of {len(report.utterances)} transcripts are not in {language!r} "
               f"({sum(len(words_of(u.hypothesis)) < min_words for u in report.utterances)} have under {min_words} "
               "words: only their script is checked)",
        evidence=evidence_list(wrong),
    )


# --- closeness ----------------------------------------------------------------------------------

def check_close_to_reference(base: WerReport, model: WerReport, max_sample_wer: float) -> CheckResult:
    """Each sample's WER must stay under `max_sample_wer` percent, unless the base is as far off
    on it too (then the sample, not the quantization, is hard: listed, not failed)."""
    far, excused = [], []
    for b, m in pair_reports(base, model):
        if 100.0 * m.wer > max_sample_wer:
            line = (f"{m.id} ({m.subset}): WER {100 * m.wer:.0f}% (base {100 * b.wer:.0f}%) | ref: {_short(m.reference)} | "
                    f"base: {_short(b.hypothesis)} | model: {_short(m.hypothesis)}")
            # excused only where the base is as far off and the model is no worse than the base
            (excused if 100.0 * b.wer > max_sample_wer and m.errors <= b.errors else far).append(line)
    detail = (f"{len(far)} of {len(model.utterances)} samples have a WER above {max_sample_wer:g}% "
              "and more errors than the base")
    if excused:
        detail += f"; {len(excused)} more are as far off with the base, and no worse (not counted)"
    return CheckResult(
        name="close_to_reference",
        ok=not far,
        observed=len(far),
        limit=0,
        detail=detail,
        evidence=evidence_list(far + [f"(base as far off) {line}" for line in excused]),
    )


def disagreement(base_text: str, model_text: str, normalize: Normalizer) -> tuple[int, int]:
    """Word edits from the base's transcript to the model's, and the base transcript's length."""
    base_norm, model_norm = normalize(base_text), normalize(model_text)
    return word_errors(base_norm, model_norm), len(base_norm.split())


def check_close_to_base(base: WerReport, model: WerReport, normalize: Normalizer, max_disagreement: float) -> CheckResult:
    """Each sample's transcript must be within `max_disagreement` percent WER of the base's transcript."""
    far = []
    worst = 0.0
    for b, m in pair_reports(base, model):
        edits, length = disagreement(b.hypothesis, m.hypothesis, normalize)
        share = 100.0 * edits / length if length else (100.0 if edits else 0.0)
        worst = max(worst, share)
        if share > max_disagreement:
            far.append(f"{m.id} ({m.subset}): {edits} word edits from the base's {length} words ({share:.0f}%) | "
                       f"ref: {_short(m.reference)} | base: {_short(b.hypothesis)} | model: {_short(m.hypothesis)}")
    return CheckResult(
        name="close_to_base",
        ok=not far,
        observed=round(worst, 1),
        limit=max_disagreement,
        unit="%",
        detail=f"{len(far)} of {len(model.utterances)} transcripts differ from the base's by more than "
               f"{max_disagreement:g}% WER (observed: the worst sample)",
        evidence=evidence_list(far),
    )

