"""The content-addressed cache: same inputs reuse, other inputs rebuild, failures leave nothing."""

from __future__ import annotations

import threading

import pytest

from pytest_whisperq.cache import Cache, content_key, is_complete, safe_name


def test_same_inputs_build_once_and_other_inputs_build_again(tmp_path):
    cache, calls = Cache(tmp_path), []

    def build(directory):
        calls.append(directory)
        (directory / "x").write_text("payload")

    first = cache.get_or_build("models", "m", {"a": 1}, build)
    again = cache.get_or_build("models", "m", {"a": 1}, build)
    other = cache.get_or_build("models", "m", {"a": 2}, build)
    assert first == again != other
    assert len(calls) == 2 and (first / "x").read_text() == "payload"


def test_failed_build_leaves_no_entry_and_is_retried(tmp_path):
    cache = Cache(tmp_path)

    def broken(directory):
        (directory / "half").write_text("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cache.get_or_build("models", "m", {"a": 1}, broken)
    entry = cache.entry_dir("models", "m", {"a": 1})
    assert not entry.exists() and not list(entry.parent.glob(".tmp-*"))
    built = cache.get_or_build("models", "m", {"a": 1}, lambda d: (d / "ok").write_text("1"))
    assert is_complete(built)


def test_directory_without_manifest_is_not_trusted(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.entry_dir("models", "m", {"a": 1})
    entry.mkdir(parents=True)
    (entry / "stale").write_text("from a killed run of an older version")
    built = cache.get_or_build("models", "m", {"a": 1}, lambda d: (d / "fresh").write_text("1"))
    assert not (built / "stale").exists() and (built / "fresh").exists()


def test_parallel_builders_build_once(tmp_path):
    cache, calls, barrier = Cache(tmp_path), [], threading.Barrier(4)

    def build(directory):
        calls.append(1)
        (directory / "x").write_text("1")

    def worker():
        barrier.wait()
        cache.get_or_build("models", "m", {"a": 1}, build)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/path", "org/name@main", "..", ""])
def test_names_cannot_leave_the_cache(tmp_path, name):
    cache = Cache(tmp_path)
    entry = cache.entry_dir("models", name, {})
    assert cache.root in entry.parents and "/" not in safe_name(name)


def test_content_key_is_order_independent():
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})


def test_parallel_processes_build_once(tmp_path):
    """As pytest-xdist workers would: separate processes, one build."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from pytest_whisperq.cache import Cache

        def build(directory):
            with open({str(tmp_path / 'builds.log')!r}, "a") as log:
                log.write("built\\n")
            time.sleep(1.0)
            (directory / "x").write_text("1")

        print(Cache(Path({str(tmp_path / 'cache')!r})).get_or_build("quantized", "m", {{"a": 1}}, build))
    """)
    workers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    paths = {worker.communicate(timeout=60)[0].strip() for worker in workers}
    assert all(worker.returncode == 0 for worker in workers)
    assert len(paths) == 1 and (tmp_path / "builds.log").read_text() == "built\n"


def test_a_build_killed_midway_leaves_nothing_trusted_and_the_next_run_builds(tmp_path):
    """SIGKILL (no cleanup runs) while the entry is half written and its lock is held."""
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from pytest_whisperq.cache import Cache

        def build(directory):
            (directory / "weights").write_text("half of the")
            Path({str(tmp_path / 'started')!r}).write_text("")
            time.sleep(60)
            (directory / "weights").write_text("whole weights")

        Cache(Path({str(tmp_path / 'cache')!r})).get_or_build("quantized", "m", {{"a": 1}}, build)
    """)
    builder = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert builder.poll() is None and time.monotonic() < deadline, "the builder never started"
        time.sleep(0.1)
    builder.send_signal(signal.SIGKILL)
    builder.wait(timeout=10)

    cache = Cache(tmp_path / "cache")
    final = cache.entry_dir("quantized", "m", {"a": 1})
    assert not final.exists() and not is_complete(final)
    assert [p.name for p in final.parent.glob(".tmp-*")]  # the half-written entry, under a temporary name

    began = time.monotonic()  # the dead builder's lock is released by the kernel: no wait
    entry = cache.get_or_build("quantized", "m", {"a": 1}, lambda d: (d / "weights").write_text("whole weights"))
    assert time.monotonic() - began < 5
    assert entry == final and (entry / "weights").read_text() == "whole weights"
    assert not list(final.parent.glob(".tmp-*"))  # the leftover was removed


# --- transcripts: one cached entry per utterance -------------------------------------------------------------

class CountingBackend:
    """Transcribes an utterance as its language and first sample, and remembers what it was asked for."""

    name = "counting"
    cacheable = True

    def __init__(self, checkpoint):
        from types import SimpleNamespace

        self.model = SimpleNamespace(path=checkpoint, label="counting")
        self.asked: list[list[str]] = []

    def identity(self):
        return {"backend": self.name}

    def transcribe(self, utterances):
        from pytest_whisperq.backends import Hypothesis

        self.asked.append([u.id for u in utterances])
        return [Hypothesis(u.id, f"{u.language} {u.audio[0]:.1f}", (1, 2), 0.5, len(utterances)) for u in utterances]


def _utterance(uid, value, language="en"):
    import numpy as np

    from pytest_whisperq.data import Utterance

    return Utterance(uid, "s", "reference", np.full(1600, value, dtype=np.float32), language=language)


@pytest.fixture
def counting(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    return Cache(tmp_path / "cache"), CountingBackend(checkpoint)


def test_a_data_set_sharing_utterances_with_an_earlier_one_transcribes_only_the_new_ones(counting):
    from pytest_whisperq.transcript_cache import cached_transcribe

    cache, backend = counting
    first = [_utterance("a", 1.0), _utterance("b", 2.0)]
    hypotheses, reused = cached_transcribe(cache, backend, first)
    assert reused == 0 and [h.text for h in hypotheses] == ["en 1.0", "en 2.0"]
    # a superset, in another order, one utterance renamed: the audio and language decide, never the id
    later = [_utterance("c", 3.0), _utterance("renamed-a", 1.0), _utterance("b", 2.0), _utterance("b-fr", 2.0, "fr")]
    hypotheses, reused = cached_transcribe(cache, backend, later)
    assert reused == 2 and backend.asked == [["a", "b"], ["c", "b-fr"]]
    assert [(h.id, h.text) for h in hypotheses] == [("c", "en 3.0"), ("renamed-a", "en 1.0"), ("b", "en 2.0"),
                                                    ("b-fr", "fr 2.0")]
    assert cached_transcribe(cache, backend, later)[1] == 4 and len(backend.asked) == 2


def test_another_checkpoint_or_decoding_is_another_store(counting):
    from pytest_whisperq.transcript_cache import cached_transcribe

    cache, backend = counting
    data = [_utterance("a", 1.0)]
    cached_transcribe(cache, backend, data)
    (backend.model.path / "config.json").write_text('{"d_model": 8}')
    assert cached_transcribe(cache, backend, data)[1] == 0
    backend.identity = lambda: {"backend": "counting", "dtype": "float16"}
    assert cached_transcribe(cache, backend, data)[1] == 0 and len(backend.asked) == 3


def test_a_damaged_transcript_names_its_file(counting):
    from pytest_whisperq.errors import CacheError
    from pytest_whisperq.transcript_cache import cached_transcribe

    cache, backend = counting
    cached_transcribe(cache, backend, [_utterance("a", 1.0)])
    [stored] = [p for p in (cache.root / "transcripts").glob("*/*.json") if not p.name.startswith(".")]
    stored.write_text("{not json")
    with pytest.raises(CacheError, match=f"{stored}.*delete that file"):
        cached_transcribe(cache, backend, [_utterance("a", 1.0)])


def test_processes_sharing_a_store_never_transcribe_an_utterance_twice(counting):
    """Two runs at once (xdist workers) over overlapping data: they take turns, the second finds the first's."""
    from pytest_whisperq.transcript_cache import cached_transcribe

    cache, backend = counting
    started = threading.Barrier(2)
    data = [[_utterance("a", 1.0), _utterance("b", 2.0)], [_utterance("b", 2.0), _utterance("c", 3.0)]]
    results = [None, None]

    def run(index):
        started.wait()
        results[index] = cached_transcribe(cache, backend, data[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made = sorted(uid for batch in backend.asked for uid in batch)
    assert made == ["a", "b", "c"] and sorted(reused for _, reused in results) == [0, 1]


def test_a_run_stopped_midway_keeps_the_transcripts_it_made(counting, monkeypatch):
    """Stored part by part: a run interrupted (Ctrl-C, a crash) after the first part leaves it for the next."""
    from pytest_whisperq import transcript_cache
    from pytest_whisperq.transcript_cache import cached_transcribe

    cache, backend = counting
    monkeypatch.setattr(transcript_cache, "STORE_EVERY", 2)
    data = [_utterance(f"u{i}", float(i)) for i in range(5)]
    transcribe = backend.transcribe

    def stopped_on_the_second_part(utterances):
        if len(backend.asked) == 1:
            raise KeyboardInterrupt
        return transcribe(utterances)

    backend.transcribe = stopped_on_the_second_part
    with pytest.raises(KeyboardInterrupt):
        cached_transcribe(cache, backend, data)
    backend.transcribe = transcribe
    hypotheses, reused = cached_transcribe(cache, backend, data)
    assert reused == 2 and backend.asked == [["u0", "u1"], ["u2", "u3"], ["u4"]]
    assert [h.text for h in hypotheses] == [f"en {i:.1f}" for i in range(5)]
