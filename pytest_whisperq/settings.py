"""The plugin's options: one table, parsed once into a frozen `Settings`.

Every value goes through a parse function that raises `ConfigError` with a clear message, for
command-line options (where argparse turns it into a usage error) and ini keys alike.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_whisperq.cache import default_cache_root
from pytest_whisperq.dataspec import SPEECH_KINDS, DataSpec, parse_data_spec
from pytest_whisperq.decision import Rule
from pytest_whisperq.errors import ConfigError
from pytest_whisperq.models.spec import ModelSpec, parse_model_spec
from pytest_whisperq.userpath import user_path

BACKENDS = ("transformers", "vllm", "vllm-server", "openai")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "float16", "bfloat16")
DEFAULT_BASE = "whisper-base"


def _choice(name: str, allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        return value

    return parse


def _positive_int(name: str, minimum: int = 1) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not an integer") from None
        if number < minimum:
            raise ConfigError(f"{name}: must be at least {minimum}, got {number}")
        return number

    return parse


def _fraction(name: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not a number") from None
        if not 0 < number < 1:
            raise ConfigError(f"{name}: must be between 0 and 1 (exclusive), e.g. 0.95, got {value}")
        return number

    return parse


def _language(name: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        code = value.strip().lower()
        if not re.fullmatch(r"[a-z]{2,3}", code):
            raise ConfigError(f"{name}: {value!r} is not an ISO 639-1 language code such as en, de, fr")
        return code

    return parse


def _percent(name: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not a number") from None
        if not 0 <= number <= 100:
            raise ConfigError(f"{name}: must be a percentage between 0 and 100, got {number}")
        return number

    return parse


def _number(name: str, minimum: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not a number") from None
        if not number >= minimum or number == float("inf"):
            raise ConfigError(f"{name}: must be a finite number of at least {minimum:g}, got {value}")
        return number

    return parse


def _directory(name: str, must_exist: bool) -> Callable[[str], Path]:
    def parse(value: str) -> Path:
        if not value.strip():
            raise ConfigError(f"{name}: empty path")
        path = user_path(value)
        if must_exist and not path.is_dir():
            raise ConfigError(f"{name}: directory {value} does not exist")
        if not must_exist and path.exists() and not path.is_dir():
            raise ConfigError(f"{name}: {value} exists and is not a directory")
        return path.resolve()

    return parse


def _output_file(name: str) -> Callable[[str], Path]:
    """A report to write: its folder must exist (a typo should not fail the run only at its end)."""
    def parse(value: str) -> Path:
        if not value.strip():
            raise ConfigError(f"{name}: empty path")
        path = user_path(value).resolve()
        if path.is_dir():
            raise ConfigError(f"{name}: {value} is a directory; name the file to write")
        if not path.parent.is_dir():
            raise ConfigError(f"{name}: folder {path.parent} does not exist; create it first")
        return path

    return parse


def _charts_directory(name: str) -> Callable[[str], Path]:
    folder = _directory(name, False)

    def parse(value: str) -> Path:
        from pytest_whisperq.report.charts import require_matplotlib

        path = folder(value)
        try:
            require_matplotlib()
        except ConfigError as error:
            raise ConfigError(f"{name}: {error}") from None
        return path

    return parse


def _thresholds(name: str) -> Callable[[str], tuple[Any, ...]]:
    def parse(value: str) -> tuple[Any, ...]:
        from pytest_whisperq.report.baseline import parse_thresholds

        try:
            return parse_thresholds(value)
        except ConfigError as error:
            raise ConfigError(f"{name}: {error}") from None

    return parse


def _data_source(name: str) -> Callable[[str], DataSpec]:
    def parse(value: str) -> DataSpec:
        try:
            return parse_data_spec(value)
        except ConfigError as error:
            raise ConfigError(f"{name}: {error}") from None

    return parse


def _executable(name: str) -> Callable[[str], Path]:
    def parse(value: str) -> Path:
        path = user_path(value)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise ConfigError(f"{name}: {value} is not an executable file (the python of the vLLM environment, "
                              "e.g. .venv-vllm/bin/python)")
        return path.absolute()

    return parse


def _url(name: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        url = value.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise ConfigError(f"{name}: {value!r} is not an http(s) URL such as http://127.0.0.1:8000/v1")
        return url

    return parse


def _text(name: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not value.strip():
            raise ConfigError(f"{name}: empty value")
        return value.strip()

    return parse


def _pools(name: str) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        pools = tuple(dict.fromkeys(p.strip().lower() for p in value.split(",") if p.strip()))
        unknown = [p for p in pools if p not in SPEECH_KINDS]
        if not pools or unknown:
            raise ConfigError(f"{name}: {value!r} is not a list of speech pools; choose from {', '.join(SPEECH_KINDS)}")
        return pools

    return parse


def _scheme(name: str) -> Callable[[str], str]:
    """auto, or one of compressed-tensors' preset scheme names (any case), checked against the library's own list."""
    def parse(value: str) -> str:
        if value.strip().lower() == "auto":
            return "auto"
        from pytest_whisperq.checks.scheme import preset

        try:
            return preset(value.strip()).name
        except ConfigError as error:
            raise ConfigError(f"{name}: {error}") from None

    return parse


def _flag(name: str) -> Callable[[str], bool]:
    def parse(value: str) -> bool:
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{name}: {value!r} is not a boolean (true/false)")

    return parse


@dataclass(frozen=True)
class Option:
    name: str  # attribute of Settings; the flag is --whisperq-<name with dashes>
    parse: Callable[[str], Any]
    default: str | None  # raw text, parsed like any user value
    help: str
    metavar: str = "VALUE"
    is_flag: bool = False

    @property
    def flag(self) -> str:
        return "--whisperq-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "whisperq_" + self.name


def _opt(name: str, parse_factory: Callable[..., Callable[[str], Any]], *args: Any, **kwargs: Any) -> Option:
    return Option(name, parse_factory(f"--whisperq-{name.replace('_', '-')}", *args), **kwargs)


OPTIONS: tuple[Option, ...] = (
    Option("model", parse_model_spec, None, metavar="PATH_OR_ID",
           help="the quantized checkpoint under test: a local directory, org/name[@revision] on the "
                "hub, a built-in (whisper-base, whisper-tiny.en), or 'quantize' to make the W4A16 "
                "checkpoint of the base here (the default when llm-compressor is installed)"),
    Option("base", parse_model_spec, DEFAULT_BASE, metavar="PATH_OR_ID",
           help=f"the base model it was made from (default: {DEFAULT_BASE}, built in)"),
    _opt("backend", _choice, BACKENDS, default="transformers", metavar="NAME",
         help="inference backend: transformers (in this process), vllm (vLLM's offline LLM API in this process), "
              "vllm-server (a vLLM OpenAI-compatible server "
              "started from --whisperq-vllm-python), openai (endpoints you run: --whisperq-server-url and "
              "--whisperq-base-server-url) (default: transformers)"),
    _opt("vllm_python", _executable, default=None, metavar="PATH",
         help="python of the environment vLLM is installed in, for --whisperq-backend=vllm-server "
              "(default: $WHISPERQ_VLLM_PYTHON, else this interpreter)"),
    _opt("server_url", _url, default=None, metavar="URL",
         help="--whisperq-backend=openai: base URL of the endpoint serving the model under test, e.g. http://host:8000/v1"),
    _opt("base_server_url", _url, default=None, metavar="URL",
         help="--whisperq-backend=openai: base URL of the endpoint serving the base model"),
    _opt("served_model_name", _text, default=None, metavar="NAME",
         help="--whisperq-backend=openai: the model name the endpoints expect (default: ask GET /models)"),
    _opt("concurrency", _positive_int, default="8", metavar="N",
         help="server backends: requests in flight at once (default: 8)"),
    _opt("startup_timeout", _number, 1.0, default="900", metavar="SECONDS",
         help="server backends: how long a started server may take to become healthy (default: 900)"),
    _opt("request_timeout", _number, 1.0, default="300", metavar="SECONDS",
         help="server backends: how long one transcription request may take (default: 300)"),
    _opt("agreement_backend", _choice, ("auto", "none", *BACKENDS), default="auto", metavar="NAME",
         help="cross-backend agreement: the backend the model under test's transcripts are compared with "
              "(auto: transformers when --whisperq-backend is another one, none otherwise) (default: auto)"),
    _opt("max_backend_disagreement", _number, 0.0, default="2", metavar="PERCENT",
         help="cross-backend agreement: largest WER between the two backends' transcripts of the same audio, "
              "pooled over the evaluation data, in percent (default: 2)"),
    _opt("vllm_memory_fraction", _fraction, default="0.3", metavar="FRACTION",
         help="vLLM on GPU: the share of GPU memory each engine may take (vLLM's --gpu-memory-utilization); "
              "a run holds up to two engines and transformers (default: 0.3)"),
    _opt("device", _choice, DEVICES, default="auto", metavar="DEVICE",
         help="auto (CUDA when available), cpu or cuda (default: auto)"),
    _opt("dtype", _choice, DTYPES, default="auto", metavar="DTYPE",
         help="activation dtype: auto (float16 on CUDA, float32 on CPU), float32, float16, bfloat16"),
    _opt("cache_dir", _directory, False, default=None, metavar="DIR",
         help="cache for converted models and results (default: $WHISPERQ_CACHE_DIR or ~/.cache/pytest-whisperq)"),
    _opt("data", _data_source, default=None, metavar="SOURCE",
         help="evaluation speech: a folder with metadata.tsv or hf:NAME?config=C&split=S&audio=COLUMN&text=COLUMN "
              "(default: the shipped evaluation speech)"),
    _opt("multilingual", _flag, default="false", is_flag=True,
         help="add the shipped multilingual speech (Spanish, French, Italian, Russian: 600 real utterances, about "
              "40 minutes) to the evaluation data: each language is a pool gated on its own (default: off)"),
    _opt("data_limit", _positive_int, default=None, metavar="N",
         help="use only the first N evaluation utterances (default: all)"),
    _opt("calib_data", _data_source, default=None, metavar="SOURCE",
         help="calibration speech for quantizing: a folder with metadata.tsv or "
              "hf:NAME?config=C&split=S&audio=COLUMN&text=COLUMN (default: the shipped calibration speech)"),
    _opt("calib_samples", _positive_int, default="32", metavar="N",
         help="calibration utterances for GPTQ (default: 32)"),
    _opt("batch_size", _positive_int, default="8", metavar="N", help="utterances per generate() call (default: 8)"),
    _opt("max_wer", _percent, default="15", metavar="PERCENT",
         help="absolute WER ceiling for the model under test on the evaluation data in the run's language "
              "(--whisperq-language), in percent (default: 15)"),
    _opt("max_wer_other", _percent, default="30", metavar="PERCENT",
         help="absolute WER (CER where words have no spaces) ceiling in every other language of the data, in "
              "percent (default: 30)"),
    _opt("max_wer_delta", _number, 0.0, default="0.5", metavar="POINTS",
         help="largest WER(model) - WER(base) allowed, in percentage points (default: 0.5)"),
    _opt("confidence", _fraction, default="0.95", metavar="LEVEL",
         help="the decision rule's one-sided confidence: each gated figure (WER delta, sanity excess) is misjudged "
              "with probability at most 1 - LEVEL at either end of its margin (default: 0.95)"),
    _opt("accept_inconclusive", _flag, default="false", is_flag=True,
         help="accept INCONCLUSIVE figures (the data could not tell pass from fail) instead of failing them; "
              "the report still names each (default: off)"),
    _opt("gated_pools", _pools, default="real", metavar="POOL,...",
         help="the speech pools whose WER delta and ceiling gate the release, in every language on its own: real, "
              "words (isolated words and two-word phrases), synthetic, long (over 30 s); the others are reported, "
              "not gated (default: real)"),
    _opt("language", _language, default="en", metavar="CODE",
         help="the language of every utterance whose data names none (metadata.tsv column language, or "
              "hf:...&language=CODE): decoding is forced to each utterance's language, and transcripts are "
              "expected in it (default: en)"),
    _opt("language_id", _flag, default="false", is_flag=True,
         help="also decode without a forced language and judge the languages the model identifies against the "
              "base's on the same utterances (test_language_id.py; otherwise deselected) (default: off)"),
    _opt("max_sample_wer", _number, 0.0, default="50", metavar="PERCENT",
         help="sanity: largest WER of any single sample where the base stays under it (default: 50)"),
    _opt("max_base_disagreement", _number, 0.0, default="50", metavar="PERCENT",
         help="sanity: largest WER between the base's and the model's transcript of one sample (default: 50)"),
    _opt("max_repeats", _positive_int, 2, default="3", metavar="N",
         help="sanity: a phrase repeated N times in a row (more than in the reference) is a loop (default: 3)"),
    _opt("max_silence_words", _positive_int, 0, default="0", metavar="N",
         help="sanity: a transcript of audio without speech with more than N words talks on silence (default: 0)"),
    _opt("max_sanity_excess", _number, 0.1, default="2", metavar="POINTS",
         help="sanity: largest excess of the model over the base, in percent of utterances, of each property "
              "(empty, loop, wrong language, far from reference, far from the base) (default: 2)"),
    _opt("max_silence_excess", _number, 1.0, default="10", metavar="POINTS",
         help="sanity: largest excess of the model over the base, in percent of the no-speech clips, of clips "
              "talked on (default: 10)"),
    _opt("requests", _positive_int, default="16", metavar="N",
         help="throughput: transcription requests per round and model, the evaluation utterances cycled (default: 16)"),
    _opt("rounds", _positive_int, default="5", metavar="N",
         help="throughput: rounds of base and model, interleaved; the ratio's interval comes from their spread "
              "(default: 5; at least 3 for a verdict)"),
    _opt("warmup", _positive_int, 0, default="8", metavar="N",
         help="throughput: requests each model is sent and discarded before the rounds, a batch at least (default: 8)"),
    _opt("min_rps", _number, 0.0, default=None, metavar="N",
         help="throughput floor: requests per second of the model under test (default: none)"),
    _opt("min_rtfx", _number, 0.0, default=None, metavar="N",
         help="throughput floor: RTFx, audio seconds per wall second (default: none)"),
    _opt("min_tokens_per_second", _number, 0.0, default=None, metavar="N",
         help="throughput floor: output tokens per second (default: none)"),
    _opt("min_throughput_ratio", _fraction, default="0.8", metavar="RATIO",
         help="throughput floor relative to the base measured in the same run: model RTFx / base RTFx, judged on "
              "the interleaved rounds by the decision rule; not applicable where both run dense weights (default: 0.8)"),
    _opt("scheme", _scheme, default="auto", metavar="NAME",
         help="the quantization scheme the checkpoint must have: a compressed-tensors preset (W4A16, W4A16_ASYM, "
              "W8A16, W8A8, FP8, FP8_DYNAMIC, FP8_BLOCK, NVFP4A16, NVFP4, ...), or auto: the scheme its config "
              "declares, gated as that scheme and named in the report (default: auto)"),
    _opt("group_size", _positive_int, default=None, metavar="N",
         help="the weights' group size the scheme must have, where it quantizes in groups (default: the scheme's "
              "own: the preset's, or under auto the declared one)"),
    _opt("actorder", _choice, ("none", "group", "weight", "static"), default=None, metavar="ORDER",
         help="the GPTQ activation ordering the checkpoint must declare (group: stores weight_g_idx) "
              "(default: any)"),
    _opt("max_layer_error", _number, 0.0, default="0.6", metavar="RATIO",
         help="largest relative error ||dequantized - base|| / ||base|| allowed for any Linear layer (default: 0.6)"),
    _opt("scale_excess", _number, 0.0, default="0.02", metavar="FRACTION",
         help="a Linear layer's weight scales may exceed the min-max scales of the base's own weights by at most "
              "this fraction, beyond their dtype's rounding (default: 0.02; llm-compressor's GPTQ and "
              "round-to-nearest store exactly those, measured to 0.04%%)"),
    _opt("median_error_factor", _number, 1.0, default="2", metavar="FACTOR",
         help="the layers' median error, as a multiple of their round-to-nearest errors, may not exceed FACTOR: "
              "catches a checkpoint uniformly off (default: 2; GPTQ measured 1.45-1.59, every scale x1.2: 2.47)"),
    _opt("json", _output_file, default=None, metavar="PATH",
         help="write the run's report as JSON: checks, figures, checkpoint sha256s, versions (default: none)"),
    _opt("markdown", _output_file, default=None, metavar="PATH",
         help="write the run's report as Markdown, with the model card's Evaluation section (default: none)"),
    _opt("charts", _charts_directory, default=None, metavar="DIR",
         help="draw PNG charts (WER per subset, latency distribution) into DIR; the Markdown report links them "
              "(needs matplotlib: pytest-whisperq[charts]) (default: none)"),
    _opt("baseline_storage", _directory, False, default=".whisperq-baselines", metavar="DIR",
         help="where runs are saved and looked up for comparison (default: .whisperq-baselines)"),
    _opt("baseline_save", _flag, default="false", is_flag=True,
         help="save this run in the baseline storage as the next numbered run (default: off)"),
    _opt("baseline_compare", _text, default=None, metavar="latest|NUM|PATH",
         help="compare this run's figures with a saved run: the latest, its number, or a report's path (default: none)"),
    _opt("baseline_fail", _thresholds, default=None, metavar="METRIC:LIMIT,...",
         help="regressions against the baseline that fail the run, e.g. wer:0.3,rtfx:10%% "
              "(metrics: wer in points; rtfx, requests_per_s, output_tokens_per_s, latency_p95_s in percent)"),
    _opt("allow_pickle", _flag, default="false", is_flag=True,
         help="allow loading pickled (.bin/.pt) weights, which can run arbitrary code (default: refuse)"),
    _opt("allow_skip", _flag, default="false", is_flag=True,
         help="accept whisperq checks that were skipped (default: a skipped check fails the run, since a gate "
              "that could not check must not pass)"),
)


@dataclass(frozen=True)
class Settings:
    model: ModelSpec | None
    base: ModelSpec
    backend: str
    vllm_python: Path | None
    server_url: str | None
    base_server_url: str | None
    served_model_name: str | None
    concurrency: int
    startup_timeout: float
    request_timeout: float
    agreement_backend: str
    max_backend_disagreement: float
    vllm_memory_fraction: float
    device: str
    dtype: str
    cache_dir: Path
    data: DataSpec | None
    data_limit: int | None
    calib_data: DataSpec | None
    calib_samples: int
    batch_size: int
    max_wer: float
    max_wer_delta: float
    confidence: float
    accept_inconclusive: bool
    gated_pools: tuple[str, ...]
    language: str
    multilingual: bool
    max_wer_other: float
    language_id: bool
    max_sample_wer: float
    max_base_disagreement: float
    max_repeats: int
    max_silence_words: int
    max_sanity_excess: float
    max_silence_excess: float
    requests: int
    rounds: int
    warmup: int
    min_rps: float | None
    min_rtfx: float | None
    min_tokens_per_second: float | None
    min_throughput_ratio: float
    scheme: str
    group_size: int | None
    actorder: str | None
    max_layer_error: float
    scale_excess: float
    median_error_factor: float
    json: Path | None
    markdown: Path | None
    charts: Path | None
    baseline_storage: Path
    baseline_save: bool
    baseline_compare: str | None
    baseline_fail: tuple[Any, ...] | None
    allow_pickle: bool
    allow_skip: bool

    def rule(self) -> Rule:
        """The decision rule every gated figure is judged by."""
        return Rule(alpha=round(1.0 - self.confidence, 12))


PATH_OPTIONS = ("cache_dir", "json", "markdown", "charts", "baseline_storage")  # data and calib_data may be hf:..., anchored only if they exist
MODEL_OPTIONS = ("model", "base")


def _relative_to_ini(option: Option, raw: str, ini_dir: Path | None) -> str:
    """Relative paths in an ini file mean relative to that file, as pytest's own do."""
    if ini_dir is None or user_path(raw).is_absolute():
        return raw
    anchored = ini_dir / raw
    if option.name in PATH_OPTIONS or (option.name in MODEL_OPTIONS + ("data", "calib_data", "baseline_compare")
                                       and anchored.exists()):
        return str(anchored)
    return raw


def _without_flag(option: Option, error: ConfigError) -> str:
    return str(error).removeprefix(f"{option.flag}: ")


def build_settings(cli: dict[str, Any], ini: dict[str, str | None], ini_dir: Path | None = None) -> Settings:
    """Merge parsed command-line values (None = not given) over ini strings over defaults."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        value = cli.get(option.name)
        if value is None or (option.is_flag and value is False):
            raw = ini.get(option.ini)
            if raw not in (None, ""):
                try:
                    value = option.parse(_relative_to_ini(option, str(raw), ini_dir))
                except ConfigError as error:
                    raise ConfigError(f"ini key {option.ini}: {_without_flag(option, error)}") from None
        if value is None and option.default is not None:
            value = option.parse(option.default)
        values[option.name] = value
    if values["cache_dir"] is None:
        values["cache_dir"] = default_cache_root()
    if values["agreement_backend"] == values["backend"]:
        raise ConfigError(f"--whisperq-agreement-backend={values['backend']} is the run's own backend: agreement compares "
                          "two different ones (name another, or 'none' to turn it off)")
    if values["confidence"] <= 0.5:
        raise ConfigError(f"--whisperq-confidence: {values['confidence']:g} would misjudge more often than not; "
                          "use a level above 0.5, e.g. 0.95")
    if values["baseline_compare"] is not None and values["baseline_fail"] is None:
        raise ConfigError("--whisperq-baseline-compare needs --whisperq-baseline-fail: the regressions that fail the "
                          "run, e.g. --whisperq-baseline-fail=wer:0.3,rtfx:10%")
    return Settings(**values)


def argparse_type(option: Option) -> Callable[[str], Any]:
    """Wrap a parse function so argparse reports its message as a usage error."""

    def parse(value: str) -> Any:
        try:
            return option.parse(value)
        except ConfigError as error:  # argparse prefixes "argument --whisperq-x:" itself
            raise argparse.ArgumentTypeError(_without_flag(option, error)) from None

    parse.__name__ = option.name  # argparse shows this name in "invalid <name> value"
    return parse
