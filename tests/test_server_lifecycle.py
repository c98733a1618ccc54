"""The server subprocess: started, waited for, and always stopped; a server that fails to start,
never gets healthy, dies mid-run or answers errors gives a clear error and no hang."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pytest_whisperq.backends.openai_server import OpenAIServerBackend
from pytest_whisperq.backends.server import LOOPBACK, ServerProcess, free_port
from pytest_whisperq.data import Utterance
from pytest_whisperq.errors import BackendError
from pytest_whisperq.models.resolve import ResolvedModel
from pytest_whisperq.models.spec import parse_model_spec

from tests_support import gone

FAKE = Path(__file__).with_name("fake_openai_server.py")


def fake_server(tmp_path: Path, mode: str, startup_timeout: float = 20.0) -> ServerProcess:
    port = free_port()
    return ServerProcess(f"fake server ({mode})", [sys.executable, str(FAKE), str(port), mode],
                         f"http://{LOOPBACK}:{port}/health", tmp_path / f"{mode}.log", startup_timeout=startup_timeout)


def pid_of(server: ServerProcess) -> int:
    return server.process.pid


def backend_for(server: ServerProcess, whisper_tiny_en_dir: Path, retries: int = 1,
                request_timeout: float = 10) -> OpenAIServerBackend:
    url = server.health_url.removesuffix("/health") + "/v1"
    model = ResolvedModel(parse_model_spec(str(whisper_tiny_en_dir)), whisper_tiny_en_dir)
    return OpenAIServerBackend(model, url, "whisper", concurrency=4, request_timeout=request_timeout, retries=retries,
                               server=server)


def clips(count: int) -> list[Utterance]:
    return [Utterance(f"u{i}", "s", "hello world", np.zeros(8000, np.float32)) for i in range(count)]


def test_a_healthy_server_transcribes_and_is_stopped_with_its_process_group(tmp_path, whisper_tiny_en_dir):
    server = fake_server(tmp_path, "ok")
    server.start()
    pid = pid_of(server)
    hypotheses = backend_for(server, whisper_tiny_en_dir).transcribe(clips(6))
    assert [h.text for h in hypotheses] == ["hello world"] * 6
    assert all(h.tokens and h.batch_seconds > 0 and h.batch_size == 1 for h in hypotheses)
    server.stop()
    assert not server.alive() and gone(pid)
    server.stop()  # twice is harmless


def test_a_server_that_exits_at_start_says_why_at_once(tmp_path):
    server = fake_server(tmp_path, "exit")
    began = time.monotonic()
    with pytest.raises(BackendError, match=r"(?s)exited with status 3 before it was ready.*cannot load the model: no such file"):
        server.start()
    assert time.monotonic() - began < 15


def test_a_server_that_never_gets_healthy_is_stopped_after_the_startup_limit(tmp_path):
    server = fake_server(tmp_path, "never-ready", startup_timeout=3)
    with pytest.raises(BackendError, match=r"was not healthy at http://127.0.0.1:\d+/health within 3 s and was stopped"):
        server.start()
    assert server.process is None  # stopped, not left running


def test_a_server_that_ignores_sigterm_is_killed(tmp_path):
    server = fake_server(tmp_path, "ignore-term")
    server.start()
    pid = pid_of(server)
    began = time.monotonic()
    server.stop(grace=1.0)
    assert gone(pid) and time.monotonic() - began < 10


def test_a_server_that_dies_mid_run_is_a_clear_error_not_a_hang(tmp_path, whisper_tiny_en_dir):
    server = fake_server(tmp_path, "die-after-3")
    server.start()
    began = time.monotonic()
    with pytest.raises(BackendError, match=r"(?s)died \(exit status 9\).*dying on purpose|no answer from .* after 2 attempts"):
        backend_for(server, whisper_tiny_en_dir).transcribe(clips(12))
    assert time.monotonic() - began < 30
    server.stop()


def test_an_http_error_is_reported_and_not_retried(tmp_path, whisper_tiny_en_dir):
    server = fake_server(tmp_path, "http-500")
    server.start()
    try:
        with pytest.raises(BackendError, match=r"(?s)u0: .* answered HTTP 500: .*the engine is overloaded.*"
                                               r"the server's log says:\nRuntimeError: the engine is overloaded"):
            backend_for(server, whisper_tiny_en_dir).transcribe(clips(1))
        requests = [line for line in server.log_path.read_text().splitlines() if "POST" in line]
        assert len(requests) == 1  # a failed answer is the server's verdict: no retry
    finally:
        server.stop()


def test_a_missing_python_is_a_clear_error(tmp_path):
    server = ServerProcess("vLLM server", [str(tmp_path / "no-python"), "-m", "vllm"], "http://127.0.0.1:1/health",
                           tmp_path / "x.log")
    with pytest.raises(BackendError, match=r"vLLM server: could not run .*no-python"):
        server.start()


def test_a_server_that_hangs_mid_run_times_out_within_the_limits_and_is_stopped(tmp_path, whisper_tiny_en_dir):
    server = fake_server(tmp_path, "hang-after-2")
    server.start()
    pid = pid_of(server)
    began = time.monotonic()
    try:
        with pytest.raises(BackendError, match=r"u\d+: no answer from .* after 2 attempts \(ReadTimeout: .*each waits at "
                                               r"most --whisperq-request-timeout=2 s\)"):
            backend_for(server, whisper_tiny_en_dir, retries=1, request_timeout=2).transcribe(clips(6))
        # 2 attempts of at most 2 s each, a pause between them, and the other requests in flight alongside
        assert time.monotonic() - began < 15
    finally:
        server.stop(grace=2)
    assert gone(pid)


def transcribed_by(tmp_path: Path, mode: str, model_dir: Path, count: int):
    server = fake_server(tmp_path, mode)
    server.start()
    try:
        return backend_for(server, model_dir, retries=2).transcribe(clips(count))
    finally:
        server.stop()


def test_a_dropped_connection_is_retried_and_counted(tmp_path, whisper_tiny_en_dir):
    hypotheses = transcribed_by(tmp_path, "drop-first", whisper_tiny_en_dir, 1)
    assert [h.text for h in hypotheses] == ["hello world"]
    assert hypotheses[0].attempts == 2
    assert hypotheses[0].batch_seconds >= 0.5  # the latency includes the failed attempt and the pause after it


def test_a_retried_request_makes_the_throughput_measurement_fail(tmp_path, whisper_tiny_en_dir):
    """A retry hides a faltering server: the run's figures are refused, not kept or measured again."""
    from pytest_whisperq.checks.throughput import Throughput, check_measured

    hypotheses = transcribed_by(tmp_path, "drop-first", whisper_tiny_en_dir, 4)
    result = check_measured(Throughput("model", "openai", 4, len(hypotheses), 1.0, 8.0, 8, tuple(h.batch_seconds for h in hypotheses),
                                       retried=sum(h.attempts > 1 for h in hypotheses)))
    assert not result.ok
    assert "1 of 4 requests needed a transport retry" in result.detail


def test_an_answer_that_is_not_a_transcript_is_an_error_not_retried(tmp_path, whisper_tiny_en_dir):
    server = fake_server(tmp_path, "garbage")
    server.start()
    try:
        with pytest.raises(BackendError, match=r"u0: .* answered without a transcript: <html>proxy error</html>"):
            backend_for(server, whisper_tiny_en_dir, retries=2).transcribe(clips(1))
        assert sum("POST" in line for line in server.log_path.read_text().splitlines()) == 1
    finally:
        server.stop()
