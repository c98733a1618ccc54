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
