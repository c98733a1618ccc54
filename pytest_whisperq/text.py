"""Whisper's English text normaliser, with OpenAI's own spelling map.

The same normaliser is applied to every reference and every hypothesis, for every model,
so a WER difference is never a normalisation difference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

Normalizer = Callable[[str], str]


@lru_cache(maxsize=4)
def english_normalizer(spelling_map: Path) -> Normalizer:
    """Whisper's `EnglishTextNormalizer` with the `english.json` found at `spelling_map`."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer(json.loads(Path(spelling_map).read_text(encoding="utf-8")))
