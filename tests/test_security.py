"""Security: no code from a checkpoint ever runs, trust_remote_code is never set, a model id cannot
steer a cache path outside the cache, and servers listen on loopback only."""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_whisperq.cache import Cache
from pytest_whisperq.errors import ConfigError
from pytest_whisperq.models.spec import parse_model_spec

from tests_support import linked_copy

pytest_plugins = ["pytester"]

PAYLOAD = """
from pathlib import Path
Path({marker!r}).write_text("checkpoint code ran")
"""


def booby_trapped(source: Path, out: Path, marker: Path) -> Path:
    """tiny.en with code that writes `marker` when imported, and auto_map entries that point at it."""
    linked_copy(source, out)
    (out / "modeling_trap.py").write_text(PAYLOAD.format(marker=str(marker)))
    for name, auto_map in (("config.json", {"AutoModelForSpeechSeq2Seq": "modeling_trap.Trap"}),
                           ("tokenizer_config.json", {"AutoTokenizer": ["modeling_trap.Trap", None]}),
                           ("preprocessor_config.json", {"AutoFeatureExtractor": "modeling_trap.Trap"})):
        config = json.loads((source / name).read_text())
        (out / name).unlink()
        (out / name).write_text(json.dumps({**config, "auto_map": auto_map}))
    return out


@pytest.mark.slow
def test_a_checkpoint_with_its_own_code_transcribes_without_running_it_and_fails_the_format(
        run_suite, whisper_tiny_en_dir, tmp_path) -> None:
    marker = tmp_path / "ran"
    model = booby_trapped(whisper_tiny_en_dir, tmp_path / "trap", marker)
    result = run_suite(f"--whisperq-model={model}", "--whisperq-base=whisper-tiny.en", "--whisperq-data-limit=4",
                       "--whisperq-max-wer=100", "--whisperq-accept-inconclusive", "-k", "custom_code or wer_under_ceiling")
    result.assert_outcomes(passed=1, failed=1)  # it transcribed (4 utterances: accepted though inconclusive)
    result.stdout.fnmatch_lines_random([
        "FAIL no_custom_code: observed 4 findings, limit 0 findings",
        "  - modeling_trap.py: Python code shipped with the weights",
        '  - config.json: auto_map {"AutoModelForSpeechSeq2Seq": "modeling_trap.Trap"}',
        "  - tokenizer_config.json: auto_map *", "  - preprocessor_config.json: auto_map *",
    ])
    assert not marker.exists()


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pickle code ran"))


@pytest.mark.slow
def test_a_pickle_that_runs_code_is_refused_even_when_pickles_are_allowed(run_suite, whisper_tiny_en_dir, tmp_path) -> None:
    marker = tmp_path / "ran"
    model = linked_copy(whisper_tiny_en_dir, tmp_path / "pickled", keep=lambda file: file.suffix != ".safetensors")
    (model / "pytorch_model.bin").write_bytes(pickle.dumps({"model.encoder.conv1.weight": _RunsCode(marker)}))
    result = run_suite(f"--whisperq-model={model}", "--whisperq-base=whisper-tiny.en", "--whisperq-allow-pickle",
                       "-k", "wer_under_ceiling or output_head")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.TESTS_FAILED and outcomes["errors"] == 3 and "passed" not in outcomes
    result.stdout.fnmatch_lines(["*CheckpointError: *pytorch_model.bin: cannot be read as a weights-only torch pickle "
                                 "(Weights only load failed*"])
    assert not marker.exists() and "Traceback" not in result.stdout.str()


def test_no_code_path_enables_remote_code() -> None:
    """Every trust_remote_code the package passes is the literal False, and no command line asks vLLM for it."""
    settings_seen = []
    import pytest_whisperq

    for path in sorted(Path(pytest_whisperq.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, f"{path}:{node.lineno}"
                settings_seen.append(path.name)
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert "trust-remote-code" not in node.value, f"{path}:{node.lineno}"
    assert {"transformers_backend.py", "vllm_offline.py", "quantize.py"} <= set(settings_seen)


def test_the_vllm_server_listens_on_loopback_without_remote_code(tmp_path) -> None:
    from pytest_whisperq.backends.server import LOOPBACK, free_port
    from pytest_whisperq.backends.vllm_server import server_command

    command = server_command(Path("python"), tmp_path, free_port(), "float16")
    assert command[command.index("--host") + 1] == LOOPBACK == "127.0.0.1"
    assert not any("trust" in part for part in command)


@settings(max_examples=500, derandomize=True, database=None, deadline=None)
@given(raw=st.text(max_size=60) | st.builds(lambda a, b: f"{a}/{b}", st.text(max_size=20), st.text(max_size=20)))
def test_a_model_id_cannot_steer_a_path(raw: str) -> None:
    """Whatever a user or a CI variable passes as a model id: it is refused, or a hub id of the hub's own
    form (no '..', no absolute part), and every cache entry named after it stays inside the cache."""
    try:
        spec = parse_model_spec(raw)
    except ConfigError:
        return
    if spec.kind == "hub":
        assert ".." not in spec.value and not spec.value.startswith("/") and "\\" not in spec.value
        assert spec.value.count("/") == 1 and (spec.revision is None or ".." not in spec.revision)
    root = Path("/nonexistent/cache-root")
    cache = Cache(root)
    for name in (spec.raw, spec.value, Path(spec.value).name):
        entry = cache.entry_dir("transcripts", name, {"x": 1})
        assert cache.root in entry.parents and entry.parent == cache.root / "transcripts"


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(raw=st.text(max_size=300) | st.sampled_from(["~nobody-here/x", "a" * 300, "hf:" + "b" * 300, "x\0y", "~0"]))
def test_every_option_parses_any_text_or_says_why(raw: str) -> None:
    """A CI variable can hold anything: every option's parser returns a value or raises ConfigError
    (which pytest shows as a usage error), never another exception."""
    from pytest_whisperq.settings import OPTIONS

    for option in OPTIONS:
        try:
            option.parse(raw)
        except ConfigError:
            pass
