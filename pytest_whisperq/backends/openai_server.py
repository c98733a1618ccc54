"""Transcription through an OpenAI-compatible `/v1/audio/transcriptions` endpoint: a vLLM server
this plugin starts (`vllm-server`), or one the user already runs (`openai`, by URL).

Each request names its utterance's language (the endpoint forces it); audio of any length is sent
whole (vLLM's server cuts what is over 30 s into windows at quiet points and joins their texts).
Requests go out concurrently (the model card's method sends them all at once); each one's latency is
kept. Transport errors (connection refused or reset, timeouts) are retried a bounded number of
times; an HTTP error answer is never retried: it is the server's verdict and fails the run.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pytest_whisperq import progress
from pytest_whisperq.audio import TARGET_RATE
from pytest_whisperq.backends import Hypothesis
from pytest_whisperq.backends.server import ServerProcess
from pytest_whisperq.errors import BackendError

if TYPE_CHECKING:
    from pytest_whisperq.data import Utterance
    from pytest_whisperq.models.resolve import ResolvedModel


def served_model(url: str) -> str:
    """The one model an endpoint serves (GET /models), for when the user did not name it."""
    import httpx

    try:
        listing = httpx.get(f"{url}/models", timeout=10).json()
        names = [entry["id"] for entry in listing["data"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        raise BackendError(f"{url}/models did not list the served models ({error}); is the server up? "
                           "Or name the model with --whisperq-served-model-name") from None
    if len(names) != 1:
        raise BackendError(f"{url} serves {names or 'no models'}; name one with --whisperq-served-model-name")
    return names[0]


def wav_bytes(samples: Any) -> bytes:
    """16 kHz mono 16-bit PCM WAV, what the endpoint is sent."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, TARGET_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def language_code(language: str) -> str:
    """An ISO code from an endpoint's `language` (vLLM answers "de", OpenAI's API "german")."""
    language = language.strip().lower()
    if len(language) <= 3:
        return language
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    by_name = {name: code for code, name in LANGUAGES.items()}
    return by_name.get(language, language)


class OpenAIServerBackend:
    name = "openai"
    # An endpoint someone else runs may serve anything under any name: never reuse its transcripts.
    cacheable = False

    def __init__(self, model: ResolvedModel, url: str, served_name: str, concurrency: int = 8, request_timeout: float = 120.0, retries: int = 2,
                 server: ServerProcess | None = None, dtype: str = "auto") -> None:
        self.model = model
        self.url = url.rstrip("/")
        self.served_name = served_name
        self.concurrency = concurrency
        self.request_timeout = request_timeout
        self.retries = retries
        self.server = server
        self.device = "server"
        self.dtype = dtype
        self._tokenizer: Any = None

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "served": self.served_name, "dtype": self.dtype, "temperature": 0.0}

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()

    def runs_quantized_weights(self) -> bool | None:
        return None  # someone else's server: what it computes with is not visible from here

    # --- requests -------------------------------------------------------------------------
    def _post(self, client: Any, utterance: Utterance, detect: bool = False) -> tuple[str, float, int]:
        """(transcript, seconds from the first attempt to the answer, attempts). Only transport errors
        (no answer at all) are retried, `retries` times; any answer, an error included, is final.
        `detect`: no language sent, and the answer's detected language returned instead of the text."""
        import httpx

        files = {"file": (f"{utterance.id}.wav", wav_bytes(utterance.audio), "audio/wav")}
        data = {"model": self.served_name, "language": utterance.language, "temperature": "0", "response_format": "json"}
        if detect:
            data.pop("language")
            data["response_format"] = "verbose_json"
        began = time.perf_counter()  # latency counts every attempt: a retried request was slow
        for attempt in range(1, self.retries + 2):
            if self.server is not None:
                self.server.check_alive()
            try:
                response = client.post(f"{self.url}/audio/transcriptions", files=files, data=data)
            except httpx.TransportError as error:  # connection refused/reset, timeout: the request never got an answer
                if attempt > self.retries:
                    if self.server is not None:
                        self.server.check_alive()
                    raise BackendError(f"{utterance.id}: no answer from {self.url} after {attempt} attempts "
                                       f"({type(error).__name__}: {error}; each waits at most "
                                       f"--whisperq-request-timeout={self.request_timeout:g} s)") from None
                time.sleep(0.5 * attempt)
                continue
            latency = time.perf_counter() - began
            if response.status_code != 200:
                cause = ""
                if self.server is not None and response.status_code >= 500:
                    cause = "\nthe server's log says:\n" + self.server.errors()
                raise BackendError(f"{utterance.id}: {self.url} answered HTTP {response.status_code}: "
                                   f"{response.text[:500]}{cause}")
            try:
                if detect:
                    return language_code(str(response.json()["language"])), latency, attempt
                return str(response.json()["text"]).strip(), latency, attempt
            except (ValueError, KeyError, TypeError):
                raise BackendError(f"{utterance.id}: {self.url} answered without a transcript: {response.text[:500]}") from None
        raise AssertionError("unreachable")

    def transcribe(self, utterances: Sequence[Utterance]) -> list[Hypothesis]:
        import httpx

        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        with httpx.Client(timeout=self.request_timeout, limits=limits) as client, \
                ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            answers = []
            for answer in pool.map(lambda u: self._post(client, u), utterances):  # in order, as they come
                answers.append(answer)
                progress.advance()
        return [Hypothesis(u.id, text, self._tokens(text), latency, 1, attempts)
                for u, (text, latency, attempts) in zip(utterances, answers)]

    def detect_languages(self, utterances: Sequence[Utterance]) -> list[str]:
        """The language the endpoint detects in each utterance when none is sent (verbose_json's `language`)."""
        import httpx

        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        with httpx.Client(timeout=self.request_timeout, limits=limits) as client, \
                ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return [code for code, _, _ in pool.map(lambda u: self._post(client, u, detect=True), utterances)]

    def _tokens(self, text: str) -> tuple[int, ...]:
        """Output tokens, counted with the checkpoint's own tokenizer (the endpoint returns text only)."""
        if not text:
            return ()
        if self._tokenizer is None:
            self._tokenizer = self._load_tokenizer()
        return tuple(self._tokenizer(" " + text))

    def _load_tokenizer(self) -> Any:
        try:
            if (self.model.path / "tokenizer.json").is_file():
                from tokenizers import Tokenizer

                fast = Tokenizer.from_file(str(self.model.path / "tokenizer.json"))
                return lambda t: fast.encode(t, add_special_tokens=False).ids
            from transformers import WhisperTokenizerFast  # vocab.json + merges.txt only

            slow = WhisperTokenizerFast.from_pretrained(str(self.model.path))
            return lambda t: slow.encode(t, add_special_tokens=False)
        except Exception as error:  # the tokenizers library raises plain Exception for a malformed file
            raise BackendError(f"{self.model.label}: its tokenizer cannot be loaded to count output tokens: {error}") from None
