"""The server backends as a user runs them: pytest with --whisperq-backend=vllm-server (a stand-in
`vllm` package here; the real one in tests/test_vllm.py) or =openai with an endpoint URL."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests_support import gone

pytest_plugins = ["pytester"]
FAKE = Path(__file__).with_name("fake_openai_server.py")

TEST_FILE = """
from pytest_whisperq.data import silence_clips

def test_transcribes(whisperq_model, whisperq_transcribe):
    hypotheses = whisperq_transcribe(whisperq_model, silence_clips())
    assert [h.text for h in hypotheses] == ["hello world"] * len(silence_clips())
    assert whisperq_model.name == "{backend}"
"""


@pytest.fixture
def fake_vllm_python(tmp_path: Path) -> Path:
    """An executable that runs this Python with a `vllm` package whose server module is the fake server."""
    package = tmp_path / "fake-vllm" / "vllm" / "entrypoints" / "openai"
    package.mkdir(parents=True)
    for folder in (package, package.parent):
        (folder / "__init__.py").write_text("")
    (package.parent.parent / "__init__.py").write_text('__version__ = "0.0.0+fake"\n')  # no metadata: the probe imports it
    (package / "api_server.py").write_text(FAKE.read_text())
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{tmp_path / "fake-vllm"}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def run(pytester: pytest.Pytester, cache: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--whisperq-model=whisper-tiny.en", "--whisperq-base=whisper-tiny.en",
                                         f"--whisperq-cache-dir={cache}", "-p", "no:cacheprovider", *args)


def test_vllm_server_backend_starts_serves_and_stops_with_the_session(pytester, fake_vllm_python, whisper_tiny_en_dir,
                                                                      tmp_path, monkeypatch):
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("FAKE_SERVER_PIDFILE", str(pidfile))
    pytester.makepyfile(TEST_FILE.format(backend="vllm-server"))
    result = run(pytester, whisper_tiny_en_dir.parents[1], "--whisperq-backend=vllm-server",
                 f"--whisperq-vllm-python={fake_vllm_python}")
    result.assert_outcomes(passed=1)
    [pid] = [int(line) for line in pidfile.read_text().split()]
    assert gone(pid), "the server outlived the pytest session"
    # tiny.en is English-only: a vLLM server prompts it with tokens it never saw, and the run says so
    result.stdout.fnmatch_lines(["whisperq: whisper-tiny.en* is English-only Whisper, and vLLM's transcription endpoint "
                                 "prompts every model with language and task tokens * Gate it with "
                                 "--whisperq-backend=vllm (in-process, which builds the English-only prompt) or "
                                 "transformers"])


BOTH_ROLES = """
import os

from pytest_whisperq.data import silence_clips

def test_base(whisperq_base, whisperq_transcribe):
    assert len(whisperq_transcribe(whisperq_base, silence_clips())) == len(silence_clips())
    assert not os.environ.get("FAIL_THE_BASE_TEST"), "failed on purpose"

def test_model(whisperq_model, whisperq_transcribe):
    assert len(whisperq_transcribe(whisperq_model, silence_clips())) == len(silence_clips())
"""


@pytest.mark.parametrize("case", ["both", "the model alone", "stopped at the first failure"])
def test_base_and_model_servers_start_together_and_all_stop(pytester, fake_vllm_python, whisper_tiny_en_dir, tmp_path,
                                                           monkeypatch, case):
    """Two checkpoints on vllm-server: asking for the base starts the model's server too, in the background,
    so both load at once (a server takes a minute or more to start); not when no selected test needs the
    other role; and one still starting when -x ends the run is stopped, not waited for."""
    import shutil

    model = shutil.copytree(whisper_tiny_en_dir, tmp_path / "whisper-tiny.en-copy")
    pidfile, starts = tmp_path / "pids", tmp_path / "starts"
    monkeypatch.setenv("FAKE_SERVER_PIDFILE", str(pidfile))
    monkeypatch.setenv("FAKE_SERVER_STARTS", str(starts))
    monkeypatch.setenv("FAKE_SERVER_STARTUP_SECONDS", "3")
    args = {"both": [], "the model alone": ["-k", "test_model"], "stopped at the first failure": ["-x"]}[case]
    if case == "stopped at the first failure":
        monkeypatch.setenv("FAIL_THE_BASE_TEST", "1")
        monkeypatch.setenv("FAKE_SERVER_SLOW_MODEL", model.name)  # still loading when the base's test fails
    pytester.makepyfile(BOTH_ROLES)
    result = pytester.runpytest_subprocess(
        f"--whisperq-model={model}", "--whisperq-base=whisper-tiny.en", f"--whisperq-cache-dir={whisper_tiny_en_dir.parents[1]}",
        "-p", "no:cacheprovider", "--whisperq-backend=vllm-server", f"--whisperq-vllm-python={fake_vllm_python}", *args)
    events = [line.split() for line in starts.read_text().splitlines()]
    began = [(float(t), Path(m).name) for what, t, m in events if what == "began"]
    ready = {Path(m).name: float(t) for what, t, m in events if what == "ready"}
    base = whisper_tiny_en_dir.name
    if case == "the model alone":
        result.assert_outcomes(passed=1, deselected=1)
        assert [name for _, name in began] == [model.name], events
    else:
        assert sorted(name for _, name in began) == sorted([base, model.name]), events  # each server once
        began_at = dict((name, t) for t, name in began)
        assert began_at[model.name] < ready[base], "the model's server waited for the base's to be ready"
    if case == "both":
        result.assert_outcomes(passed=2)
    if case == "stopped at the first failure":
        result.assert_outcomes(failed=1)
        assert model.name not in ready, "the run waited for a server nobody asked for"
    for pid in (int(line) for line in pidfile.read_text().split()):
        assert gone(pid), "a server outlived the pytest session"


def test_a_vllm_server_that_cannot_start_fails_the_tests_with_its_log(pytester, fake_vllm_python, whisper_tiny_en_dir,
                                                                      monkeypatch):
    monkeypatch.setenv("FAKE_SERVER_MODE", "exit")
    pytester.makepyfile(TEST_FILE.format(backend="vllm-server"))
    result = run(pytester, whisper_tiny_en_dir.parents[1], "--whisperq-backend=vllm-server",
                 f"--whisperq-vllm-python={fake_vllm_python}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*BackendError: vLLM server for whisper-tiny.en * exited with status 3 before it was ready*",
                                 "*cannot load the model: no such file*"])


def test_a_python_without_vllm_is_named_in_the_error(pytester, whisper_tiny_en_dir):
    pytester.makepyfile(TEST_FILE.format(backend="vllm-server"))
    result = run(pytester, whisper_tiny_en_dir.parents[1], "--whisperq-backend=vllm-server",
                 f"--whisperq-vllm-python={sys.executable}", "--whisperq-startup-timeout=60")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*is vllm installed there? see --whisperq-vllm-python*", "*No module named*vllm*"])


def test_openai_backend_uses_the_given_endpoints(pytester, whisper_tiny_en_dir, tmp_path):
    from pytest_whisperq.backends.server import LOOPBACK, ServerProcess, free_port

    port = free_port()
    server = ServerProcess("endpoint", [sys.executable, str(FAKE), str(port), "ok"], f"http://{LOOPBACK}:{port}/health",
                           tmp_path / "endpoint.log")
    server.start()
    try:
        url = f"http://{LOOPBACK}:{port}/v1"
        pytester.makepyfile(TEST_FILE.format(backend="openai"))
        result = run(pytester, whisper_tiny_en_dir.parents[1], "--whisperq-backend=openai",
                     f"--whisperq-server-url={url}", f"--whisperq-base-server-url={url}")
        result.assert_outcomes(passed=1)
        missing = run(pytester, whisper_tiny_en_dir.parents[1], "--whisperq-backend=openai")
        missing.assert_outcomes(errors=1)
        missing.stdout.fnmatch_lines(["*--whisperq-backend=openai needs --whisperq-server-url*"])
    finally:
        server.stop()
    assert os.path.exists(server.log_path)


def test_each_request_names_its_utterance_s_language_and_detection_sends_none(whisper_tiny_en_dir, tmp_path):
    """Per-utterance languages reach the endpoint; language identification leaves the field out and reads
    verbose_json's language, a name (OpenAI) or a code (vLLM)."""
    import numpy as np

    from pytest_whisperq.backends.openai_server import OpenAIServerBackend
    from pytest_whisperq.backends.server import LOOPBACK, ServerProcess, free_port
    from pytest_whisperq.data import Utterance
    from pytest_whisperq.models.resolve import ResolvedModel
    from pytest_whisperq.models.spec import parse_model_spec

    port = free_port()
    server = ServerProcess("endpoint", [sys.executable, str(FAKE), str(port), "echo-language"],
                           f"http://{LOOPBACK}:{port}/health", tmp_path / "endpoint.log")
    server.start()
    try:
        model = ResolvedModel(parse_model_spec(str(whisper_tiny_en_dir)), whisper_tiny_en_dir)
        backend = OpenAIServerBackend(model, f"http://{LOOPBACK}:{port}/v1", "whisper", concurrency=2)
        noise = np.random.default_rng(0).standard_normal(40 * 16000).astype(np.float32) * 0.1  # 40 s: sent whole
        utterances = [Utterance(f"u{i}", "s", "x", noise, "real", language) for i, language in enumerate(["es", "fr", "ru"])]
        assert [h.text for h in backend.transcribe(utterances)] == ["es", "fr", "ru"]
        assert backend.detect_languages(utterances) == ["fr", "fr", "fr"]
    finally:
        server.stop()


def test_the_in_process_vllm_backend_without_vllm_says_what_to_do(whisper_tiny_en_dir):
    import importlib.util

    from pytest_whisperq.backends.vllm_offline import VllmBackend
    from pytest_whisperq.errors import BackendError
    from pytest_whisperq.models.resolve import ResolvedModel
    from pytest_whisperq.models.spec import parse_model_spec

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here: the error path cannot be shown")  # never the case in .ci/run
    with pytest.raises(BackendError, match=r"needs vLLM in this Python environment.*--whisperq-backend=vllm-server"):
        VllmBackend(ResolvedModel(parse_model_spec("whisper-tiny.en"), whisper_tiny_en_dir))


def test_only_an_english_only_checkpoint_gets_the_vllm_server_caveat(whisper_tiny_en_dir, whisper_base_dir):
    """The caveat the session adds to its notes: for whisper-tiny.en (English-only), not for whisper-base."""
    from pytest_whisperq.backends.vllm_server import VllmServerBackend
    from pytest_whisperq.models.resolve import ResolvedModel
    from pytest_whisperq.models.spec import parse_model_spec

    def caveats(path):
        return VllmServerBackend(ResolvedModel(parse_model_spec(str(path)), path), "http://127.0.0.1:1/v1", "whisper",
                                 engine={"vllm": "0.32"}).caveats

    [caveat] = caveats(whisper_tiny_en_dir)
    assert "is English-only Whisper" in caveat and "--whisperq-backend=vllm" in caveat
    assert caveats(whisper_base_dir) == ()
