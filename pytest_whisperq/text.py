"""How transcripts and references are normalised and cut into units before error rates are counted.

English keeps Whisper's English text normaliser with OpenAI's spelling map. Every other language gets
Whisper's basic (multilingual) normaliser with diacritics removed: references in the wild often lack
accents (the shipped Spanish does), and the same rule applied to both models leaves the WER delta
unchanged. Languages written without spaces between words (Chinese, Japanese, Thai, ...) are scored by
character error rate: their units are characters, spaces dropped. The same rules are applied to every
reference and every hypothesis, for every model, so a WER difference is never a normalisation difference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

Normalizer = Callable[[str], str]

# Written without spaces between words: word error rate means nothing there, character error rate does.
CHARACTER_LANGUAGES = frozenset({"zh", "ja", "th", "yue", "lo", "my", "km", "bo"})


@lru_cache(maxsize=4)
def english_normalizer(spelling_map: Path) -> Normalizer:
    """Whisper's `EnglishTextNormalizer` with the `english.json` found at `spelling_map`."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer(json.loads(Path(spelling_map).read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def basic_normalizer() -> Normalizer:
    """Whisper's `BasicTextNormalizer` (lower case, punctuation and bracketed asides removed), diacritics removed."""
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    return BasicTextNormalizer(remove_diacritics=True)


def scored_by_characters(language: str) -> bool:
    return language in CHARACTER_LANGUAGES


@dataclass(frozen=True)
class Scoring:
    """The per-language text rules of a run. Called with a text it is the English normaliser, so code
    written for one English normaliser keeps working."""

    english: Normalizer
    other: Normalizer | None = None  # default: Whisper's basic normaliser, diacritics removed

    def __call__(self, text: str) -> str:
        return self.english(text)

    def normalizer(self, language: str) -> Normalizer:
        if language == "en":
            return self.english
        return self.other or basic_normalizer()

    def units(self, text: str, language: str) -> list[str]:
        """The normalised text's scoring units: words, or characters where the language has no spaces."""
        normalized = self.normalizer(language)(text)
        if scored_by_characters(language):
            return [ch for ch in normalized if not ch.isspace()]
        return normalized.split()

    @staticmethod
    def unit_name(language: str) -> str:
        return "characters" if scored_by_characters(language) else "words"


def as_scoring(normalize: Normalizer | Scoring) -> Scoring:
    """A `Scoring` from either a `Scoring` or one normaliser (used for English; other languages get the basic one)."""
    return normalize if isinstance(normalize, Scoring) else Scoring(normalize)
