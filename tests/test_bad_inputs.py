"""Bad input through the shipped suite, as a user meets it: each case ends in one clear error that
says what is wrong, never a traceback and never a pass. Real tiny.en, edited copies of it, and real
speech made unusable in the ways recordings are."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pytest_whisperq.audio import TARGET_RATE

from tests_support import linked_copy

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow


def variant(source: Path, out: Path, edit: Callable[[Path], None]) -> Path:
    """A copy of `source` (files linked, not copied) changed by `edit`, which replaces what it touches."""
    edit(linked_copy(source, out))
    return out


def replace_file(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def lie_about_a_size(directory: Path) -> None:
    """The first tensor's shape doubled in the header; the bytes stay as they are."""
    weights = directory / "model.safetensors"
    raw = weights.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    name = next(n for n in header if n != "__metadata__")
    header[name]["shape"][0] *= 2
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    replace_file(weights, struct.pack("<Q", len(encoded)) + encoded + raw[8 + length:])


def truncate(directory: Path) -> None:
    weights = directory / "model.safetensors"
    replace_file(weights, weights.read_bytes()[: weights.stat().st_size // 2])


def only_a_pickle(directory: Path) -> None:
    """Refused before it is opened, so its content does not matter. (No torch here: pytester would
    unload it after the test, and torch cannot be imported twice in one process.)"""
    (directory / "model.safetensors").unlink()
    (directory / "pytorch_model.bin").write_bytes(b"\x80\x04 a pickle that could run code")


def swap_two_tokens(directory: Path) -> None:
    """A tokenizer that maps ' the' and ' a' to each other's ids: same size, other vocabulary."""
    tokenizer = json.loads((directory / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    vocab["Ġthe"], vocab["Ġa"] = vocab["Ġa"], vocab["Ġthe"]
    (directory / "tokenizer.json").unlink()
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer))


def no_tokenizer(directory: Path) -> None:
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        (directory / name).unlink(missing_ok=True)


MODEL_CASES = {
    "no weights": (lambda d: (d / "model.safetensors").unlink(), "wer_under_ceiling",
                   ["*CheckpointError: *: no weights ([*].safetensors) in *"]),
    "a header that lies about a size": (lie_about_a_size, "wer_under_ceiling",
                                        ["*CheckpointError: *model.safetensors: tensor * hold * bytes, but F16 * needs *"]),
    "truncated weights": (truncate, "wer_under_ceiling",
                          ["*CheckpointError: *model.safetensors: tensor * the file is truncated (download or save it again)"]),
    "pickled weights": (only_a_pickle, "wer_under_ceiling",
                        ["*CheckpointError: *only pickled weights (pytorch_model.bin) *pickles can run code when loaded*"
                         "--whisperq-allow-pickle*"]),
    "another vocabulary": (swap_two_tokens, "vocabulary or wer_delta",
                           ["*FAIL same_vocabulary_as_base: observed 2 tokens differ*",
                            "*CheckpointError: the model under test * cannot be compared with the base *: same vocabulary "
                            "as base: 2 differences ('Ġa': model id 262, base id 257, 'Ġthe': model id 257, base id 262). Pass the base *"]),
    "no tokenizer": (no_tokenizer, "complete or wer_under_ceiling",
                     ["*FAIL checkpoint_complete: observed 1 files missing*",
                      "*CheckpointError: *: cannot transcribe without a tokenizer (tokenizer.json, or vocab.json and "
                      "merges.txt) in *processor.save_pretrained*"]),
}


def assert_failed_cleanly(result: pytest.RunResult, lines: list[str]) -> None:
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 0, result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines_random(lines)
    assert "Traceback" not in result.stdout.str() and "During handling" not in result.stdout.str()


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_a_bad_checkpoint_fails_with_one_clear_error(run_suite, whisper_tiny_en_dir, tmp_path, case) -> None:
    edit, selection, lines = MODEL_CASES[case]
    model = variant(whisper_tiny_en_dir, tmp_path / "model", edit)
    result = run_suite(f"--whisperq-model={model}", "--whisperq-base=whisper-tiny.en", "-k", selection)
    assert_failed_cleanly(result, lines)


def test_a_missing_checkpoint_is_a_usage_error(run_suite, tmp_path) -> None:
    result = run_suite(f"--whisperq-model={tmp_path / 'nowhere'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*model directory {tmp_path / 'nowhere'} does not exist*"])


def test_a_base_of_another_architecture_is_refused_before_any_comparison(run_suite, tiny_en_w4a16) -> None:
    result = run_suite(f"--whisperq-model={tiny_en_w4a16}", "--whisperq-base=whisper-base", "-k", "wer_delta or throughput_floor")
    assert_failed_cleanly(result, [
        "*CheckpointError: the model under test * cannot be compared with the base *: same architecture as base: "
        "* differences (d_model: model 384, base 512, *Pass the base it was quantized from with --whisperq-base",
    ])


# --- evaluation data ------------------------------------------------------------------------------

def tone(seconds: float, rate: int = TARGET_RATE, level: float = 0.1) -> np.ndarray:
    return (level * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def real_speech() -> tuple[np.ndarray, str]:
    from pytest_whisperq.data import load_local_dataset
    from pytest_whisperq.resources import default_eval_dir

    utterance = load_local_dataset(default_eval_dir(), subsets=["read_clean"], limit=1)[0]
    return utterance.audio, utterance.text


def data_folder(directory: Path, rows: list[tuple[str, str]], audio: dict[str, tuple[np.ndarray, int]]) -> Path:
    import soundfile

    directory.mkdir()
    for name, (samples, rate) in audio.items():
        soundfile.write(str(directory / name), samples, rate)
    lines = ["file\ttext"] + [f"{file}\t{text}" for file, text in rows]
    (directory / "metadata.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def clipped_speech() -> tuple[np.ndarray, int]:
    speech, _ = real_speech()
    return np.clip(speech * 30, -1, 1), TARGET_RATE  # recorded 30 times (about 30 dB) too loud


DATA_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty": (lambda d: data_folder(d, [], {}), "*DataError: *: no utterances; check the folder and the subset names"),
    "not UTF-8": (lambda d: data_folder(d, [], {}) and (d / "metadata.tsv").write_bytes(
        "file\ttext\na.wav\tcaf\xe9\n".encode("latin-1")) and d,
                  "*DataError: *metadata.tsv: cannot be read (UnicodeDecodeError: *it must be a UTF-8, tab-separated file*"),
    "silent": (lambda d: data_folder(d, [("a.wav", "hello")], {"a.wav": (np.zeros(32000, np.float32), TARGET_RATE)}),
               "*DataError: *metadata.tsv:2: a.wav: silent: RMS -inf dBFS (limit -60 dBFS) yet it has a reference text*"),
    "clipped": (lambda d: data_folder(d, [("a.wav", "hello")], {"a.wav": clipped_speech()}),
                "*DataError: *metadata.tsv:2: a.wav: clipped: *% of samples sit flat at full scale (limit 1%)*"),
    "6 kHz": (lambda d: data_folder(d, [("a.wav", "hello")], {"a.wav": (tone(2, 6000), 6000)}),
              "*DataError: *metadata.tsv:2: a.wav: sample rate 6000 Hz is below 8000 Hz (telephone speech)*"),
    "outside the folder": (lambda d: data_folder(d, [("../a.wav", "hello")], {}),
                           "*DataError: *metadata.tsv:2: audio file '../a.wav' is not a file inside *"),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_evaluation_data_fails_with_one_clear_error(run_suite, tmp_path, case) -> None:
    build, line = DATA_CASES[case]
    folder = build(tmp_path / "data")
    result = run_suite("--whisperq-model=whisper-tiny.en", "--whisperq-base=whisper-tiny.en",
                       f"--whisperq-data={folder}", "-k", "wer_under_ceiling")
    assert_failed_cleanly(result, [line])


def test_multichannel_audio_at_another_rate_is_heard_as_the_original(whisper_tiny_en_dir, tmp_path) -> None:
    """Not bad input: stereo 44.1 kHz is mixed down and resampled, and the model hears the same speech."""
    from scipy.signal import resample_poly

    from pytest_whisperq.backends.transformers_backend import TransformersBackend
    from pytest_whisperq.data import load_local_dataset
    from pytest_whisperq.models.resolve import ResolvedModel
    from pytest_whisperq.models.spec import parse_model_spec

    speech, text = real_speech()
    at_44k = resample_poly(speech, 441, 160).astype(np.float32)
    stereo = np.stack([at_44k, 0.5 * at_44k], axis=1)
    folder = data_folder(tmp_path / "data", [("mono.wav", text), ("stereo.wav", text)],
                         {"mono.wav": (speech, TARGET_RATE), "stereo.wav": (stereo, 44_100)})
    mono, mixed = load_local_dataset(folder)
    assert abs(len(mixed.audio) - len(mono.audio)) <= 1
    backend = TransformersBackend(ResolvedModel(parse_model_spec("whisper-tiny.en"), whisper_tiny_en_dir), device="cpu")
    heard = [h.text for h in backend.transcribe([mono, mixed])]
    assert heard[0] == heard[1] and heard[0]


def test_a_gpu_check_without_a_gpu_fails_with_the_reason(run_suite, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU, on any machine
    result = run_suite("--whisperq-model=whisper-tiny.en", "--whisperq-base=whisper-tiny.en", "--whisperq-device=cuda",
                       "-k", "wer_under_ceiling")
    assert_failed_cleanly(result, ["*BackendError: --whisperq-device=cuda but torch sees no CUDA device; "
                                   "use --whisperq-device=cpu or auto"])
