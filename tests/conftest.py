"""Shared fixtures for the plugin's own tests.

Real models are materialised into the user's pytest-whisperq cache (or $WHISPERQ_CACHE_DIR), so
the tests and `./dev gate` share one download and one conversion.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_whisperq.cache import Cache, default_cache_root
from pytest_whisperq.models.builtin import BUILTINS, materialize, whisper_assets


@pytest.fixture(scope="session")
def shared_cache() -> Cache:
    return Cache(default_cache_root())


@pytest.fixture(scope="session")
def whisper_base_dir(shared_cache: Cache) -> Path:
    return materialize(BUILTINS["whisper-base"], shared_cache)


@pytest.fixture(scope="session")
def whisper_tiny_en_dir(shared_cache: Cache) -> Path:
    return materialize(BUILTINS["whisper-tiny.en"], shared_cache)


@pytest.fixture(scope="session")
def openai_assets(shared_cache: Cache) -> Path:
    """OpenAI's tiktoken files and English normaliser from the openai-whisper sdist."""
    return whisper_assets(shared_cache)
