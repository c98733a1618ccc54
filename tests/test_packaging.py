"""The wheel a user installs from a git URL carries the suite, the speech and the entry point."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True)
    [path] = out.glob("pytest_whisperq-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_carries_suite_fixtures_and_entry_point(wheel):
    names = set(wheel.namelist())
    suite = {p.name for p in (ROOT / "conformance").glob("*.py")}
    assert {f"pytest_whisperq/conformance/{n}" for n in suite} <= names
    speech = {p.name for p in (ROOT / "fixtures" / "speech-eval").iterdir()}
    assert {f"pytest_whisperq/_fixtures/speech-eval/{n}" for n in speech} <= names
    assert "pytest_whisperq/_fixtures/speech-eval/NOTICE" in names
    multilingual = {str(p.relative_to(ROOT / "fixtures")) for p in (ROOT / "fixtures" / "speech-multilingual").rglob("*")
                    if p.is_file()}
    assert {f"pytest_whisperq/_fixtures/{n}" for n in multilingual} <= names  # --whisperq-multilingual's speech
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "whisperq = pytest_whisperq.plugin" in wheel.read(entry_points).decode()
    assert not any(n.startswith(("tests/", "conformance/", "fixtures/")) for n in names)
