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


@pytest.fixture(scope="session")
def tiny_en_w4a16(whisper_tiny_en_dir: Path, shared_cache: Cache) -> Path:
    """whisper-tiny.en quantized here to W4A16 (GPTQ, 8 calibration utterances; ~30 s once, then cached).
    Fewer samples leave outlier layers (2 samples: encoder.layers.3.fc2 at 3.6x the median error)."""
    from pytest_whisperq.data import load_local_dataset
    from pytest_whisperq.quantize import quantize_w4a16
    from pytest_whisperq.resources import default_calib_dir, default_eval_dir

    return quantize_w4a16(whisper_tiny_en_dir, "whisper-tiny.en", load_local_dataset(default_calib_dir())[:8],
                          shared_cache, evaluation=load_local_dataset(default_eval_dir()))


@pytest.fixture(scope="session")
def tiny_en_lm_head_mistake(whisper_tiny_en_dir: Path, shared_cache: Cache) -> Path:
    """The same, made with ignore=["lm_head"] as other models' recipes say: Whisper's head gets quantized."""
    from dataclasses import replace

    from pytest_whisperq.data import load_local_dataset
    from pytest_whisperq.quantize import Recipe, quantize_w4a16
    from pytest_whisperq.resources import default_calib_dir

    return quantize_w4a16(whisper_tiny_en_dir, "whisper-tiny.en", load_local_dataset(default_calib_dir())[:8],
                          shared_cache, recipe=replace(Recipe(), ignore=("lm_head",)))
