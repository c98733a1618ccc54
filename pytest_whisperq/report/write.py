"""Write the reports: atomically (a temporary sibling renamed into place), so a killed run never
leaves half a report for CI to upload as if it were whole."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pytest_whisperq.report.markdown import render


def write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def as_json(run: dict[str, Any]) -> str:
    return json.dumps(run, indent=2, default=str) + "\n"


def write_reports(run: dict[str, Any], json_path: Path | None, markdown_path: Path | None) -> list[Path]:
    """The collected run as JSON and/or Markdown (chart links relative to the Markdown file)."""
    written = []
    if json_path is not None:
        write_atomically(json_path, as_json(run))
        written.append(json_path)
    if markdown_path is not None:
        write_atomically(markdown_path, render(run, markdown_path.parent))
        written.append(markdown_path)
    return written
