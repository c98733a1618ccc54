"""Evaluation data: utterances with 16 kHz audio and reference text.

A local data set is a folder with `metadata.tsv` (columns `file`, `text`, optional `subset`)
and the audio files it names. The shipped evaluation speech is one such folder.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pytest_whisperq.audio import TARGET_RATE, check_duration, load_audio
from pytest_whisperq.errors import AudioError, DataError

METADATA_NAME = "metadata.tsv"


@dataclass(frozen=True, eq=False)
class Utterance:
    id: str
    subset: str
    text: str
    audio: np.ndarray = field(repr=False)

    @property
    def seconds(self) -> float:
        return len(self.audio) / TARGET_RATE


def load_local_dataset(
    directory: Path,
    subsets: Iterable[str] | None = None,
    limit: int | None = None,
) -> list[Utterance]:
    """Load a `metadata.tsv` folder; `subsets` filters, `limit` keeps the first N rows."""
    directory = Path(directory)
    metadata = directory / METADATA_NAME
    if not metadata.is_file():
        raise DataError(f"{directory}: no {METADATA_NAME}; a data folder needs one with columns file, text")
    wanted = set(subsets) if subsets is not None else None
    with open(metadata, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if rows and not {"file", "text"} <= set(rows[0]):
        raise DataError(f"{metadata}: columns {sorted(rows[0])} lack 'file' and 'text'")
    utterances = []
    for line, row in enumerate(rows, start=2):
        subset = row.get("subset") or "default"
        if wanted is not None and subset not in wanted:
            continue
        path = directory / row["file"]
        if not path.is_file():
            raise DataError(f"{metadata}:{line}: audio file {row['file']} does not exist")
        audio = load_audio(path)
        try:
            check_duration(audio, str(path))
        except AudioError as error:
            raise DataError(str(error)) from None
        utterances.append(Utterance(Path(row["file"]).stem, subset, row["text"], audio))
        if limit is not None and len(utterances) >= limit:
            break
    if not utterances:
        which = f" in subsets {sorted(wanted)}" if wanted else ""
        raise DataError(f"{directory}: no utterances{which}; check the folder and the subset names")
    return utterances


def dataset_fingerprint(utterances: Sequence[Utterance]) -> str:
    """A content hash of ids, texts and audio: a cache key for results on this data."""
    digest = hashlib.sha256()
    for utterance in utterances:
        digest.update(utterance.id.encode() + b"\0" + utterance.text.encode() + b"\0")
        digest.update(np.ascontiguousarray(utterance.audio).tobytes())
    return digest.hexdigest()
