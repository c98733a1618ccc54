"""Transcript sanity: the failure modes a broken quantization shows before its WER does.

Each property (empty output, a repetition loop, another language, far from the reference, far from
the base's transcript, talk on silence) is counted for the base and for the model on the same
utterances, and the model's excess over the base, in percent of utterances, is judged by the
decision rule (`pytest_whisperq.decision`): the base's own failures never fail the model, and one
odd sample in a large set does not either. Every flagged sample is listed as evidence with its
texts, the model's own first.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pytest_whisperq.checks.transcripts import UtteranceErrors, WerReport, pair_reports, unit_errors
from pytest_whisperq.decision import Rule, decide, paired_mean_se
from pytest_whisperq.results import CheckResult, evidence_list
from pytest_whisperq.text import Normalizer, Scoring, as_scoring, scored_by_characters

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
MAX_SHOWN_CHARS = 160


def words_of(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def characters_of(text: str) -> list[str]:
    """The letters and digits of a text written without spaces (Chinese, Japanese, Thai, ...)."""
    return [ch.lower() for ch in text if ch.isalnum()]


def units_of(text: str, language: str) -> list[str]:
    """What loops are counted in: words, or characters where the language has no spaces."""
    return characters_of(text) if scored_by_characters(language) else words_of(text)


def _short(text: str) -> str:
    return repr(text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "...")


# --- the paired rule ------------------------------------------------------------------------

@dataclass(frozen=True)
class Flag:
    """One utterance's property for both models, and the line that shows it."""

    base: bool
    model: bool
    line: str


def check_excess(name: str, flags: Sequence[Flag], limit: float, rule: Rule, what: str, unit: str = "utterances") -> CheckResult:
    """The model's excess of a property over the base, in percent of `unit`, judged by the decision rule
    (good: no excess, bad: twice the limit). Evidence: the model's cases, then both's, then the base's."""
    n = len(flags)
    point, se = paired_mean_se([float(f.model) - float(f.base) for f in flags])
    decision = decide(point, se, limit, margin=limit, units=n, rule=rule, se_floor=rule.rule_of_three_se(n))
    model_only = [f.line for f in flags if f.model and not f.base]
    both = [f"(base too) {f.line}" for f in flags if f.model and f.base]
    base_only = [f"(base only) {f.line}" for f in flags if f.base and not f.model]
    base_count, model_count = sum(f.base for f in flags), sum(f.model for f in flags)
    detail = (f"{what}: model {model_count}, base {base_count} of {n} {unit} ({len(model_only)} the model's alone, "
              f"{len(base_only)} the base's alone); excess {point:+.2f} points; {decision.outcome.upper()}: {decision.how}")
    evidence = model_only + both + base_only
    if decision.outcome == "inconclusive":
        evidence.insert(0, f"to decide: about {decision.more_units} more {unit} like these (standard error "
                           f"{decision.se:.2f}, needed {decision.se_needed:.2f}); or --whisperq-accept-inconclusive")
    return CheckResult(
        name=name,
        ok=decision.outcome == "pass",
        observed=round(float(point), 2),
        limit=limit,
        unit=" points",
        detail=detail,
        evidence=evidence_list(evidence),
        decision=decision,
    )


def _texts(b: UtteranceErrors, m: UtteranceErrors) -> str:
    return f"ref: {_short(m.reference)} | base: {_short(b.hypothesis)} | model: {_short(m.hypothesis)}"


def check_non_empty(base: WerReport, model: WerReport, limit: float = 1.0, rule: Rule = Rule()) -> CheckResult:
    """Empty transcripts where the reference has words: the model's excess over the base."""
    flags = [Flag(bool(b.words and not b.hypothesis.strip()), bool(m.words and not m.hypothesis.strip()),
                  f"{m.id} ({m.subset}): empty | {_texts(b, m)}") for b, m in pair_reports(base, model)]
    return check_excess("non_empty_transcripts", flags, limit, rule, "empty transcripts")


# --- repetition loops ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Repetition:
    phrase: tuple[str, ...]
    count: int  # consecutive occurrences


MAX_PHRASE_WORDS = 16
# In characters a phrase is longer, and one character said three times ("哈哈哈", "ううう") is no loop.
MIN_PHRASE_CHARACTERS, MAX_PHRASE_CHARACTERS = 2, 40


def longest_repetition(words: Sequence[str], max_phrase: int = MAX_PHRASE_WORDS, min_phrase: int = 1) -> Repetition:
    """The phrase (min_phrase..max_phrase units) repeated the most times in a row; ties go to the shorter."""
    best = Repetition((), 1)
    n = len(words)
    for size in range(min_phrase, max_phrase + 1):
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


def loop_reason(reference: str, hypothesis: str, max_repeats: int, max_length_ratio: float,
                language: str = "en") -> str | None:
    """Why `hypothesis` looks like a decoding loop, or None. Repetition the reference itself has
    ("no, no, no") is not a loop. Counted in characters for languages written without spaces."""
    hyp, ref = units_of(hypothesis, language), units_of(reference, language)
    by_characters = scored_by_characters(language)
    unit, joiner = ("character", "") if by_characters else ("word", " ")
    limits = (MAX_PHRASE_CHARACTERS, MIN_PHRASE_CHARACTERS) if by_characters else (MAX_PHRASE_WORDS, 1)
    run = longest_repetition(hyp, *limits)
    if run.count >= max_repeats and run.count > repeats_of(run.phrase, ref):
        return f"{joiner.join(run.phrase)!r} repeated {run.count} times in a row (limit {max_repeats - 1})"
    slack = 10 if not by_characters else 20
    if ref and len(hyp) > max_length_ratio * len(ref) + slack:
        return f"{len(hyp)} {unit}s for a {len(ref)}-{unit} reference (runaway output)"
    return None


def check_no_loops(base: WerReport, model: WerReport, max_repeats: int = 3, limit: float = 1.0, rule: Rule = Rule(),
                   max_length_ratio: float = 2.0) -> CheckResult:
    """Transcripts that repeat a phrase `max_repeats` times in a row (more than the reference does) or
    run far past their reference: the model's excess over the base."""
    flags = []
    for b, m in pair_reports(base, model):
        base_reason = loop_reason(b.reference, b.hypothesis, max_repeats, max_length_ratio, b.language)
        model_reason = loop_reason(m.reference, m.hypothesis, max_repeats, max_length_ratio, m.language)
        flags.append(Flag(base_reason is not None, model_reason is not None,
                          f"{m.id} ({m.subset}): {model_reason or base_reason} | {_texts(b, m)}"))
    return check_excess("no_repetition_loops", flags, limit, rule,
                        f"looping transcripts (a phrase of up to {MAX_PHRASE_WORDS} words, or {MAX_PHRASE_CHARACTERS} "
                        f"characters where words have no spaces, {max_repeats}+ times in a row, more than in the "
                        f"reference, or over {max_length_ratio:g} x the reference's length + 10 words)")


# --- silence ------------------------------------------------------------------------------------

def check_silence(model: Sequence[tuple[str, str]], base: Sequence[tuple[str, str]], max_words: int = 0,
                  limit: float = 10.0, rule: Rule = Rule()) -> CheckResult:
    """Clips without speech talked on (more than `max_words` words): the model's excess over the base on
    the same clips (Whisper itself often says "you" on silence). `model` and `base` are `(clip, transcript)`."""
    base_text = dict(base)
    if set(base_text) != {clip for clip, _ in model}:
        raise ValueError("model and base silence transcripts are for different clips")
    if not model or len(base_text) != len(model):
        raise ValueError("the silence check needs at least one clip, each with a unique id")
    flags = [Flag(len(words_of(base_text[clip])) > max_words, len(words_of(text)) > max_words,
                  f"{clip}: model {_short(text)} ({len(words_of(text))} words), base {_short(base_text[clip])}")
             for clip, text in model]
    return check_excess("silent_on_silence", flags, limit, rule, f"clips talked on (over {max_words} words)", "clips")


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


def check_language(base: WerReport, model: WerReport, language: str = "en", limit: float = 1.0, rule: Rule = Rule(),
                   min_words: int = 4, min_probability: float = 0.9) -> CheckResult:
    """Transcripts not in their utterance's language: the model's excess over the base. `language` names the
    check when every utterance is in it; data in several languages is checked utterance by utterance."""
    pairs = pair_reports(base, model)
    languages = sorted({m.language for _, m in pairs} or {language}, key=lambda code: (code != language, code))
    name = f"language[{','.join(languages)}]"
    unknown = [code for code in languages if code not in identifiable_languages()]
    if unknown:
        return CheckResult(
            name=name, ok=False,
            detail=f"cannot check the language: langid.py does not know {', '.join(unknown)}; it knows "
                   f"{', '.join(sorted(identifiable_languages()))}. Give the data's rows (or --whisperq-language) one "
                   "of these codes, or deselect this test (-k 'not language') if your language is not among them",
        )
    flags = []
    for b, m in pairs:
        base_reason = language_reason(b.reference, b.hypothesis, b.language, min_words, min_probability)
        model_reason = language_reason(m.reference, m.hypothesis, m.language, min_words, min_probability)
        flags.append(Flag(base_reason is not None, model_reason is not None,
                          f"{m.id} ({m.subset}, {m.language}): {model_reason or base_reason} | {_texts(b, m)}"))
    short = sum(len(words_of(u.hypothesis)) < min_words for u in model.utterances)
    which = f"{languages[0]!r}" if len(languages) == 1 else f"their utterance's language ({', '.join(languages)})"
    return check_excess(name, flags, limit, rule,
                        f"transcripts not in {which} ({short} of the model's have under {min_words} words: only "
                        "their script is checked)")


# --- closeness ----------------------------------------------------------------------------------

def check_close_to_reference(base: WerReport, model: WerReport, max_sample_wer: float = 50.0, limit: float = 1.0,
                             rule: Rule = Rule()) -> CheckResult:
    """Samples with a WER above `max_sample_wer` percent: the model's excess over the base."""
    flags = [Flag(100.0 * b.wer > max_sample_wer, 100.0 * m.wer > max_sample_wer,
                  f"{m.id} ({m.subset}): WER {100 * m.wer:.0f}% (base {100 * b.wer:.0f}%) | {_texts(b, m)}")
             for b, m in pair_reports(base, model)]
    return check_excess("close_to_reference", flags, limit, rule, f"samples with a WER above {max_sample_wer:g}%")


def disagreement(base_text: str, model_text: str, normalize: Normalizer | Scoring, language: str = "en") -> tuple[int, int]:
    """Word (or character) edits from the base's transcript to the model's, and the base transcript's length."""
    scoring = as_scoring(normalize)
    base_units, model_units = scoring.units(base_text, language), scoring.units(model_text, language)
    return unit_errors(base_units, model_units), len(base_units)


def check_close_to_base(base: WerReport, model: WerReport, normalize: Normalizer | Scoring, max_disagreement: float = 50.0,
                        limit: float = 1.0, rule: Rule = Rule()) -> CheckResult:
    """Transcripts more than `max_disagreement` percent WER apart from the base's. Such a disagreement
    counts against the one of the two further from the reference: the model's count is where it is
    worse, the base's where the base is (a tie counts for neither), so a good model's differences, which
    go both ways, cancel, and a model that strays from its base where the base was right does not."""
    flags = []
    for b, m in pair_reports(base, model):
        edits, length = disagreement(b.hypothesis, m.hypothesis, normalize, m.language)
        share = 100.0 * edits / length if length else (100.0 if edits else 0.0)
        far = share > max_disagreement
        flags.append(Flag(far and b.errors > m.errors, far and m.errors > b.errors,
                          f"{m.id} ({m.subset}): {edits} word edits from the base's {length} words ({share:.0f}%), "
                          f"errors base {b.errors}, model {m.errors} | {_texts(b, m)}"))
    return check_excess("close_to_base", flags, limit, rule,
                        f"transcripts over {max_disagreement:g}% WER from the other model's and the further from the reference")
