"""Where the shipped data and suite live: inside the installed wheel, or in a checkout.

The wheel carries `fixtures/` and `conformance/` as `pytest_whisperq/_fixtures` and
`pytest_whisperq/conformance`; an editable install or a checkout uses the top-level folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "pytest-whisperq's data is missing: none of "
        + ", ".join(str(c) for c in candidates)
        + " exists; reinstall the package"
    )


def fixtures_dir() -> Path:
    return _first_existing(_PACKAGE / "_fixtures", _PACKAGE.parent / "fixtures")


def conformance_dir() -> Path:
    return _first_existing(_PACKAGE / "conformance", _PACKAGE.parent / "conformance")


def default_eval_dir() -> Path:
    return fixtures_dir() / "speech-eval"


def multilingual_eval_dir() -> Path:
    return fixtures_dir() / "speech-multilingual"


def default_calib_dir() -> Path:
    return fixtures_dir() / "speech-calib"
