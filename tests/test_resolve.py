"""Model resolution: local directories, hub ids through the real hub cache (offline), built-ins."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_whisperq.cache import Cache
from pytest_whisperq.errors import CheckpointError
from pytest_whisperq.models.resolve import resolve, validate_checkpoint_dir
from pytest_whisperq.models.spec import parse_model_spec

from tests_support import linked_copy

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_cache(hf_home: Path, repo: str, source: Path) -> Path:
    """The layout huggingface_hub writes: refs/main -> snapshots/<commit>/files."""
    root = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / COMMIT
    shutil.copytree(source, snapshot, ignore=shutil.ignore_patterns(".whisperq-entry.json"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    return snapshot


def run_resolve(spec: str, hf_home: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    # huggingface_hub reads HF_HOME / HF_HUB_OFFLINE at import: use a fresh interpreter.
    code = textwrap.dedent(f"""
        from pathlib import Path
        from pytest_whisperq.cache import Cache
        from pytest_whisperq.errors import WhisperqError
        from pytest_whisperq.models.resolve import resolve
        from pytest_whisperq.models.spec import parse_model_spec
        try:
            resolved = resolve(parse_model_spec({spec!r}), Cache(Path({str(tmp_path / 'cache')!r})))
            print("PATH", resolved.path, resolved.revision)
        except WhisperqError as error:
            print("ERROR", error)
    """)
    env = dict(os.environ, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)


@pytest.mark.slow
def test_hub_id_resolves_through_the_offline_hub_cache(whisper_tiny_en_dir, tmp_path):
    snapshot = fake_hub_cache(tmp_path / "hf", "openai/whisper-tiny.en", whisper_tiny_en_dir)
    for spec in ("openai/whisper-tiny.en", f"openai/whisper-tiny.en@{COMMIT}"):
        out = run_resolve(spec, tmp_path / "hf", tmp_path).stdout
        assert out.startswith(f"PATH {snapshot} {COMMIT}"), out


@pytest.mark.parametrize("spec", ["openai/not-downloaded", "openai/whisper-tiny.en@v9"])
def test_hub_miss_offline_says_what_to_do(tmp_path, spec):
    (tmp_path / "hf").mkdir()
    out = run_resolve(spec, tmp_path / "hf", tmp_path).stdout
    assert out.startswith("ERROR") and "not in the local Hugging Face cache" in out and "HF_HUB_OFFLINE" in out


def _checkpoint(directory: Path, model_type: str = "whisper", weights: tuple[str, ...] = ("model.safetensors",)) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"model_type": model_type}))
    for name in weights:  # an empty but well-formed safetensors file; pickles are never opened here
        (directory / name).write_bytes(struct.pack("<Q", 2) + b"{}" if name.endswith(".safetensors") else b"x")
    return directory


def test_local_checkpoint_validation(tmp_path):
    validate_checkpoint_dir(_checkpoint(tmp_path / "good"), False, "good")
    with pytest.raises(CheckpointError, match="no config.json"):
        validate_checkpoint_dir(tmp_path, False, "empty")
    with pytest.raises(CheckpointError, match="model_type 'llama'"):
        validate_checkpoint_dir(_checkpoint(tmp_path / "llama", "llama"), False, "llama")
    with pytest.raises(CheckpointError, match=r"no weights \(\*.safetensors\)"):
        validate_checkpoint_dir(_checkpoint(tmp_path / "none", weights=()), False, "none")
    truncated = _checkpoint(tmp_path / "truncated")
    (truncated / "model.safetensors").write_bytes(struct.pack("<Q", 2000) + b"{}")
    with pytest.raises(CheckpointError, match="header claims 2000 bytes but the file has 10"):
        validate_checkpoint_dir(truncated, False, "truncated")
    (tmp_path / "bad-json").mkdir()
    (tmp_path / "bad-json" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        validate_checkpoint_dir(tmp_path / "bad-json", False, "bad")


def test_pickled_weights_are_refused_unless_allowed(tmp_path):
    import torch

    directory = _checkpoint(tmp_path / "pickled", weights=())
    torch.save({"proj_out.weight": torch.zeros(2, 2)}, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickled weights .*--whisperq-allow-pickle"):
        validate_checkpoint_dir(directory, False, "pickled")
    validate_checkpoint_dir(directory, True, "pickled")


def test_an_allowed_pickle_is_read_once_for_resolution_and_the_format_checks(tmp_path, monkeypatch):
    import torch

    from pytest_whisperq.session import WhisperqSession
    from pytest_whisperq.settings import build_settings

    directory = _checkpoint(tmp_path / "pickled", weights=())
    torch.save({"proj_out.weight": torch.ones(2, 2)}, directory / "pytorch_model.bin")
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: loads.append(args[0]) or real_load(*args, **kwargs))
    session = WhisperqSession(build_settings({"cache_dir": tmp_path / "cache", "model": parse_model_spec(str(directory)),
                                              "allow_pickle": True}, {}))
    assert session.resolved("model").checkpoint is not None
    assert session.tensors("model").read("proj_out.weight").tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert loads == [directory.resolve() / "pytorch_model.bin"]


def test_local_spec_resolves_to_its_directory(tmp_path):
    directory = _checkpoint(tmp_path / "ckpt")
    resolved = resolve(parse_model_spec(str(directory)), Cache(tmp_path / "cache"))
    assert resolved.path == directory.resolve() and resolved.revision is None


def test_quantize_is_not_a_model_to_fetch(tmp_path):
    from pytest_whisperq.cache import Cache
    from pytest_whisperq.errors import ModelResolutionError
    from pytest_whisperq.models.resolve import resolve
    from pytest_whisperq.models.spec import parse_model_spec

    with pytest.raises(ModelResolutionError, match="run python -m pytest_whisperq quantize BASE OUT"):
        resolve(parse_model_spec("quantize"), Cache(tmp_path))


def test_other_precisions_of_the_same_weights_are_left_aside(tmp_path, whisper_tiny_en_dir):
    """openai/whisper-large-v3's layout: model.safetensors, and the same tensors again in fp32 shards."""
    from pytest_whisperq.models.resolve import HUB_VARIANTS
    from pytest_whisperq.models.tensors import CheckpointTensors

    directory = linked_copy(whisper_tiny_en_dir, tmp_path / "large-v3-like")
    (directory / "model.fp32-00001-of-00001.safetensors").symlink_to(whisper_tiny_en_dir / "model.safetensors")
    (directory / "model.safetensors.index.fp32.json").write_text('{"weight_map": {}}')
    validate_checkpoint_dir(directory, False, "large-v3-like")
    assert {info.file.name for info in CheckpointTensors.open(directory).tensors.values()} == {"model.safetensors"}
    from fnmatch import fnmatch

    fetched = ["model.safetensors", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "config.json"]
    skipped = ["model.fp32-00001-of-00002.safetensors", "model.safetensors.index.fp32.json"]
    assert not any(fnmatch(name, pattern) for name in fetched for pattern in HUB_VARIANTS)
    assert all(any(fnmatch(name, pattern) for pattern in HUB_VARIANTS) for name in skipped)
