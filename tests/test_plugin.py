"""The plugin as pytest users meet it: options, ini keys, usage errors, fixtures and the summary.

Every run goes through `pytester` (in process, fast) with a private cache directory; no model
is ever loaded.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

OPTION_FLAGS = (
    "--whisperq-model", "--whisperq-base", "--whisperq-backend", "--whisperq-device", "--whisperq-dtype",
    "--whisperq-cache-dir", "--whisperq-data", "--whisperq-batch-size", "--whisperq-max-wer",
    "--whisperq-allow-pickle",
)
INI_KEYS = tuple("whisperq_" + flag.removeprefix("--whisperq-").replace("-", "_") for flag in OPTION_FLAGS)

SHOW_SETTINGS = """
    def test_show(whisperq_settings):
        s = whisperq_settings
        print("SETTINGS", s.device, s.dtype, s.batch_size, s.max_wer, s.allow_pickle, s.base.raw,
              s.model.raw if s.model else None, sep="|")
"""


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "whisperq-cache"


@pytest.fixture
def cache_arg(cache_dir: Path) -> str:
    return f"--whisperq-cache-dir={cache_dir}"


@pytest.fixture(autouse=True)
def _no_env_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Even a run that forgets --whisperq-cache-dir must not touch the user's cache.
    monkeypatch.setenv("WHISPERQ_CACHE_DIR", str(tmp_path / "env-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def settings_line(result: pytest.RunResult) -> list[str]:
    lines = [line for line in result.outlines if "SETTINGS|" in line]
    assert len(lines) == 1, result.stdout.str()
    return lines[0].split("SETTINGS|", 1)[1].split("|")


def assert_no_traceback(result: pytest.RunResult) -> None:
    text = result.stdout.str() + "\n" + result.stderr.str()
    assert "Traceback" not in text, text
    assert "INTERNALERROR" not in text, text


def assert_usage_error(result: pytest.RunResult, *fragments: str) -> str:
    """Exit code 4, the fragments in one line of stderr, and no traceback."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, (result.ret, result.stdout.str(), result.stderr.str())
    assert_no_traceback(result)
    err_lines = result.stderr.lines
    matching = [line for line in err_lines if all(f in line for f in fragments)]
    assert matching, f"no stderr line contains all of {fragments}:\n" + result.stderr.str()
    return matching[0]


def assert_summary(result: pytest.RunResult, expected: list[str]) -> None:
    """The "whisperq" terminal-summary section holds exactly `expected` (blank lines aside) before the
    release verdict (tests/test_verdict.py)."""
    lines = result.outlines
    headers = [i for i, line in enumerate(lines) if re.fullmatch(r"=+ whisperq =+", line)]
    assert len(headers) == 1, result.stdout.str()
    body = []
    for line in lines[headers[0] + 1:]:
        if line.startswith("===") or line.startswith("release verdict:"):
            break
        if line.strip():
            body.append(line)
    assert body == expected, result.stdout.str()


# --- help ----------------------------------------------------------------------------------------

def test_help_lists_group_options_and_ini_keys(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert result.ret == 0
    out = result.stdout.str()
    assert "pytest-whisperq: release gate for quantized Whisper checkpoints:" in out
    group_start = out.index("pytest-whisperq: release gate")
    for flag in OPTION_FLAGS:
        assert flag in out[group_start:], flag
    ini_section = out[out.index("[pytest] configuration options"):]
    for key, flag in zip(INI_KEYS, OPTION_FLAGS):
        assert re.search(rf"^  {key} \(string\):\s+default for {flag}$", ini_section, re.MULTILINE), key
    # metavars and defaults a user needs are documented
    assert "--whisperq-model=PATH_OR_ID" in out
    assert "--whisperq-batch-size=N" in out


def test_importing_the_plugin_loads_no_heavy_modules() -> None:
    heavy = ("torch", "transformers", "numpy", "scipy", "huggingface_hub", "safetensors", "soundfile",
             "datasets", "jiwer", "filelock")
    code = textwrap.dedent(f"""
        import sys
        import pytest_whisperq.plugin
        print([m for m in {heavy!r} if m in sys.modules])
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_pytest_help_loads_no_heavy_modules(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import contextlib, io, sys
        import pytest
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = pytest.main(["--help"])
        assert "--whisperq-model" in out.getvalue()
        print(code, [m for m in ("torch", "transformers", "numpy") if m in sys.modules])
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert proc.stdout.split() == ["0", "[]"], proc.stdout + proc.stderr


# --- usage errors on the command line -------------------------------------------------------------

def test_bad_device_is_a_usage_error(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--whisperq-device=tpu", cache_arg)
    assert_usage_error(result, "--whisperq-device", "'tpu'")
    result.stdout.no_fnmatch_line("*1 passed*")


def test_zero_batch_size_is_a_usage_error(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--whisperq-batch-size=0", cache_arg)
    assert_usage_error(result, "--whisperq-batch-size", "0", "at least 1")


def test_nonexistent_model_directory_is_a_usage_error(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--whisperq-model=/does/not/exist", cache_arg)
    assert_usage_error(result, "/does/not/exist", "does not exist")


def test_bad_max_wer_is_a_usage_error(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--whisperq-max-wer=101", cache_arg)
    assert_usage_error(result, "--whisperq-max-wer", "101")


def test_cache_dir_that_is_a_file_is_a_usage_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile("def test_x(): pass")
    file = tmp_path / "a-file"
    file.write_text("")
    result = pytester.runpytest(f"--whisperq-cache-dir={file}")
    assert_usage_error(result, "--whisperq-cache-dir", "not a directory")


# --- ini options ------------------------------------------------------------------------------------

def test_ini_values_reach_the_settings_fixture(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makeini("""
        [pytest]
        whisperq_device = cuda
        whisperq_dtype = bfloat16
        whisperq_batch_size = 3
        whisperq_max_wer = 12.5
        whisperq_allow_pickle = true
        whisperq_base = whisper-tiny.en
    """)
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s", cache_arg)
    result.assert_outcomes(passed=1)
    assert settings_line(result) == ["cuda", "bfloat16", "3", "12.5", "True", "whisper-tiny.en", "None"]


def test_pyproject_ini_options_reach_the_settings_fixture(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makepyprojecttoml("""
        [tool.pytest.ini_options]
        whisperq_device = "cpu"
        whisperq_batch_size = "5"
    """)
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s", cache_arg)
    result.assert_outcomes(passed=1)
    assert settings_line(result)[:3] == ["cpu", "auto", "5"]


def test_defaults_without_ini(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s", cache_arg)
    result.assert_outcomes(passed=1)
    assert settings_line(result) == ["auto", "auto", "8", "15.0", "False", "whisper-base", "None"]


def test_command_line_overrides_ini(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makeini("""
        [pytest]
        whisperq_device = cuda
        whisperq_batch_size = 3
    """)
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s", "--whisperq-device=cpu", "--whisperq-batch-size=16", cache_arg)
    result.assert_outcomes(passed=1)
    assert settings_line(result)[:3] == ["cpu", "auto", "16"]


def test_command_line_overrides_a_bad_ini_value(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makeini("""
        [pytest]
        whisperq_device = tpu
    """)
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s", "--whisperq-device=cpu", cache_arg)
    result.assert_outcomes(passed=1)
    assert settings_line(result)[0] == "cpu"


def test_cache_dir_option_reaches_the_settings(pytester: pytest.Pytester, cache_dir: Path, cache_arg: str) -> None:
    pytester.makepyfile("""
        def test_cache(whisperq_settings):
            print("CACHE=" + str(whisperq_settings.cache_dir))
    """)
    result = pytester.runpytest("-s", cache_arg)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*CACHE={cache_dir.resolve()}"])


def test_bad_ini_value_is_a_usage_error_naming_the_key(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makeini("""
        [pytest]
        whisperq_device = tpu
    """)
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(cache_arg)
    assert_usage_error(result, "whisperq_device", "'tpu'")


def test_bad_ini_batch_size_is_a_usage_error_naming_the_key(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makeini("""
        [pytest]
        whisperq_batch_size = lots
    """)
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(cache_arg)
    assert_usage_error(result, "whisperq_batch_size", "'lots'")


def test_relative_ini_paths_are_relative_to_the_ini_file(pytester: pytest.Pytester, cache_arg: str) -> None:
    """A path in the ini file means the same wherever pytest is started (as for pytest's own
    path-valued ini options such as testpaths): here, from a subdirectory of the rootdir."""
    pytester.makeini("""
        [pytest]
        whisperq_data = evaldata
    """)
    (pytester.path / "evaldata").mkdir()
    sub = pytester.mkpydir("sub")
    (sub / "test_show.py").write_text("def test_data(whisperq_settings):\n"
                                      "    print('DATA=' + str(whisperq_settings.data))\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)
        result = pytester.runpytest("-s", cache_arg)
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines([f"*DATA={(pytester.path / 'evaldata').resolve()}"])


# --- no model named -----------------------------------------------------------------------------------

@pytest.fixture
def without_llmcompressor(monkeypatch: pytest.MonkeyPatch) -> None:
    """No model named and nothing to quantize with: the user must name a model."""
    from pytest_whisperq import quantize

    monkeypatch.setattr(quantize, "llmcompressor_available", lambda: False)


@pytest.mark.parametrize("fixture", ["whisperq_model", "whisperq_model_ref"])
@pytest.mark.usefixtures("without_llmcompressor")
def test_model_fixture_without_model_is_a_usage_error(pytester: pytest.Pytester, cache_arg: str, fixture: str) -> None:
    pytester.makepyfile(f"""
        def test_needs_model({fixture}):
            pass

        def test_unrelated():
            pass
    """)
    result = pytester.runpytest(cache_arg)
    assert_usage_error(result, "--whisperq-model")
    assert "no model under test" in result.stderr.str() and "pytest-whisperq[quantize]" in result.stderr.str()
    result.stdout.no_fnmatch_line("*passed*")


@pytest.mark.usefixtures("without_llmcompressor")
def test_model_fixture_used_indirectly_without_model_is_a_usage_error(pytester: pytest.Pytester,
                                                                      cache_arg: str) -> None:
    pytester.makeconftest("""
        import pytest

        @pytest.fixture
        def my_model(whisperq_model):
            return whisperq_model
    """)
    pytester.makepyfile("def test_needs_model(my_model): pass")
    result = pytester.runpytest(cache_arg)
    assert_usage_error(result, "--whisperq-model")


def test_unrelated_suite_runs_without_any_whisperq_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        def test_a():
            assert 1 + 1 == 2

        def test_b(tmp_path):
            assert tmp_path.is_dir()

        @pytest.mark.parametrize("n", [1, 2])
        def test_c(n):
            assert n

        def test_d():
            assert False, "ordinary failure"
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=4, failed=1)
    out = result.stdout.str()
    assert "whisperq:" not in out  # no report header
    result.stdout.no_fnmatch_line("*= whisperq =*")  # no summary section
    assert result.stderr.str().strip() == ""


def test_settings_fixture_works_without_a_model(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s", cache_arg)
    result.assert_outcomes(passed=1)
    assert settings_line(result)[-1] == "None"


def test_report_header_names_the_model(pytester: pytest.Pytester, cache_dir: Path, cache_arg: str) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--whisperq-model=whisper-tiny.en", "--whisperq-device=cpu", cache_arg)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        f"whisperq: model=whisper-tiny.en base=whisper-base backend=transformers device=cpu dtype=auto "
        f"cache={cache_dir.resolve()}",
    ])
    assert not cache_dir.exists()  # naming a model does not download or build anything by itself


# --- whisperq_check -------------------------------------------------------------------------------------

CHECK_TEST = """
    from pytest_whisperq.results import CheckResult

    def test_check(whisperq_check):
        whisperq_check(CheckResult(name="x", ok={ok}, observed=3, limit=1, detail="why", evidence=["tensor a"]))
"""


def test_failed_check_fails_with_figures_and_evidence(pytester: pytest.Pytester, cache_arg: str) -> None:
    test_file = pytester.makepyfile(CHECK_TEST.format(ok=False))
    result = pytester.runpytest(cache_arg)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    for fragment in ("FAIL x", "observed 3", "limit 1", "why", "tensor a"):
        assert fragment in out, fragment
    result.stdout.fnmatch_lines(["*FAIL x: observed 3, limit 1*"])
    # the failure is the check's description, not a traceback through the plugin
    assert "plugin.py" not in out
    assert "pytest_whisperq" not in out.replace("from pytest_whisperq.results", "")
    assert "Traceback" not in out
    # the failed result is recorded in the summary too
    assert_summary(result, [f"FAIL x 3 (limit 1)  [{test_file.name}::test_check]", "    why"])


def test_passed_check_passes_and_is_summarised(pytester: pytest.Pytester, cache_arg: str) -> None:
    test_file = pytester.makepyfile(CHECK_TEST.format(ok=True))
    result = pytester.runpytest(cache_arg)
    result.assert_outcomes(passed=1)
    assert_summary(result, [f"PASS x 3 (limit 1)  [{test_file.name}::test_check]", "    why"])
    assert "FAIL" not in result.stdout.str()


def test_check_returns_its_result_and_summary_keeps_order(pytester: pytest.Pytester, cache_arg: str) -> None:
    test_file = pytester.makepyfile("""
        from pytest_whisperq.results import CheckResult

        def test_one(whisperq_check):
            result = CheckResult(name="first", ok=True, observed=0.5, limit=2.0, unit="%")
            assert whisperq_check(result) is result

        def test_two(whisperq_check):
            whisperq_check(CheckResult(name="second", ok=True))
    """)
    result = pytester.runpytest(cache_arg)
    result.assert_outcomes(passed=2)
    assert_summary(result, [
        f"PASS first 0.5% (limit 2.0%)  [{test_file.name}::test_one]",
        f"PASS second  [{test_file.name}::test_two]",
    ])


def test_no_summary_section_without_checks(pytester: pytest.Pytester, cache_arg: str) -> None:
    pytester.makepyfile("def test_x(whisperq_settings): pass")
    result = pytester.runpytest(cache_arg)
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*= whisperq =*")


# --- local model directories -------------------------------------------------------------------------

MODEL_REF_TEST = """
    def test_ref(whisperq_model_ref):
        print("RESOLVED=" + str(whisperq_model_ref.path))
"""


def test_local_directory_without_config_json(pytester: pytest.Pytester, tmp_path: Path, cache_dir: Path,
                                             cache_arg: str) -> None:
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"")
    pytester.makepyfile(MODEL_REF_TEST)
    result = pytester.runpytest("-s", f"--whisperq-model={checkpoint}", cache_arg)
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "config.json" in out
    assert "CheckpointError" in out
    assert str(checkpoint) in out
    assert "RESOLVED=" not in out
    assert "plugin.py" not in out and "resolve.py" not in out and "Traceback" not in out
    assert not (cache_dir / "models").exists()


def test_local_directory_with_only_pickled_weights(pytester: pytest.Pytester, tmp_path: Path,
                                                   cache_arg: str) -> None:
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    (checkpoint / "pytorch_model.bin").write_bytes(b"not really a pickle")
    pytester.makepyfile(MODEL_REF_TEST)
    result = pytester.runpytest("-s", f"--whisperq-model={checkpoint}", cache_arg)
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "pickled weights" in out
    assert "pytorch_model.bin" in out
    assert "--whisperq-allow-pickle" in out
    assert "RESOLVED=" not in out
    assert "Traceback" not in out


def test_allow_pickle_accepts_pickled_weights(pytester: pytest.Pytester, tmp_path: Path, cache_arg: str) -> None:
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    # a real torch pickle, made in another process: pytester unloads what a test imports, and torch
    # cannot be imported twice in one process (the same holds for the run, hence runpytest_subprocess)
    subprocess.run([sys.executable, "-c", "import sys, torch; torch.save({'proj_out.weight': torch.zeros(2, 2)}, "
                    "sys.argv[1])", str(checkpoint / "pytorch_model.bin")], check=True)
    pytester.makepyfile(MODEL_REF_TEST)
    result = pytester.runpytest_subprocess("-s", f"--whisperq-model={checkpoint}", "--whisperq-allow-pickle", cache_arg)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*RESOLVED={checkpoint.resolve()}"])


def test_local_directory_of_another_model_type(pytester: pytest.Pytester, tmp_path: Path, cache_arg: str) -> None:
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (checkpoint / "model.safetensors").write_bytes(b"")
    pytester.makepyfile(MODEL_REF_TEST)
    result = pytester.runpytest(f"--whisperq-model={checkpoint}", cache_arg)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*model_type 'bert', expected 'whisper'*"])


def test_resolution_failure_is_reported_once_per_test(pytester: pytest.Pytester, tmp_path: Path,
                                                      cache_arg: str) -> None:
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    pytester.makepyfile("""
        def test_a(whisperq_model_ref): pass
        def test_b(whisperq_model_ref): pass
        def test_c(): pass
    """)
    result = pytester.runpytest(f"--whisperq-model={checkpoint}", cache_arg)
    result.assert_outcomes(passed=1, errors=2)
    assert result.stdout.str().count("no config.json") >= 2
