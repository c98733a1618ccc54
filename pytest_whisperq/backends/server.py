"""A server subprocess that never outlives the run: started in its own process group, waited for
until healthy (or dead, or out of time), and stopped with SIGTERM then SIGKILL.

Its output goes to a log file whose tail is quoted in every error, so a server that fails to start
says why.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from pytest_whisperq.errors import BackendError

LOOPBACK = "127.0.0.1"
_EXCEPTION_LINE = re.compile(r"\b[A-Z]\w*(Error|Exception)\b:")
_LIVE: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


class StartGroup:
    """The servers started inside `starting_in(group)` (a start in a background thread), so that another
    thread can stop them and keep the group from starting any more."""

    def __init__(self) -> None:
        self.servers: list[ServerProcess] = []
        self.cancelled = threading.Event()

    def stop(self) -> None:
        self.cancelled.set()
        for server in list(self.servers):
            server.stop(grace=2.0)


_GROUP: ContextVar[StartGroup | None] = ContextVar("whisperq_server_group", default=None)


@contextmanager
def starting_in(group: StartGroup) -> Iterator[None]:
    token = _GROUP.set(group)
    try:
        yield
    finally:
        _GROUP.reset(token)


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    def __init__(self, name: str, command: Sequence[str], health_url: str, log_path: Path,
                 env: dict[str, str] | None = None, startup_timeout: float = 600.0,
                 explain: Callable[[str], str] | None = None) -> None:
        self.name = name
        self.explain = explain  # advice for failure signatures in the log that need translating
        self.command = list(command)
        self.health_url = health_url
        self.log_path = Path(log_path)
        self.env = env
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        group = _GROUP.get()
        if group is not None:
            if group.cancelled.is_set():
                raise BackendError(f"{self.name} was not started: the run ended first")
            group.servers.append(self)  # before Popen: a stop from another thread from now on reaches it
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            try:
                self.process = subprocess.Popen(
                    self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=self.env, start_new_session=True,  # its own process group: stop() takes its children too
                )
            except OSError as error:
                raise BackendError(f"{self.name}: could not run {self.command[0]}: {error}") from None
        _LIVE.add(self)
        if group is not None and group.cancelled.is_set():  # stopped while it was being launched
            self.stop(grace=2.0)
        self.wait_ready()

    def wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + self.startup_timeout
        while True:
            process = self.process
            if process is None:  # stopped from another thread (the run ended while it was starting)
                raise BackendError(f"{self.name} was stopped before it was ready")
            code = process.poll()
            if code is not None:
                raise BackendError(f"{self.name} exited with status {code} before it was ready; "
                                   f"its log ({self.log_path}) ends with:\n{self.tail()}")
            try:
                if httpx.get(self.health_url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise BackendError(f"{self.name} was not healthy at {self.health_url} within {self.startup_timeout:.0f} s "
                                   f"and was stopped; its log ({self.log_path}) ends with:\n{self.tail()}")
            time.sleep(0.5)  # the caller's progress task shows the elapsed time meanwhile

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        """Raise with the log's tail if the server has died."""
        if self.process is not None and self.process.poll() is not None:
            raise BackendError(f"{self.name} died (exit status {self.process.returncode}); "
                               f"its log ({self.log_path}) ends with:\n{self.tail()}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds. Safe to call twice."""
        process, self.process = self.process, None
        _LIVE.discard(self)
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def errors(self, lines: int = 5) -> str:
        """The log's last lines that name an error: the root cause a generic HTTP 500 hides."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        # exception lines ("AttributeError: ..."), not the access log's "500 Internal Server Error"
        found = [line for line in text.splitlines() if _EXCEPTION_LINE.search(line) and "HTTP/1." not in line]
        return ("\n".join(found[-lines:]) or self.tail(lines)) + (self.explain(text) if self.explain else "")

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return ("\n".join(text.splitlines()[-lines:]) or "(empty log)") + (self.explain(text) if self.explain else "")


def stop_all(grace: float = 2.0) -> None:
    """Stop every server this process started and has not stopped (one still starting included)."""
    for server in list(_LIVE):
        server.stop(grace=grace)


atexit.register(stop_all)  # a last resort: the session stops its servers itself
