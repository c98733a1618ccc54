"""A stand-in OpenAI-compatible transcription server for lifecycle tests (stdlib only).

    python fake_openai_server.py PORT MODE

MODE: ok (answers "hello world"), exit (exits at once with status 3), never-ready (/health is 503
forever), die-after-N (exits after N transcriptions), http-500 (every transcription is an error),
ignore-term (ignores SIGTERM, so only SIGKILL stops it), hang-after-N (after N transcriptions it
never answers again), drop-first (closes the first transcription's connection without an answer,
then answers), garbage (answers 200 with text that is not JSON), echo-language (answers with the
request's language field as the text; with none, verbose_json naming the language "french"). It writes its pid to stdout first.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if len(sys.argv) == 3:
    PORT, MODE = int(sys.argv[1]), sys.argv[2]
else:  # started as vLLM's server module: `... --port N ...`, mode from the environment
    PORT, MODE = int(sys.argv[sys.argv.index("--port") + 1]), os.environ.get("FAKE_SERVER_MODE", "ok")
    PIDFILE = os.environ.get("FAKE_SERVER_PIDFILE")
    if PIDFILE:
        with open(PIDFILE, "a") as handle:
            handle.write(f"{os.getpid()}\n")
    STARTS = os.environ.get("FAKE_SERVER_STARTS")  # "began|ready TIME MODEL" lines, one of each per server
    MODEL = sys.argv[sys.argv.index("--model") + 1]
    if STARTS:
        with open(STARTS, "a") as handle:
            handle.write(f"began {time.time()} {MODEL}\n")
    # loading a model, as vLLM does (FAKE_SERVER_SLOW_MODEL: a directory name whose server takes a minute)
    slow = os.environ.get("FAKE_SERVER_SLOW_MODEL") and MODEL.endswith(os.environ["FAKE_SERVER_SLOW_MODEL"])
    time.sleep(60.0 if slow else float(os.environ.get("FAKE_SERVER_STARTUP_SECONDS", "0")))
    if STARTS:
        with open(STARTS, "a") as handle:
            handle.write(f"ready {time.time()} {MODEL}\n")
served = 0


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        sys.stdout.write("request " + (args[0] % args[1:] if args else "") + "\n")

    def _answer(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(503 if MODE == "never-ready" else 200, {})
        elif self.path == "/version":
            self._answer(200, {"version": "fake-0"})
        elif self.path == "/v1/models":
            self._answer(200, {"data": [{"id": "whisper"}]})
        else:
            self._answer(404, {"error": "no such path"})

    def do_POST(self) -> None:
        global served
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/audio/transcriptions":
            self._answer(404, {"error": "no such path"})
            return
        if MODE == "http-500":
            sys.stdout.write("RuntimeError: the engine is overloaded\n")
            sys.stdout.flush()
            self._answer(500, {"error": "the engine is overloaded"})
            return
        if MODE.startswith("hang-after-") and served >= int(MODE.rsplit("-", 1)[1]):
            sys.stdout.write("hanging on purpose\n")
            sys.stdout.flush()
            time.sleep(3600)
        if MODE == "drop-first" and served == 0 and not getattr(Handler, "dropped", False):
            Handler.dropped = True
            sys.stdout.write("dropping a connection on purpose\n")
            sys.stdout.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if MODE == "garbage":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>proxy error</html>")
            return
        if MODE.startswith("die-after-") and served >= int(MODE.rsplit("-", 1)[1]):
            sys.stdout.write("dying on purpose\n")
            sys.stdout.flush()
            os._exit(9)
        served += 1
        if MODE == "echo-language":
            marker = b'name="language"\r\n\r\n'
            if marker in body:
                self._answer(200, {"text": body.split(marker, 1)[1].split(b"\r\n", 1)[0].decode()})
            else:
                self._answer(200, {"text": "bonjour", "language": "french", "duration": 1.0, "segments": []})
            return
        self._answer(200, {"text": " hello world"})


if __name__ == "__main__":
    sys.stdout.write(f"pid {os.getpid()}\n")
    sys.stdout.flush()
    if MODE == "exit":
        sys.stdout.write("cannot load the model: no such file\n")
        sys.exit(3)
    if MODE == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
