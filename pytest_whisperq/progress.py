"""Progress of long work (building a model, quantizing, transcribing, starting a server, timing throughput).

The session opens a `task` around each piece of long work; the code doing it calls `advance(n)` as units
are done (a batch transcribed, a request answered) without knowing who listens. Where the output goes is
a `Sink` the plugin gives: one live line rewritten in place on a terminal, plain lines at intervals
elsewhere (CI logs), nothing under `-q` or in an xdist worker. Tasks that end quickly (a cache hit) and
set `delay` print nothing at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

PREFIX = "whisperq: "


class Sink(Protocol):
    live: bool  # True: one line rewritten in place; False: plain lines

    def show(self, text: str) -> None:
        """Live: rewrite the current line with `text`. Plain: write `text` as a line."""
        ...

    def finish(self, text: str) -> None:
        """The task's last word, left on a line of its own."""
        ...


class Task:
    def __init__(self, what: str, total: int | None, unit: str, sink: Sink | None, delay: float,
                 clock: Callable[[], float], live_every: float, plain_every: float) -> None:
        self.what, self.total, self.unit, self.sink = what, total, unit, sink
        self.delay, self.clock, self.live_every, self.plain_every = delay, clock, live_every, plain_every
        self.done = 0
        self.began = clock()
        self.shown_at: float | None = None  # when the task last wrote anything (None: not yet)
        if sink is not None and delay <= 0:
            self._show(self.began)

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.sink is None:
            return
        now = self.clock()
        every = self.live_every if self.sink.live else self.plain_every
        if now - self.began >= self.delay and (self.shown_at is None or now - self.shown_at >= every):
            self._show(now)

    def status(self, now: float) -> str:
        elapsed = now - self.began
        if self.total is None:
            return f"{self.what}: {duration(elapsed)}"
        text = f"{self.what}: {self.done}/{self.total} {self.unit}"
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            text += f", {rate:.2f}/s"
            if self.done < self.total:
                text += f", ETA {duration((self.total - self.done) / rate)}"
        return text

    def _show(self, now: float) -> None:
        assert self.sink is not None
        self.shown_at = now
        self.sink.show(PREFIX + self.status(now))

    def end(self, failed: bool) -> None:
        if self.sink is None or self.shown_at is None:
            return  # never shown: quick, nothing to close
        elapsed = duration(self.clock() - self.began)
        count = f"{self.done}/{self.total} {self.unit}, " if self.total is not None else ""
        self.sink.finish(f"{PREFIX}{self.what}: {'stopped' if failed else 'done'} ({count}{elapsed})")


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


_current: ContextVar[Task | None] = ContextVar("whisperq_progress_task", default=None)
_silent: ContextVar[bool] = ContextVar("whisperq_progress_silent", default=False)


def advance(count: int = 1) -> None:
    """`count` more units of the current task are done (nothing when no task is open)."""
    task = _current.get()
    if task is not None:
        task.advance(count)


class _Settings:
    sink: Sink | None = None
    clock: Callable[[], float] = time.monotonic
    live_every = 0.5
    plain_every = 30.0


def configure(sink: Sink | None, clock: Callable[[], float] = time.monotonic, live_every: float = 0.5,
              plain_every: float = 30.0) -> None:
    """Where tasks report from now on (None: nowhere). The plugin calls it once a run, like logging's setup."""
    _Settings.sink, _Settings.clock, _Settings.live_every, _Settings.plain_every = sink, clock, live_every, plain_every


_shown_tasks: list[Task] = []  # open tasks that write somewhere, innermost last (background ones are silenced)


def _heartbeat(current: Task, every: float) -> Callable[[], None]:
    """Work that cannot count itself (GPTQ inside llm-compressor, a conversion) still shows that it is alive:
    its elapsed time, from a thread, while it is the innermost task shown. Returns the function that stops it."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            if _shown_tasks and _shown_tasks[-1] is current:
                current.advance(0)

    thread = threading.Thread(target=beat, name="whisperq-progress", daemon=True)
    thread.start()

    def end() -> None:
        stop.set()
        thread.join()

    return end


@contextmanager
def task(what: str, total: int | None = None, unit: str = "", delay: float = 0.0) -> Iterator[Task]:
    """Long work named `what`; with a `total`, `advance` counts it in `unit`s; without one, its elapsed time
    is shown as it goes. A task with a `delay` shows nothing until it has run that long and advanced (so a
    cache hit is silent)."""
    sink = None if _silent.get() else _Settings.sink
    current = Task(what, total, unit, sink, delay, _Settings.clock, _Settings.live_every, _Settings.plain_every)
    token = _current.set(current)
    stop_heartbeat = None
    if sink is not None:
        _shown_tasks.append(current)
        if total is None:
            stop_heartbeat = _heartbeat(current, _Settings.live_every if sink.live else _Settings.plain_every)
    failed = True
    try:
        yield current
        failed = False
    finally:
        if stop_heartbeat is not None:
            stop_heartbeat()
        if sink is not None:
            _shown_tasks.remove(current)
        _current.reset(token)
        current.end(failed)


@contextmanager
def silenced() -> Iterator[None]:
    """Tasks opened inside show nothing: for work done in the background while the foreground's task owns
    the line (a server started early in a thread)."""
    token = _silent.set(True)
    try:
        yield
    finally:
        _silent.reset(token)
