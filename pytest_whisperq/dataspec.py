"""How a user names speech data (stdlib only: parsed when options are read, before any import of
numpy or datasets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

from pytest_whisperq.errors import ConfigError
from pytest_whisperq.userpath import user_path

# The speech pools, each judged and reported on its own (docs/statistics.md): real speech; real speech of
# isolated words and two-word phrases, whose WER is dominated by homophones and spellings ("4" for "for");
# synthetic speech (text-to-speech, one voice).
SPEECH_KINDS = ("real", "words", "synthetic")


@dataclass(frozen=True)
class DataSpec:
    """Where utterances come from: a local folder or a `datasets` data set (hub or path)."""

    kind: Literal["local", "hub"]
    location: str
    config: str | None = None
    split: str = "test"
    audio_column: str = "audio"
    text_column: str = "text"

    def __str__(self) -> str:
        if self.kind == "local":
            return self.location
        query = [f"split={self.split}", f"audio={self.audio_column}", f"text={self.text_column}"]
        if self.config:
            query.insert(0, f"config={self.config}")
        return f"hf:{self.location}?" + "&".join(query)


_HUB_KEYS = {"config": "config", "split": "split", "audio": "audio_column", "text": "text_column"}


def parse_data_spec(raw: str) -> DataSpec:
    """`hf:NAME[?config=C&split=S&audio=A&text=T]` or an existing folder with metadata.tsv."""
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
        return DataSpec("hub", name, **fields)
    path = user_path(text)
    if not text or not path.is_dir():
        raise ConfigError(
            f"data folder {raw!r} does not exist; pass a folder with metadata.tsv or "
            "hf:NAME?config=C&split=S&audio=COLUMN&text=COLUMN"
        )
    return DataSpec("local", str(path.resolve()))
