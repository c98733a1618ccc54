"""Language identification (optional, `--whisperq-language-id`): each model decodes without a forced
language, and the language it hears in each utterance is compared with the utterance's own. Quantization
can blur what the encoder tells apart between languages long before forced-language transcripts show it;
a deployment that lets Whisper detect the language (no `language` in the request) sees exactly this.
The model's misidentifications beyond the base's on the same utterances are judged by the decision rule."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from pytest_whisperq.checks.sanity import Flag, check_excess
from pytest_whisperq.decision import Rule
from pytest_whisperq.results import CheckResult


def check_language_id(ids: Sequence[str], expected: Sequence[str], base: Sequence[str], model: Sequence[str],
                      limit: float = 2.0, rule: Rule = Rule()) -> CheckResult:
    """Utterances whose detected language is not their own: the model's excess over the base, in points of
    utterances. The detail counts what each model heard instead (e.g. `fr->en 12`)."""
    if not (len(ids) == len(expected) == len(base) == len(model)):
        raise ValueError("ids, expected, base and model languages must have the same length")
    flags = [Flag(b != e, m != e, f"{uid} ({e}): model heard {m!r}, base {b!r}")
             for uid, e, b, m in zip(ids, expected, base, model)]
    result = check_excess("language_id", flags, limit, rule,
                          f"utterances identified as another language than their own ({len(set(expected))} "
                          f"languages: {', '.join(sorted(set(expected)))})")
    confusions = Counter(f"{e}->{m}" for e, m in zip(expected, model) if m != e)
    base_confusions = Counter(f"{e}->{b}" for e, b in zip(expected, base) if b != e)
    shown = ", ".join(f"{pair} {count}" for pair, count in confusions.most_common(6)) or "none"
    shown_base = ", ".join(f"{pair} {count}" for pair, count in base_confusions.most_common(6)) or "none"
    return replace(result, detail=f"{result.detail}; the model's confusions: {shown}; the base's: {shown_base}")
