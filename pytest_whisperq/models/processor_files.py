"""The files besides the weights that a Whisper checkpoint needs to transcribe: a tokenizer and the
feature extractor's settings. Read as plain JSON (no tokenizer library, nothing executed), so a
missing or broken file is a `CheckpointError` naming it, not a library's traceback at load time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_whisperq.errors import CheckpointError
from pytest_whisperq.models.tensors import parse_untrusted_json, read_untrusted_bytes

TOKENIZER_JSON = "tokenizer.json"
SLOW_TOKENIZER = ("vocab.json", "merges.txt")  # what transformers builds the tokenizer from without tokenizer.json
FEATURE_EXTRACTOR = "preprocessor_config.json"
GENERATION_CONFIG = "generation_config.json"
SAVE_HINT = "save them beside the weights (processor.save_pretrained(OUT) on the base's WhisperProcessor)"


def missing_processor_files(path: Path) -> list[str]:
    """What a backend needs and `path` lacks: a tokenizer (tokenizer.json, or vocab.json and
    merges.txt) and preprocessor_config.json."""
    missing = []
    if not (path / TOKENIZER_JSON).is_file() and not all((path / name).is_file() for name in SLOW_TOKENIZER):
        missing.append(f"a tokenizer ({TOKENIZER_JSON}, or {' and '.join(SLOW_TOKENIZER)})")
    if not (path / FEATURE_EXTRACTOR).is_file():
        missing.append(FEATURE_EXTRACTOR)
    return missing


def require_processor_files(path: Path, label: str) -> None:
    """Raise before any library tries to load an incomplete checkpoint."""
    missing = missing_processor_files(path)
    if missing:
        raise CheckpointError(f"{label}: cannot transcribe without {' and '.join(missing)} in {path}; {SAVE_HINT}")


def vocabulary(path: Path) -> dict[str, int]:
    """Token text -> id over the whole vocabulary, special tokens included (as the model sees it)."""
    if (path / TOKENIZER_JSON).is_file():
        where = path / TOKENIZER_JSON
        tokenizer = parse_untrusted_json(read_untrusted_bytes(where), str(where))
        model = tokenizer.get("model") if isinstance(tokenizer, dict) else None
        vocab = model.get("vocab") if isinstance(model, dict) else None
        added = tokenizer.get("added_tokens", []) if isinstance(tokenizer, dict) else None
        pairs = _added_pairs(added, where)
    elif (path / SLOW_TOKENIZER[0]).is_file():
        where = path / SLOW_TOKENIZER[0]
        vocab = parse_untrusted_json(read_untrusted_bytes(where), str(where))
        added_path = path / "added_tokens.json"
        added = parse_untrusted_json(read_untrusted_bytes(added_path), str(added_path)) if added_path.is_file() else {}
        pairs = list(added.items()) if isinstance(added, dict) else None
        if pairs is None:
            raise CheckpointError(f"{added_path}: expected an object of token -> id")
    else:
        raise CheckpointError(f"{path}: no tokenizer ({TOKENIZER_JSON} or {SLOW_TOKENIZER[0]})")
    if not isinstance(vocab, dict):
        raise CheckpointError(f"{where}: no vocabulary (expected an object of token -> id)")
    merged = {**vocab, **dict(pairs)}
    if not all(isinstance(token_id, int) and not isinstance(token_id, bool) for token_id in merged.values()):
        raise CheckpointError(f"{where}: token ids must be integers")
    return merged


def _added_pairs(added: Any, where: Path) -> list[tuple[str, int]]:
    if not isinstance(added, list) or not all(isinstance(t, dict) and "content" in t and "id" in t for t in added):
        raise CheckpointError(f"{where}: added_tokens is not a list of {{id, content}} objects")
    return [(str(t["content"]), t["id"]) for t in added]


LOADER_CONFIGS = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json",
                  "feature_extractor_config.json", GENERATION_CONFIG)


def custom_code(path: Path) -> list[str]:
    """What in the checkpoint asks a loader to run the checkpoint's own code: Python files, and `auto_map`
    entries (honoured only with trust_remote_code, which this plugin never sets). Nothing is executed."""
    found = [f"{file.name}: Python code shipped with the weights" for file in sorted(path.glob("*.py")) if file.is_file()]
    for name in LOADER_CONFIGS:
        file = path / name
        if not file.is_file():
            continue
        try:
            config = parse_untrusted_json(read_untrusted_bytes(file), str(file))
        except CheckpointError as error:  # a loader would fail on it too: a finding, not a crash of the check
            found.append(f"{name}: unreadable ({error})")
            continue
        auto_map = config.get("auto_map") if isinstance(config, dict) else None
        if auto_map:
            found.append(f"{name}: auto_map {json.dumps(auto_map)[:200]}")
    return found
