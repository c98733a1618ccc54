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


@pytest.fixture(scope="session")
def whisper_base_w4a16(whisper_base_dir: Path, shared_cache: Cache) -> Path:
    """whisper-base quantized here to W4A16 as `./dev gate` does: GPTQ on the first 32 shipped calibration
    utterances (about 2 minutes once, then cached; the same cache entry as the gate's). With only 8
    utterances the result fails the accuracy gate (+1.66 points on real speech, measured)."""
    from pytest_whisperq.data import load_local_dataset
    from pytest_whisperq.quantize import quantize_w4a16
    from pytest_whisperq.resources import default_calib_dir, default_eval_dir

    return quantize_w4a16(whisper_base_dir, "whisper-base", load_local_dataset(default_calib_dir())[:32],
                          shared_cache, evaluation=load_local_dataset(default_eval_dir()))


@pytest.fixture(scope="session")
def parquet_dataset(tmp_path_factory):
    """A `datasets` data set laid out as on the hub: data/test-*.parquet with an Audio column
    (the shipped read_clean utterances, text in a column named `sentence`)."""
    import io

    import datasets
    import soundfile

    from pytest_whisperq.audio import TARGET_RATE
    from pytest_whisperq.data import load_local_dataset
    from pytest_whisperq.resources import default_eval_dir

    root = tmp_path_factory.mktemp("hub-like")
    (root / "data").mkdir()
    rows = []
    for u in load_local_dataset(default_eval_dir(), subsets=["read_clean"]):
        buffer = io.BytesIO()
        soundfile.write(buffer, u.audio, TARGET_RATE, format="WAV")
        rows.append({"audio": {"bytes": buffer.getvalue(), "path": f"{u.id}.wav"}, "sentence": u.text, "id": u.id})
    dataset = datasets.Dataset.from_list(rows).cast_column("audio", datasets.Audio())
    dataset.to_parquet(str(root / "data" / "test-00000-of-00001.parquet"))
    return root


@pytest.fixture
def run_suite(pytester: pytest.Pytester, whisper_tiny_en_dir: Path):
    """`run_suite(*args)`: the shipped conformance suite run as a user runs it, in a subprocess (the
    module using it declares `pytest_plugins = ["pytester"]`)."""
    from pytest_whisperq.resources import conformance_dir

    # pytester moves HOME; point at the cache the real models were built in, to reuse them.
    cache_root = whisper_tiny_en_dir.parents[1]

    def run(*args: str) -> pytest.RunResult:
        # A short throughput measurement: on transformers the speed ratio is not applicable (dense weights on
        # both sides), so one round of 8 requests each gives the card's figures.
        return pytester.runpytest_subprocess(
            str(conformance_dir()), f"--whisperq-cache-dir={cache_root}", "-p", "no:cacheprovider",
            "--whisperq-requests=8", "--whisperq-warmup=1", *args
        )

    return run
