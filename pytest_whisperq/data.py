"""Speech data: utterances with 16 kHz audio and reference text.

A data source is either a local folder with `metadata.tsv` (columns `file`, `text`, optional
`subset`, optional `speech` = real | words | synthetic, optional `language` = an ISO 639-1 code) and the
audio files it names (the shipped speech is such folders), or a Hugging Face `datasets` data set, named
as `hf:NAME?config=C&split=S&audio=COLUMN&text=COLUMN[&language=CODE|&language_column=COLUMN]`. A row
without a language is in the run's language (`--whisperq-language`). Audio may be of any length: what
is over Whisper's 30 s window is transcribed long-form by every backend. Audio is decoded
with soundfile, never torchaudio/torchcodec (they do not load beside the CPU torch build).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_whisperq.audio import MAX_SECONDS, TARGET_RATE, check_duration, load_audio, to_mono_16k
from pytest_whisperq.dataspec import SPEECH_KINDS, DataSpec, valid_language
from pytest_whisperq.errors import AudioError, DataError

METADATA_NAME = "metadata.tsv"


@dataclass(frozen=True, eq=False)
class Utterance:
    id: str
    subset: str
    text: str
    audio: np.ndarray = field(repr=False)
    speech: str = "real"  # its pool: real speech, isolated words (real, 1-2 words), synthetic (text-to-speech)
    language: str = "en"  # ISO 639-1: the language decoding is forced to and the text is scored in

    @property
    def synthetic(self) -> bool:
        return self.speech == "synthetic"

    @property
    def long_form(self) -> bool:
        """Longer than one Whisper window: transcribed long-form (chunked or sequential)."""
        return self.seconds > MAX_SECONDS

    @property
    def seconds(self) -> float:
        return len(self.audio) / TARGET_RATE


def load_local_dataset(
    directory: Path,
    subsets: Iterable[str] | None = None,
    limit: int | None = None,
    language: str = "en",
    max_seconds: float | None = None,
) -> list[Utterance]:
    """Load a `metadata.tsv` folder; `subsets` filters, `limit` keeps the first N rows, `language` is the
    language of rows without one, `max_seconds` refuses longer audio (calibration: one window)."""
    directory = Path(directory)
    metadata = directory / METADATA_NAME
    if not metadata.is_file():
        raise DataError(f"{directory}: no {METADATA_NAME}; a data folder needs one with columns file, text")
    wanted = set(subsets) if subsets is not None else None
    try:
        with open(metadata, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{metadata}: cannot be read ({type(error).__name__}: {error}); it must be a UTF-8, "
                        "tab-separated file with a header line naming the columns file and text") from None
    if rows and not {"file", "text"} <= set(rows[0]):
        raise DataError(f"{metadata}: columns {sorted(k for k in rows[0] if k)} lack 'file' and 'text'")
    utterances: list[Utterance] = []
    problems: list[str] = []
    for line, row in enumerate(rows, start=2):
        if wanted is not None and (row.get("subset") or "default") not in wanted:
            continue
        try:
            utterances.append(_local_row(directory, row, language, max_seconds))
        except (DataError, AudioError) as error:
            problems.append(f"{metadata}:{line}: {error}")
        if limit is not None and len(utterances) + len(problems) >= limit:  # bad rows count: the first N rows
            break
    if problems:
        raise unusable_rows(str(metadata), problems, len(utterances) + len(problems))
    if not utterances:
        which = f" in subsets {sorted(wanted)}" if wanted else ""
        raise DataError(f"{directory}: no utterances{which}; check the folder and the subset names")
    return utterances


def _local_row(directory: Path, row: dict[str, Any], default_language: str, max_seconds: float | None) -> Utterance:
    """One `metadata.tsv` row as an utterance, or the DataError/AudioError saying what is wrong with it."""
    if not (row.get("file") or "").strip():
        raise DataError("no audio file named (every row needs file and text, tab-separated)")
    relative = Path(os.path.normpath(row["file"]))
    if relative.is_absolute() or not relative.parts or relative.parts[0] in ("..", "."):
        raise DataError(f"audio file {row['file']!r} is not a file inside {directory}; "
                        "name it by its path relative to the folder")
    path = directory / relative
    try:
        exists = path.is_file()
    except OSError as error:  # a name too long for the file system, say
        raise DataError(f"audio file {row['file'][:80]!r}: {error.strerror or error}") from None
    if not exists:
        raise DataError(f"audio file {row['file']} does not exist")
    if not (row.get("text") or "").strip():
        raise DataError(f"no reference text for {row['file']}; every utterance needs one")
    speech = (row.get("speech") or "real").strip().lower()
    if speech not in SPEECH_KINDS:
        raise DataError(f"speech must be one of {', '.join(SPEECH_KINDS)}, got {row['speech']!r}")
    language = (row.get("language") or "").strip().lower() or default_language
    if not valid_language(language):
        raise DataError(f"language {row['language']!r} is not an ISO 639-1 code such as en, es, zh")
    audio = load_audio(path, row["file"])
    if max_seconds is not None:
        check_duration(audio, row["file"], max_seconds)
    return Utterance(Path(row["file"]).stem, row.get("subset") or "default", row["text"], audio, speech, language)


MAX_LISTED_PROBLEMS = 20


def unusable_rows(source: str, problems: Sequence[str], rows: int) -> DataError:
    """Every bad row of a data set in one error, so that one run shows all there is to fix."""
    if len(problems) == 1:
        return DataError(problems[0])
    listed = "\n".join(f"  - {problem}" for problem in problems[:MAX_LISTED_PROBLEMS])
    more = f"\n  - ... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
    return DataError(f"{source}: {len(problems)} of {rows} rows read cannot be used; fix or remove them (nothing was "
                     f"evaluated):\n{listed}{more}")


def dataset_fingerprint(utterances: Sequence[Utterance]) -> str:
    """A content hash of ids, texts and audio: a cache key for results on this data."""
    digest = hashlib.sha256()
    for utterance in utterances:
        digest.update(utterance.id.encode() + b"\0" + utterance.text.encode() + b"\0" + utterance.language.encode() + b"\0")
        digest.update(np.ascontiguousarray(utterance.audio).tobytes())
    return digest.hexdigest()


def load_data(spec: DataSpec, limit: int | None = None, subset: str | None = None, language: str = "en",
              max_seconds: float | None = None) -> list[Utterance]:
    """The utterances of a data source; rows without a language are in `language`."""
    if spec.kind == "local":
        utterances = load_local_dataset(Path(spec.location), limit=limit, language=language, max_seconds=max_seconds)
    else:
        utterances = load_hub_dataset(spec, limit=limit, subset=subset, language=language, max_seconds=max_seconds)
    duplicates = sorted(uid for uid, count in Counter(u.id for u in utterances).items() if count > 1)
    if duplicates:
        raise DataError(f"{spec}: utterance ids are not unique ({', '.join(duplicates[:5])}); "
                        "results are matched by id, so give every row its own file name or id")
    return utterances


SILENCE_SECONDS = 5.0


def _colored_noise(rng: np.random.Generator, frames: int, exponent: float) -> np.ndarray:
    """Noise with power falling as 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(frames))
    frequencies = np.fft.rfftfreq(frames)
    frequencies[0] = frequencies[1]
    signal = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=frames)
    return signal / np.sqrt(np.mean(signal ** 2))


def _at_dbfs(signal: np.ndarray, dbfs: float) -> np.ndarray:
    return (signal * 10 ** (dbfs / 20)).astype(np.float32)


def silence_clips(language: str = "en") -> list[Utterance]:
    """32 clips without speech, on which a sound model says nothing: digital silence of four lengths, white,
    pink and brown noise at several levels, mains hum with harmonics, and sparse clicks (fixed seeds).
    Enough clips for the paired rule to resolve a 10-point excess of talk over the base's."""
    rate = TARGET_RATE
    clips = [Utterance(f"digital-silence-{seconds:g}s", "silence", "", np.zeros(int(seconds * rate), np.float32))
             for seconds in (1.0, 5.0, 10.0, 20.0)]
    frames = int(SILENCE_SECONDS * rate)
    for name, exponent, levels in (("white", 0.0, (-70, -60, -50, -45, -40)), ("pink", 1.0, (-60, -50, -40)),
                                   ("brown", 2.0, (-55, -45))):
        for level in levels:
            for seed in (0, 1):
                rng = np.random.default_rng(1000 * seed + abs(level) + int(10 * exponent))
                clips.append(Utterance(f"noise-{name}{level}dBFS-{seed}", "silence", "",
                                       _at_dbfs(_colored_noise(rng, frames, exponent), level)))
    t = np.arange(frames) / rate
    for mains in (50, 60):
        hum = sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3))
        for level in (-50, -40):
            clips.append(Utterance(f"hum-{mains}Hz{level}dBFS", "silence", "",
                                   _at_dbfs(hum / np.sqrt(np.mean(hum ** 2)), level)))
    for seed in range(4):
        rng = np.random.default_rng(seed + 7)
        clicks = np.zeros(frames)
        clicks[rng.integers(0, frames, size=12)] = rng.choice([-1.0, 1.0], size=12) * 0.2
        clips.append(Utterance(f"clicks-{seed}", "silence", "",
                               (clicks + _at_dbfs(rng.standard_normal(frames), -70)).astype(np.float32)))
    return [replace(clip, language=language) for clip in clips]


def load_hub_dataset(spec: DataSpec, limit: int | None = None, subset: str | None = None, language: str = "en",
                     max_seconds: float | None = None) -> list[Utterance]:
    """A `datasets` data set, streamed (so a sample limit downloads only what it needs)."""
    import datasets

    try:
        stream = datasets.load_dataset(spec.location, spec.config, split=spec.split, streaming=True)
    except FileNotFoundError as error:
        raise DataError(f"{spec}: data set not found ({error}); check the name, or HF_HUB_OFFLINE") from None
    except ValueError as error:  # unknown split or config
        raise DataError(f"{spec}: {error}") from None
    except (ConnectionError, OSError) as error:
        raise DataError(f"{spec}: could not reach the data set ({error})") from None
    columns = stream.column_names or list(stream.features or {})
    wanted = [c for c in (spec.audio_column, spec.text_column, spec.language_column) if c]
    missing = [c for c in wanted if columns and c not in columns]
    if missing:
        raise DataError(f"{spec}: no column {missing[0]!r}; columns are {', '.join(columns)} "
                        "(set audio=... / text=... / language_column=...)")
    if isinstance((stream.features or {}).get(spec.audio_column), datasets.Audio):
        stream = stream.cast_column(spec.audio_column, datasets.Audio(decode=False))
    label = subset or spec.location.rsplit("/", 1)[-1]
    utterances: list[Utterance] = []
    problems: list[str] = []
    for index, row in enumerate(stream):
        if limit is not None and index >= limit:  # bad rows count too: a limit streams no more than N rows
            break
        absent = [c for c in wanted if c not in row]
        if absent:  # the columns are the data set's: every row would say the same
            raise DataError(f"{spec} row {index}: no column {absent[0]!r}; columns are {', '.join(row)} "
                            "(set audio=... / text=... / language_column=...)")
        uid = next((str(row[key]) for key in ("id", "audio_id") if row.get(key) not in (None, "")), f"{label}-{index:06d}")
        try:
            utterances.append(_hub_row(spec, row, index, uid, label, spec.language or language, max_seconds))
        except (DataError, AudioError) as error:
            problems.append(str(error))
    if problems:
        raise unusable_rows(str(spec), problems, len(utterances) + len(problems))
    if not utterances:
        raise DataError(f"{spec}: no rows")
    return utterances


def _hub_row(spec: DataSpec, row: dict[str, Any], index: int, uid: str, label: str, language: str,
             max_seconds: float | None) -> Utterance:
    text = row[spec.text_column]
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{spec} row {index} ({uid}): the {spec.text_column!r} column holds {text!r}, not a reference text")
    if spec.language_column:
        found = str(row[spec.language_column] or "").strip().lower()
        if not valid_language(found):
            raise DataError(f"{spec} row {index} ({uid}): the {spec.language_column!r} column holds {found!r}, "
                            "not an ISO 639-1 code such as en, es, zh")
        language = found
    audio = _decode_row_audio(row[spec.audio_column], f"{spec} row {index}")
    if max_seconds is not None:
        check_duration(audio, f"{spec} row {index} ({uid})", max_seconds)
    return Utterance(uid, label, text, audio, "real", language)


def _decode_row_audio(value: Any, source: str) -> np.ndarray:
    if isinstance(value, dict) and value.get("array") is not None:
        return to_mono_16k(np.asarray(value["array"]), int(value["sampling_rate"]), source)
    if isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        handle = io.BytesIO(value["bytes"]) if value.get("bytes") else Path(value["path"])
        return load_audio(handle, source)
    raise DataError(f"{source}: the audio column holds {type(value).__name__}, not audio")
