"""Progress of long work: the task arithmetic on a fake clock, and what a user sees in a real pytest run."""

from __future__ import annotations

import pytest

from pytest_whisperq import progress

pytest_plugins = ["pytester"]


class Recorder:
    def __init__(self, live: bool) -> None:
        self.live = live
        self.shown: list[str] = []
        self.finished: list[str] = []

    def show(self, text: str) -> None:
        self.shown.append(text)

    def finish(self, text: str) -> None:
        self.finished.append(text)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    yield Clock()
    progress.configure(None)


def test_a_counted_task_shows_n_of_total_rate_and_eta_on_the_live_line(clock):
    sink = Recorder(live=True)
    progress.configure(sink, clock)
    with progress.task("transcribing with whisper-base (transformers)", total=100, unit="utterances"):
        clock.now += 10
        progress.advance(20)
        clock.now += 0.1
        progress.advance(8)  # within the refresh interval: not redrawn
        clock.now += 10
        progress.advance(20)
    assert sink.shown == [
        "whisperq: transcribing with whisper-base (transformers): 0/100 utterances",
        "whisperq: transcribing with whisper-base (transformers): 20/100 utterances, 2.00/s, ETA 40s",
        "whisperq: transcribing with whisper-base (transformers): 48/100 utterances, 2.39/s, ETA 22s",
    ]
    assert sink.finished == ["whisperq: transcribing with whisper-base (transformers): done (48/100 utterances, 20s)"]


def test_plain_lines_come_at_most_every_thirty_seconds(clock):
    sink = Recorder(live=False)
    progress.configure(sink, clock)
    with progress.task("timing throughput", total=600, unit="requests"):
        for _ in range(60):
            clock.now += 1
            progress.advance(10)
    assert len(sink.shown) == 3  # at the start, after 30 s, after 60 s
    assert sink.shown[-1] == "whisperq: timing throughput: 600/600 requests, 10.00/s"
    assert sink.finished == ["whisperq: timing throughput: done (600/600 requests, 1m00s)"]


def test_a_delayed_task_that_ends_quickly_says_nothing(clock):
    """A cache hit: the transcription task opens and closes without a batch, and the terminal stays quiet."""
    sink = Recorder(live=True)
    progress.configure(sink, clock)
    with progress.task("transcribing", total=492, unit="utterances", delay=1.0):
        clock.now += 0.5
        progress.advance(8)
    assert sink.shown == [] and sink.finished == []


def test_work_without_a_count_shows_its_elapsed_time_and_a_failure_says_stopped(clock):
    sink = Recorder(live=True)
    progress.configure(sink, clock)
    with pytest.raises(RuntimeError), progress.task("starting the vLLM server for whisper-base"):
        clock.now += 75
        progress.advance(0)
        raise RuntimeError("died")
    assert sink.shown[-1] == "whisperq: starting the vLLM server for whisper-base: 1m15s"
    assert sink.finished == ["whisperq: starting the vLLM server for whisper-base: stopped (1m15s)"]


def test_work_that_cannot_count_itself_still_shows_it_is_alive_while_it_is_the_innermost_task():
    """GPTQ runs inside llm-compressor, with nothing to count: a thread shows its elapsed time as it goes,
    but never over an inner task's line (a download inside a build)."""
    import threading
    import time

    sink = Recorder(live=True)
    progress.configure(sink, live_every=0.01)
    try:
        with progress.task("quantizing whisper-base"):
            deadline = time.monotonic() + 5
            while len(sink.shown) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(sink.shown) >= 3 and all(line.startswith("whisperq: quantizing whisper-base: ") for line in sink.shown)
            with progress.task("downloading a wheel", total=2, unit="files"):
                before = len(sink.shown)
                time.sleep(0.2)
                assert all("quantizing" not in line for line in sink.shown[before:])
        assert not [t for t in threading.enumerate() if t.name == "whisperq-progress"]  # stopped with its task
        assert sink.finished[-1].startswith("whisperq: quantizing whisper-base: done (")
    finally:
        progress.configure(None)


def test_nested_tasks_count_into_the_innermost_and_nothing_counts_outside_one(clock):
    sink = Recorder(live=True)
    progress.configure(sink, clock)
    progress.advance(5)  # no task open: nothing happens
    with progress.task("outer", total=10, unit="x") as outer:
        with progress.task("inner", total=4, unit="y") as inner:
            progress.advance(4)
        progress.advance(1)
    assert (outer.done, inner.done) == (1, 4)


SLOW_TEST = """
import time
from pytest_whisperq import progress

def test_long_work():
    with progress.task("building a model", total=3, unit="steps"):
        for _ in range(3):
            time.sleep(0.05)
            progress.advance()
"""


def test_a_real_run_prints_plain_progress_lines_when_not_on_a_terminal(pytester):
    pytester.makepyfile(SLOW_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["whisperq: building a model: 0/3 steps",
                                 "whisperq: building a model: done (3/3 steps, 0s)"])
    assert "\r" not in result.stdout.str()


def test_quiet_runs_show_no_progress(pytester):
    pytester.makepyfile(SLOW_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
    assert "whisperq:" not in result.stdout.str()


def test_xdist_workers_show_no_progress(pytester):
    pytester.makepyfile(SLOW_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=1)
    assert "building a model" not in result.stdout.str()


def test_on_a_terminal_the_line_is_rewritten_in_place(pytester):
    """Run pytest in-process with a terminal writer that says it is a tty: the progress is \\r-rewritten, and
    the last state is left on its own line."""
    pytester.makeconftest("""
import pytest

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    reporter.isatty = type(reporter.isatty)(True)
""")
    pytester.makepyfile(SLOW_TEST)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-s")
    assert result.ret == 0
    lines = result.stdout.lines  # pytester splits at "\r" as at "\n": a rewritten line is a line here
    start = lines.index(next(line for line in lines if line.startswith("whisperq: building a model: 0/3")))
    assert lines[start].rstrip() == "whisperq: building a model: 0/3 steps" and lines[start].endswith("  ")
    assert lines[start + 1].rstrip() == "whisperq: building a model: done (3/3 steps, 0s)"
