"""Unit tests of option parsing (`settings.py`) and model-spec classification (`models/spec.py`).

Pure Python: nothing here imports torch or touches the network or the user's cache.
"""

from __future__ import annotations

import re

import argparse
from pathlib import Path
from typing import Any

import pytest

from pytest_whisperq.dataspec import DataSpec
from pytest_whisperq.errors import ConfigError
from pytest_whisperq.models.spec import ModelSpec, parse_model_spec
from pytest_whisperq.settings import (
    BACKENDS,
    DEFAULT_BASE,
    DEVICES,
    DTYPES,
    OPTIONS,
    Settings,
    argparse_type,
    build_settings,
)

BY_NAME = {option.name: option for option in OPTIONS}


def parse(name: str, value: str) -> Any:
    return BY_NAME[name].parse(value)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test from an empty directory with a private cache root, so relative model
    names never collide with files in the repository and nothing touches the user's cache."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("WHISPERQ_CACHE_DIR", str(tmp_path / "env-cache"))


# --- the option table -------------------------------------------------------------------------

def test_option_table_names_flags_and_ini_keys() -> None:
    assert [o.name for o in OPTIONS] == [
        "model", "base", "backend", "vllm_python", "server_url", "base_server_url", "served_model_name",
        "concurrency", "startup_timeout", "request_timeout", "agreement_backend", "max_backend_disagreement",
        "vllm_memory_fraction",
        "device", "dtype", "cache_dir", "data", "multilingual", "data_limit",
        "calib_data", "calib_samples", "batch_size", "max_wer", "max_wer_other", "max_wer_delta", "confidence",
        "accept_inconclusive", "gated_pools", "language", "language_id", "max_sample_wer", "max_base_disagreement", "max_repeats",
        "max_silence_words", "max_sanity_excess", "max_silence_excess", "requests", "rounds", "warmup", "min_rps", "min_rtfx", "min_tokens_per_second",
        "min_throughput_ratio", "scheme", "group_size", "actorder", "max_layer_error", "scale_excess", "median_error_factor", "json", "markdown", "charts",
        "baseline_storage", "baseline_save", "baseline_compare", "baseline_fail",
        "allow_pickle", "allow_skip",
    ]
    assert BY_NAME["cache_dir"].flag == "--whisperq-cache-dir"
    assert BY_NAME["cache_dir"].ini == "whisperq_cache_dir"
    assert BY_NAME["max_wer"].flag == "--whisperq-max-wer"
    assert BY_NAME["allow_pickle"].is_flag
    assert [o.name for o in OPTIONS if o.is_flag] == ["multilingual", "accept_inconclusive", "language_id", "baseline_save",
                                                      "allow_pickle", "allow_skip"]


def test_every_default_parses() -> None:
    for option in OPTIONS:
        if option.default is not None:
            option.parse(option.default)  # must not raise


# --- choices ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "allowed"), [("device", DEVICES), ("dtype", DTYPES), ("backend", BACKENDS)])
def test_choices_accept_every_allowed_value(name: str, allowed: tuple[str, ...]) -> None:
    for value in allowed:
        assert parse(name, value) == value


@pytest.mark.parametrize(
    ("name", "bad"),
    [("device", "tpu"), ("device", "CUDA"), ("device", ""), ("dtype", "int8"), ("dtype", "fp16"),
     ("backend", "ctranslate2"), ("backend", "onnx")],
)
def test_choices_reject_other_values_naming_flag_value_and_alternatives(name: str, bad: str) -> None:
    option = BY_NAME[name]
    with pytest.raises(ConfigError) as info:
        option.parse(bad)
    message = str(info.value)
    assert option.flag in message
    assert repr(bad) in message
    # the message lists what would have been accepted
    allowed = {"device": DEVICES, "dtype": DTYPES, "backend": BACKENDS}[name]
    for value in allowed:
        assert value in message


def test_known_choice_sets() -> None:
    assert set(DEVICES) == {"auto", "cpu", "cuda"}
    assert set(DTYPES) == {"auto", "float32", "float16", "bfloat16"}
    assert "transformers" in BACKENDS


# --- batch size ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("8", 8), ("64", 64), (" 16 ", 16)])
def test_batch_size_accepts_positive_integers(raw: str, expected: int) -> None:
    value = parse("batch_size", raw)
    assert value == expected
    assert isinstance(value, int)


@pytest.mark.parametrize("raw", ["eight", "1.5", "", "8x", "1e3"])
def test_batch_size_rejects_non_integers(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"--whisperq-batch-size: .* is not an integer"):
        parse("batch_size", raw)


@pytest.mark.parametrize("raw", ["0", "-1", "-64"])
def test_batch_size_rejects_zero_and_negatives(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse("batch_size", raw)
    message = str(info.value)
    assert "--whisperq-batch-size" in message
    assert "at least 1" in message
    assert raw in message


# --- percentages --------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [("0", 0.0), ("15", 15.0), ("2.5", 2.5), ("100", 100.0)])
def test_max_wer_accepts_percentages(raw: str, expected: float) -> None:
    assert parse("max_wer", raw) == expected


@pytest.mark.parametrize("raw", ["-0.1", "100.5", "1000", "-5", "inf", "nan"])
def test_max_wer_rejects_out_of_range(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"--whisperq-max-wer: must be a percentage between 0 and 100"):
        parse("max_wer", raw)


@pytest.mark.parametrize("raw", ["fifteen", "15%", ""])
def test_max_wer_rejects_non_numbers(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"--whisperq-max-wer: .* is not a number"):
        parse("max_wer", raw)


# --- booleans -----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["1", "true", "True", "YES", "on", " true "])
def test_flag_accepts_true_spellings(raw: str) -> None:
    assert parse("allow_pickle", raw) is True


@pytest.mark.parametrize("raw", ["0", "false", "FALSE", "no", "off", ""])
def test_flag_accepts_false_spellings(raw: str) -> None:
    assert parse("allow_pickle", raw) is False


@pytest.mark.parametrize("raw", ["maybe", "2", "y", "enabled"])
def test_flag_rejects_other_text(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse("allow_pickle", raw)
    message = str(info.value)
    assert "--whisperq-allow-pickle" in message
    assert repr(raw) in message
    assert "boolean" in message


# --- directories --------------------------------------------------------------------------------

def test_data_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--whisperq-data: data folder './nope' does not exist"):
        parse("data", "./nope")
    with pytest.raises(ConfigError, match=r"--whisperq-data: data folder '/nope/x' does not exist; .* hf:NAME"):
        parse("data", "/nope/x")


def test_data_folder_rejects_a_file(tmp_path: Path) -> None:
    file = tmp_path / "metadata.tsv"
    file.write_text("id\ttext\n")
    with pytest.raises(ConfigError, match="--whisperq-data"):
        parse("data", str(file))


def test_data_folder_is_resolved_and_a_hub_data_set_is_parsed() -> None:
    (Path.cwd() / "eval").mkdir()
    value = parse("data", "eval")
    assert value == DataSpec("local", str((Path.cwd() / "eval").resolve()))
    hub = parse("data", "hf:MLCommons/peoples_speech?config=clean&split=test&audio=audio&text=text")
    assert hub == DataSpec("hub", "MLCommons/peoples_speech", "clean", "test", "audio", "text")
    with pytest.raises(ConfigError, match=r"--whisperq-data: .*unknown key 'splt'"):
        parse("data", "hf:MLCommons/peoples_speech?splt=test")


@pytest.mark.parametrize("name, raw, fragment", [
    ("max_wer_delta", "-1", "at least 0"),
    ("max_wer_delta", "half", "not a number"),
    ("confidence", "95", "between 0 and 1"),
    ("confidence", "0", "between 0 and 1"),
    ("max_sanity_excess", "0", "at least 0.1"),
    ("gated_pools", "real,spoken", "choose from real, words, synthetic, long"),
    ("gated_pools", " , ", "not a list of speech pools"),
    ("max_silence_excess", "0.5", "at least 1"),
    ("language", "english", "not an ISO 639-1 language code"),
    ("max_repeats", "1", "at least 2"),
    ("max_silence_words", "-1", "at least 0"),
    ("data_limit", "0", "at least 1"),
    ("server_url", "localhost:8000", "not an http(s) URL"),
    ("vllm_python", "/no/such/python", "not an executable file"),
    ("served_model_name", "  ", "empty value"),
    ("concurrency", "0", "at least 1"),
    ("startup_timeout", "0.5", "at least 1"),
    ("requests", "0", "at least 1"),
    ("warmup", "-1", "at least 0"),
    ("min_rps", "-1", "at least 0"),
    ("min_throughput_ratio", "fast", "not a number"),
    ("min_throughput_ratio", "1.2", "between 0 and 1"),
    ("rounds", "0", "at least 1"),
])
def test_accuracy_and_sanity_options_reject_bad_values(name: str, raw: str, fragment: str) -> None:
    flag = "--whisperq-" + name.replace("_", "-")
    with pytest.raises(ConfigError, match=re.escape(flag) + ".*" + re.escape(fragment)):
        parse(name, raw)


def test_accuracy_defaults() -> None:
    settings = build_settings({}, {})
    assert (settings.max_wer_delta, settings.confidence, settings.accept_inconclusive, settings.gated_pools) == (
        0.5, 0.95, False, ("real",))
    assert settings.rule().alpha == pytest.approx(0.05) and (settings.max_sanity_excess, settings.max_silence_excess) == (
        2.0, 10.0)
    assert (settings.language, settings.max_sample_wer, settings.max_base_disagreement, settings.max_repeats,
            settings.max_silence_words, settings.data_limit) == ("en", 50.0, 50.0, 3, 0, None)


def test_a_confidence_at_or_below_a_half_is_refused() -> None:
    with pytest.raises(ConfigError, match="would misjudge more often than not"):
        build_settings({"confidence": 0.5}, {})


@pytest.mark.parametrize("name", ["cache_dir"])
@pytest.mark.parametrize("raw", ["", "   "])
def test_directories_reject_empty_paths(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match="empty path"):
        parse(name, raw)


def test_cache_dir_may_not_exist_yet(tmp_path: Path) -> None:
    value = parse("cache_dir", str(tmp_path / "not" / "yet"))
    assert value == (tmp_path / "not" / "yet").resolve()
    assert not value.exists()  # parsing does not create it


def test_cache_dir_rejects_a_file(tmp_path: Path) -> None:
    file = tmp_path / "cache-file"
    file.write_text("x")
    with pytest.raises(ConfigError) as info:
        parse("cache_dir", str(file))
    message = str(info.value)
    assert "--whisperq-cache-dir" in message
    assert str(file) in message
    assert "not a directory" in message


def test_cache_dir_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse("cache_dir", "~/wq-cache") == (tmp_path / "wq-cache").resolve()


# --- model specs --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["whisper-base", "whisper-tiny.en"])
def test_builtin_names(name: str) -> None:
    spec = parse_model_spec(name)
    assert spec == ModelSpec(name, "builtin", name)
    assert str(spec) == name


def test_builtin_name_is_stripped() -> None:
    spec = parse_model_spec("  whisper-tiny.en ")
    assert spec.kind == "builtin"
    assert spec.value == "whisper-tiny.en"


@pytest.mark.parametrize("raw", ["", "   ", "\t"])
def test_empty_model_name(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_model_spec(raw)
    message = str(info.value)
    assert "empty model name" in message
    # says what to pass instead
    assert "whisper-base" in message and "whisper-tiny.en" in message
    assert "org/name" in message


@pytest.mark.parametrize(
    ("raw", "repo", "revision"),
    [
        ("openai/whisper-tiny", "openai/whisper-tiny", None),
        ("org/name", "org/name", None),
        ("my-org/whisper_base.w4a16", "my-org/whisper_base.w4a16", None),
        ("org/name@main", "org/name", "main"),
        ("org/name@v1.0", "org/name", "v1.0"),
        ("org/name@0123456789abcdef0123456789abcdef01234567", "org/name",
         "0123456789abcdef0123456789abcdef01234567"),
    ],
)
def test_hub_ids(raw: str, repo: str, revision: str | None) -> None:
    spec = parse_model_spec(raw)
    assert spec.kind == "hub"
    assert spec.value == repo
    assert spec.revision == revision
    assert spec.raw == raw


def test_hub_revision_with_slash() -> None:
    """Hub revisions may contain '/' (branches like 'refs/pr/3', 'release/v2'); the revision
    pattern in spec.py allows it, so such an id must be parsed as a hub id."""
    spec = parse_model_spec("org/name@refs/pr/3")
    assert spec.kind == "hub"
    assert spec.value == "org/name"
    assert spec.revision == "refs/pr/3"


@pytest.mark.parametrize("raw", ["a/b/c", "bad name", "org/", "/name", "org/name@", "org/na..me", "org name/x",
                                 "-org/name", "just-a-word", "org/name@@rev"])
def test_malformed_hub_ids(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_model_spec(raw)
    assert raw.strip() in str(info.value)


def test_malformed_hub_id_message_explains_what_to_pass() -> None:
    with pytest.raises(ConfigError) as info:
        parse_model_spec("bad name")
    message = str(info.value)
    assert "'bad name'" in message
    assert "org/name" in message
    assert "whisper-base" in message


@pytest.mark.parametrize("raw", ["./nope", "/nope/x", "../nope", "~/nope-whisperq-does-not-exist"])
def test_nonexistent_directories(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_model_spec(raw)
    message = str(info.value)
    assert raw in message
    assert "does not exist" in message


def test_existing_directory_is_local(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    spec = parse_model_spec(str(checkpoint))
    assert spec.kind == "local"
    assert spec.value == str(checkpoint.resolve())
    assert spec.revision is None


def test_relative_existing_directory_is_local_and_absolute() -> None:
    (Path.cwd() / "ckpt").mkdir()
    spec = parse_model_spec("./ckpt")
    assert spec.kind == "local"
    assert Path(spec.value).is_absolute()
    assert Path(spec.value) == (Path.cwd() / "ckpt").resolve()
    assert spec.raw == "./ckpt"


def test_existing_directory_that_looks_like_a_hub_id_is_local() -> None:
    (Path.cwd() / "org" / "name").mkdir(parents=True)
    spec = parse_model_spec("org/name")
    assert spec.kind == "local"
    assert spec.value == str((Path.cwd() / "org" / "name").resolve())


def test_a_file_is_rejected(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ConfigError) as info:
        parse_model_spec(str(weights))
    message = str(info.value)
    assert "is a file" in message
    assert "config.json" in message


@pytest.mark.parametrize("name", ["model", "base"])
def test_model_options_use_spec_parser(name: str) -> None:
    assert parse(name, "whisper-tiny.en").kind == "builtin"
    with pytest.raises(ConfigError):
        parse(name, "a/b/c")


# --- argparse bridge ----------------------------------------------------------------------------

def test_argparse_type_turns_config_error_into_argument_type_error() -> None:
    convert = argparse_type(BY_NAME["device"])
    assert convert("cpu") == "cpu"
    # argparse adds "argument --whisperq-device:" itself, so the flag is not repeated.
    with pytest.raises(argparse.ArgumentTypeError, match=r"^'tpu' is not one of auto, cpu, cuda$"):
        convert("tpu")


def test_argparse_type_reports_parse_errors_as_usage_errors() -> None:
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    parser.add_argument("--whisperq-batch-size", type=argparse_type(BY_NAME["batch_size"]))
    assert parser.parse_args(["--whisperq-batch-size=4"]).whisperq_batch_size == 4
    with pytest.raises(argparse.ArgumentError, match="must be at least 1, got 0"):
        parser.parse_args(["--whisperq-batch-size=0"])


# --- build_settings -----------------------------------------------------------------------------

def test_defaults(tmp_path: Path) -> None:
    settings = build_settings({}, {})
    assert isinstance(settings, Settings)
    assert settings.model is None
    assert settings.base == ModelSpec(DEFAULT_BASE, "builtin", DEFAULT_BASE)
    assert DEFAULT_BASE == "whisper-base"
    assert settings.backend == "transformers"
    assert settings.device == "auto"
    assert settings.dtype == "auto"
    assert settings.data is None
    assert settings.batch_size == 8
    assert settings.max_wer == 15.0
    assert settings.allow_pickle is False


def test_explicit_none_and_empty_ini_values_mean_default() -> None:
    cli = {option.name: None for option in OPTIONS}
    ini = {option.ini: None for option in OPTIONS} | {"whisperq_device": "", "whisperq_batch_size": ""}
    settings = build_settings(cli, ini)
    assert settings.device == "auto"
    assert settings.batch_size == 8


def test_cache_dir_falls_back_to_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPERQ_CACHE_DIR", str(tmp_path / "from-env"))
    assert build_settings({}, {}).cache_dir == tmp_path / "from-env"


def test_cache_dir_without_environment_is_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WHISPERQ_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert build_settings({}, {}).cache_dir == tmp_path / "xdg" / "pytest-whisperq"


def test_cache_dir_option_beats_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPERQ_CACHE_DIR", str(tmp_path / "from-env"))
    from_ini = build_settings({}, {"whisperq_cache_dir": str(tmp_path / "from-ini")})
    assert from_ini.cache_dir == (tmp_path / "from-ini").resolve()
    from_cli = build_settings({"cache_dir": (tmp_path / "from-cli").resolve()},
                              {"whisperq_cache_dir": str(tmp_path / "from-ini")})
    assert from_cli.cache_dir == (tmp_path / "from-cli").resolve()


def test_ini_over_default() -> None:
    settings = build_settings({}, {
        "whisperq_model": "whisper-tiny.en",
        "whisperq_base": "org/base@v2",
        "whisperq_device": "cpu",
        "whisperq_dtype": "bfloat16",
        "whisperq_batch_size": "3",
        "whisperq_max_wer": "7.5",
        "whisperq_allow_pickle": "true",
    })
    assert settings.model == ModelSpec("whisper-tiny.en", "builtin", "whisper-tiny.en")
    assert settings.base == ModelSpec("org/base@v2", "hub", "org/base", "v2")
    assert settings.device == "cpu"
    assert settings.dtype == "bfloat16"
    assert settings.batch_size == 3
    assert settings.max_wer == 7.5
    assert settings.allow_pickle is True


def test_command_line_over_ini() -> None:
    # command-line values arrive already parsed by argparse (see argparse_type)
    cli = {
        "model": parse_model_spec("whisper-base"),
        "device": "cuda",
        "dtype": "float16",
        "batch_size": 2,
        "max_wer": 1.0,
    }
    ini = {
        "whisperq_model": "whisper-tiny.en",
        "whisperq_device": "cpu",
        "whisperq_dtype": "float32",
        "whisperq_batch_size": "32",
        "whisperq_max_wer": "50",
    }
    settings = build_settings(cli, ini)
    assert settings.model is not None and settings.model.value == "whisper-base"
    assert settings.device == "cuda"
    assert settings.dtype == "float16"
    assert settings.batch_size == 2
    assert settings.max_wer == 1.0


def test_command_line_value_wins_even_when_ini_value_is_invalid() -> None:
    settings = build_settings({"device": "cpu"}, {"whisperq_device": "tpu"})
    assert settings.device == "cpu"


def test_flag_on_command_line_beats_ini_false() -> None:
    assert build_settings({"allow_pickle": True}, {"whisperq_allow_pickle": "false"}).allow_pickle is True


def test_flag_absent_on_command_line_uses_ini() -> None:
    # store_true with default None: False/None both mean "not given", so the ini decides
    assert build_settings({"allow_pickle": None}, {"whisperq_allow_pickle": "yes"}).allow_pickle is True
    assert build_settings({"allow_pickle": False}, {"whisperq_allow_pickle": "yes"}).allow_pickle is True
    assert build_settings({"allow_pickle": None}, {"whisperq_allow_pickle": "no"}).allow_pickle is False


@pytest.mark.parametrize(
    ("key", "raw", "fragment"),
    [
        ("whisperq_device", "tpu", "'tpu' is not one of"),
        ("whisperq_dtype", "int4", "'int4' is not one of"),
        ("whisperq_backend", "onnx", "'onnx' is not one of"),
        ("whisperq_batch_size", "0", "at least 1"),
        ("whisperq_batch_size", "many", "not an integer"),
        ("whisperq_max_wer", "150", "between 0 and 100"),
        ("whisperq_allow_pickle", "perhaps", "not a boolean"),
        ("whisperq_model", "a/b/c", "does not exist"),
        ("whisperq_model", "bad name", "neither a directory nor a hub id"),
        ("whisperq_base", "/nope/x", "does not exist"),
        ("whisperq_data", "./nope", "does not exist"),
    ],
)
def test_bad_ini_values_name_the_ini_key(key: str, raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_settings({}, {key: raw})
    message = str(info.value)
    assert message.startswith(f"ini key {key}: ")
    assert fragment in message


def test_ini_cache_dir_that_is_a_file_names_the_ini_key(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("")
    with pytest.raises(ConfigError, match=r"^ini key whisperq_cache_dir: .*not a directory"):
        build_settings({}, {"whisperq_cache_dir": str(file)})


def test_settings_are_frozen() -> None:
    settings = build_settings({}, {})
    with pytest.raises(AttributeError):
        settings.device = "cpu"  # type: ignore[misc]


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("max_layer_error", "0.75", 0.75), ("max_layer_error", "2", 2.0), ("scale_excess", "0.05", 0.05),
    ("group_size", "64", 64), ("scheme", "auto", "auto"), ("scheme", "AUTO", "auto"), ("scheme", "w8a8", "W8A8"),
    ("scheme", "fp8_dynamic", "FP8_DYNAMIC"), ("actorder", "weight", "weight"),
])
def test_format_tolerances_parse(name: str, raw: str, expected: float) -> None:
    assert parse(name, raw) == expected


@pytest.mark.parametrize(("name", "raw", "message"), [
    ("max_layer_error", "-0.1", "at least 0"), ("max_layer_error", "nan", "at least 0"),
    ("max_layer_error", "inf", "finite"), ("scale_excess", "-0.5", "at least 0"),
    ("scale_excess", "lots", "is not a number"), ("group_size", "0", "at least 1"),
    ("scheme", "W9A16", r"unknown quantization scheme 'W9A16': name one of compressed-tensors' presets \(FP8, "),
    ("scheme", "UNQUANTIZED", "unknown quantization scheme"), ("actorder", "sideways", "is not one of none, group"),
])
def test_format_tolerances_reject_bad_values(name: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(name, raw)
