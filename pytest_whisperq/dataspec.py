"""How a user names speech data (stdlib only: parsed when options are read, before any import of
numpy or datasets)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from pytest_whisperq.errors import ConfigError
from pytest_whisperq.userpath import user_path

# The speech pools, each judged and reported on its own (docs/statistics.md): real speech; real speech of
# isolated words and two-word phrases, whose WER is dominated by homophones and spellings ("4" for "for");
# synthetic speech (text-to-speech, one voice); long-form real speech (over 30 s, a few files: each also
# checked for loops and dropped or repeated text at window boundaries).
SPEECH_KINDS = ("real", "words", "synthetic", "long")


def valid_language(code: str) -> bool:
    """An ISO 639-1 code (or a 3-letter one Whisper uses, such as yue or haw)."""
    return bool(re.fullmatch(r"[a-z]{2,3}", code))


@dataclass(frozen=True)
class DataSpec:
    """Where utterances come from: a local folder or a `datasets` data set (hub or path)."""

    kind: Literal["local", "hub"]
    location: str
    config: str | None = None
    split: str = "test"
    audio_column: str = "audio"
    text_column: str = "text"
    language: str | None = None  # every row's language (hub data sets): `language=CODE`
    language_column: str | None = None  # or a column naming each row's: `language_column=COLUMN`

    def __str__(self) -> str:
        if self.kind == "local":
            return self.location
        query = [f"split={self.split}", f"audio={self.audio_column}", f"text={self.text_column}"]
        if self.config:
            query.insert(0, f"config={self.config}")
        if self.language:
            query.append(f"language={self.language}")
        if self.language_column:
            query.append(f"language_column={self.language_column}")
        return f"hf:{self.location}?" + "&".join(query)


_HUB_KEYS = {"config": "config", "split": "split", "audio": "audio_column", "text": "text_column",
             "language": "language", "language_column": "language_column"}


def parse_data_spec(raw: str) -> DataSpec:
    """`hf:NAME[?config=C&split=S&audio=A&text=T&language=CODE|language_column=L]` or an existing folder
    with metadata.tsv."""
    text = raw.strip()
    if text.startswith("hf:"):
        name, _, query = text[3:].partition("?")
        if not name:
            raise ConfigError(f"{raw!r}: no data set name after 'hf:' (e.g. hf:MLCommons/peoples_speech?split=test)")
        fields: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
            if key not in _HUB_KEYS:
                raise ConfigError(f"{raw!r}: unknown key {key!r}; use {', '.join(_HUB_KEYS)}")
            if not value:
                raise ConfigError(f"{raw!r}: empty value for {key!r}")
            fields[_HUB_KEYS[key]] = value
        if "language" in fields:
            fields["language"] = fields["language"].lower()
            if not valid_language(fields["language"]):
                raise ConfigError(f"{raw!r}: language={fields['language']!r} is not an ISO 639-1 code such as en, es, zh "
                                  "(a column naming each row's language is language_column=COLUMN)")
        if "language" in fields and "language_column" in fields:
            raise ConfigError(f"{raw!r}: give language=CODE (every row) or language_column=COLUMN (each row's), not both")
        return DataSpec("hub", name, **fields)
    path = user_path(text)
    if not text or not path.is_dir():
        raise ConfigError(
            f"data folder {raw!r} does not exist; pass a folder with metadata.tsv or "
            "hf:NAME?config=C&split=S&audio=COLUMN&text=COLUMN[&language=CODE]"
        )
    return DataSpec("local", str(path.resolve()))
