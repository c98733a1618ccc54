"""Write the reports: atomically (a temporary sibling renamed into place), so a killed run never
leaves half a report for CI to upload as if it were whole."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_whisperq.report.collect import collect
from pytest_whisperq.report.markdown import render

if TYPE_CHECKING:
    from pytest_whisperq.session import WhisperqSession


def write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_reports(session: WhisperqSession, exit_status: int, json_path: Path | None,
                  markdown_path: Path | None, charts_dir: Path | None = None) -> list[Path]:
    written: list[Path] = []
    charts: list[str] = []
    if charts_dir is not None:
        from pytest_whisperq.report.charts import draw

        drawn = draw(collect(session, exit_status), charts_dir)
        written += drawn
        charts = [str(path) for path in drawn]
    run = collect(session, exit_status, charts)
    if json_path is not None:
        write_atomically(json_path, json.dumps(run, indent=2, default=str) + "\n")
        written.append(json_path)
    if markdown_path is not None:
        write_atomically(markdown_path, render(run, markdown_path.parent))
        written.append(markdown_path)
    return written
