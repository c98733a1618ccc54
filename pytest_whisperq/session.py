"""The run's state: settings, cache, loaded models, memoised transcripts, collected results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_whisperq import progress
from pytest_whisperq.cache import Cache
from pytest_whisperq.errors import CheckpointError, ConfigError
from pytest_whisperq.results import CheckResult
from pytest_whisperq.settings import Settings

if TYPE_CHECKING:
    from pytest_whisperq.backends import Backend, Hypothesis
    from pytest_whisperq.backends.server import StartGroup
    from pytest_whisperq.checks.fidelity import LayerError, Tolerance
    from pytest_whisperq.checks.scheme import Scheme
    from pytest_whisperq.checks.throughput import Rounds, Throughput
    from pytest_whisperq.checks.transcripts import WerReport
    from pytest_whisperq.quantize import Recipe
    from pytest_whisperq.data import Utterance
    from pytest_whisperq.models.resolve import ResolvedModel
    from pytest_whisperq.models.tensors import CheckpointTensors
    from pytest_whisperq.report.verdict import Verdict
    from pytest_whisperq.text import Scoring

T = TypeVar("T")

SERVER_STARTED_HERE = ("vllm-server",)  # backends whose loading is a server's start: worth starting both at once
OTHER_ROLE = {"model": "base", "base": "model"}
STOP_WAIT_SECONDS = 30.0  # for a background start to end once cancelled

NO_MODEL_MESSAGE = (
    "no model under test: pass --whisperq-model=PATH_OR_ID (a local checkpoint directory, "
    "org/name[@revision] on the hub, or a built-in: whisper-base, whisper-tiny.en), "
    "or set whisperq_model in your pytest ini file; or install pytest-whisperq[quantize] "
    "(llm-compressor) to have the base quantized to W4A16 here"
)


def transcript_origin(count: int, reused: int) -> str:
    """Where a run's transcripts came from, for the summary."""
    if reused == count:
        return "reused from the cache (same weights, audio, decoding, versions)"
    if reused == 0:
        return "transcribed"
    return f"({reused} reused from the cache, {count - reused} transcribed)"


class WhisperqSession:
    """One per pytest run. Expensive things are built on first use and remembered,
    failures included, so twenty tests do not load a broken checkpoint twenty times."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache = Cache(settings.cache_dir)
        self.results: list[tuple[str, CheckResult]] = []
        self._memo: dict[Any, Any] = {}
        self._backends: list[Backend] = []
        self._starting: dict[Any, tuple[Future[Backend], StartGroup]] = {}  # servers started early (see backend())
        self.roles_on_backends: set[str] | None = None  # the roles the selected tests transcribe with (None: unknown)
        self.skipped: list[tuple[str, str]] = []  # (test, reason): whisperq tests that did not run
        self.failed_tests: set[str] = set()  # whisperq tests pytest reported failed or errored
        self.notes: list[str] = []  # what the run chose not to check, and why (printed at the end)
        self.transcript_sources: dict[tuple[str, str, str], tuple[int, int]] = {}  # (path, backend, data) -> (count, reused)

    def _once(self, key: Any, build: Callable[[], T]) -> T:
        if key not in self._memo:
            try:
                self._memo[key] = ("ok", build())
            except Exception as error:  # remembered and re-raised for every later caller
                self._memo[key] = ("error", error)
        status, value = self._memo[key]
        if status == "error":
            raise value
        return value

    # --- models -------------------------------------------------------------------------
    def _resolved_key(self, role: str) -> tuple[str, Any]:
        spec = self.settings.model if role == "model" else self.settings.base
        if role == "model" and (spec is None or spec.kind == "quantize"):
            return ("resolved", "quantized")
        return ("resolved", spec)

    def resolved(self, role: str) -> ResolvedModel:
        from pytest_whisperq.models.resolve import resolve

        key = self._resolved_key(role)
        if key[1] == "quantized":
            return self._once(key, self._quantized_base)
        return self._once(key, lambda: resolve(key[1], self.cache, self.settings.allow_pickle))

    def quantize_recipe(self) -> Recipe:
        """What the quantize fixture makes: --whisperq-scheme (W4A16 under auto), its group size and act-order."""
        from pytest_whisperq.checks.scheme import AUTO, DEFAULT_PRESET
        from pytest_whisperq.quantize import Recipe

        settings = self.settings
        return Recipe(scheme=DEFAULT_PRESET if settings.scheme == AUTO else settings.scheme,
                      group_size=settings.group_size, actorder=None if settings.actorder == "none" else settings.actorder)

    def _quantized_base(self) -> ResolvedModel:
        """The base quantized here with llm-compressor by `quantize_recipe` (cached by content)."""
        from pytest_whisperq.backends.transformers_backend import resolve_device
        from pytest_whisperq.models.resolve import ResolvedModel
        from pytest_whisperq.models.spec import QUANTIZE, ModelSpec
        from pytest_whisperq.quantize import quantize_checkpoint, require_llmcompressor

        require_llmcompressor()
        base = self.resolved("base")
        path = quantize_checkpoint(
            base.path, base.spec.raw, self.calibration_data(), self.cache,
            device=resolve_device(self.settings.device), recipe=self.quantize_recipe(), evaluation=self.eval_data(),
        )
        return ResolvedModel(ModelSpec(QUANTIZE, "quantize", QUANTIZE), path)

    def calibration_data(self) -> list[Utterance]:
        from pytest_whisperq.audio import MAX_SECONDS
        from pytest_whisperq.data import load_data
        from pytest_whisperq.dataspec import DataSpec
        from pytest_whisperq.resources import default_calib_dir

        spec = self.settings.calib_data or DataSpec("local", str(default_calib_dir()))
        limit, language = self.settings.calib_samples, self.settings.language
        return self._once(("calibration", spec, limit, language),
                          lambda: load_data(spec, limit=limit, subset="calibration", language=language, max_seconds=MAX_SECONDS))

    def backend(self, role: str, name: str | None = None) -> Backend:
        """The role's checkpoint loaded on backend `name` (default: --whisperq-backend). A backend that starts a
        server here also starts the other role's, at once and in the background, when that role's checkpoint is
        already at hand: two servers start in the time of one, and a run comparing them needs both."""
        name = name or self.settings.backend
        if name in SERVER_STARTED_HERE and name == self.settings.backend:  # not for an agreement backend: model only
            self._start_early(OTHER_ROLE[role], name)
        return self._once(self._backend_key(role, name), lambda: self._load_backend(role, name))

    def _backend_key(self, role: str, name: str) -> tuple[Any, ...]:
        # keyed by role too: with --whisperq-backend=openai the base and the model have their own endpoints
        return ("backend", name, self.resolved(role).path, role if name == "openai" else None)

    def _new_backend(self, resolved: ResolvedModel, role: str, name: str) -> Backend:
        from dataclasses import replace

        from pytest_whisperq.backends import load_backend

        return load_backend(resolved, replace(self.settings, backend=name), role, self.cache.root / "logs")

    def _load_backend(self, role: str, name: str) -> Backend:
        resolved = self.resolved(role)
        self._check_loadable(role, resolved)
        key = self._backend_key(role, name)
        if key in self._starting:
            started, _ = self._starting[key]
            with progress.task(f"waiting for the {name} of {resolved.label}, started with the other's", delay=1.0):
                wait([started])  # the line shows the elapsed time meanwhile
            del self._starting[key]  # only once done: interrupted before, close() stops it
            backend = started.result()
        else:
            backend = self._new_backend(resolved, role, name)
        self._backends.append(backend)
        for caveat in getattr(backend, "caveats", ()):  # e.g. a vLLM server on English-only Whisper
            if caveat not in self.notes:
                self.notes.append(caveat)
        return backend

    def _check_loadable(self, role: str, resolved: ResolvedModel) -> None:
        """What is checked before any backend loads a checkpoint, so that a library does not fail on it with a
        traceback: the pair is comparable (the base is loaded only to be compared with), the processor files
        exist and the tokenizer's JSON reads."""
        from pytest_whisperq.models.processor_files import require_processor_files

        if role == "base":
            self.require_comparable_pair()
        require_processor_files(resolved.path, resolved.label)
        self.vocabulary(role)

    def _start_early(self, role: str, name: str) -> None:
        """Start `role`'s server in a thread unless no selected test needs it, or it is loaded, starting, the other
        role's own checkpoint, or yet to be quantized."""
        import threading

        from pytest_whisperq.backends.server import StartGroup, starting_in

        if self.roles_on_backends is not None and role not in self.roles_on_backends:
            return  # no selected test transcribes with it (e.g. -k agreement: the model alone)
        if self._resolved_key(role)[1] == "quantized" and self.resolved_if_loaded(role) is None:
            return  # that role is made by quantizing: minutes of work this run may not need yet
        try:
            resolved = self.resolved(role)  # a path, or a download the run needs anyway
            self._check_loadable(role, resolved)
        except Exception:
            return  # raised again by _load_backend, when the role is asked for
        key = self._backend_key(role, name)
        if key in self._memo or key in self._starting or key == self._backend_key(OTHER_ROLE[role], name):
            return  # loaded, starting, or the same checkpoint as the other role (one server serves both)
        started: Future[Backend] = Future()
        group = StartGroup()

        def start() -> None:
            try:
                with progress.silenced(), starting_in(group):
                    started.set_result(self._new_backend(resolved, role, name))
            except BaseException as error:  # kept for whoever asks for this backend, raised there
                started.set_exception(error)

        self._starting[key] = (started, group)
        threading.Thread(target=start, name=f"whisperq-start-{role}", daemon=True).start()

    def require_comparable_pair(self) -> None:
        """The model's and the base's transcripts mean the same only with one architecture and one
        vocabulary; otherwise every comparison (WER delta, agreement with the base, speed ratio) is void."""
        from pytest_whisperq.checks.compat import pair_problems

        def check() -> None:
            model, base = self.tensors("model"), self.tensors("base")
            problems = pair_problems(model.config, base.config, self.vocabulary("model"), self.vocabulary("base"))
            if problems:
                raise CheckpointError(
                    f"the model under test ({model.path}) cannot be compared with the base ({base.path}): "
                    + "; ".join(problems) + ". Pass the base it was quantized from with --whisperq-base"
                )

        self._once("comparable_pair", check)

    def agreement_backend(self) -> str | None:
        """The second backend the model's transcripts are compared with, if this run has one."""
        chosen, main = self.settings.agreement_backend, self.settings.backend
        if chosen == "auto":
            return "transformers" if main != "transformers" else None
        return None if chosen == "none" else chosen  # the run's own backend is refused with the settings

    def close(self) -> None:
        """Release every backend (servers started here are stopped): called when pytest ends. A server still
        starting in the background (never asked for, or the run was interrupted) is stopped, and its start ends."""
        backends, self._backends = self._backends, []
        starting, self._starting = list(self._starting.values()), {}
        try:
            for started, group in starting:
                if not started.done():
                    group.stop()  # its wait for health ends at once; a start not yet launched never launches
            for started, group in starting:
                try:
                    failed = started.exception(timeout=STOP_WAIT_SECONDS) is not None
                except TimeoutError:  # still asking its python for versions: cancelled, it starts nothing
                    continue
                if not failed:
                    backends.append(started.result())
        finally:
            for backend in backends:
                backend.close()

    # --- checkpoint format ----------------------------------------------------------------
    def tensors(self, role: str) -> CheckpointTensors:
        """The checkpoint's config and tensor headers (no weights read, nothing executed)."""
        from pytest_whisperq.models.tensors import CheckpointTensors

        resolved = self.resolved(role)
        return self._once(("tensors", resolved.path),
                          lambda: resolved.checkpoint or CheckpointTensors.open(resolved.path, self.settings.allow_pickle))

    def vocabulary(self, role: str) -> dict[str, int]:
        """The role's tokenizer vocabulary (token -> id), read as JSON."""
        from pytest_whisperq.models.processor_files import vocabulary

        path = self.resolved(role).path
        return self._once(("vocabulary", path), lambda: vocabulary(path))

    def scheme(self) -> Scheme:
        """The scheme the model is gated as: --whisperq-scheme, or under auto the one its config declares."""
        from pytest_whisperq.checks.scheme import resolve_scheme

        settings = self.settings
        return self._once(("scheme",), lambda: resolve_scheme(settings.scheme, self.tensors("model").config,
                                                               settings.group_size, settings.actorder))

    def tolerance(self) -> Tolerance:
        from pytest_whisperq.checks.fidelity import Tolerance

        settings = self.settings
        return Tolerance(settings.max_layer_error, settings.scale_excess, settings.median_error_factor)

    def layer_errors(self) -> list[LayerError]:
        """Each quantized Linear's dequantized error against the base, computed once a run."""
        from pytest_whisperq.checks.fidelity import layer_errors

        from pytest_whisperq.checks.scheme import AUTO, resolve_scheme

        model, base = self.tensors("model"), self.tensors("base")
        # dequantized as declared, as loaders read it, whatever scheme it is gated as (that is the format checks')
        return self._once(("layer_errors", model.path, base.path),
                          lambda: layer_errors(model, base, resolve_scheme(AUTO, model.config)))

    # --- data and text ------------------------------------------------------------------
    def eval_data(self) -> list[Utterance]:
        """The evaluation utterances: --whisperq-data (or the shipped speech), with the shipped multilingual
        speech after them under --whisperq-multilingual; rows without a language are in --whisperq-language."""
        from pytest_whisperq.data import load_data
        from pytest_whisperq.dataspec import DataSpec
        from pytest_whisperq.resources import default_eval_dir, multilingual_eval_dir

        s = self.settings
        specs = [s.data or DataSpec("local", str(default_eval_dir()))]
        if s.multilingual:
            specs.append(DataSpec("local", str(multilingual_eval_dir())))

        def build() -> list[Utterance]:
            utterances = [u for spec in specs for u in load_data(spec, limit=s.data_limit, language=s.language)]
            if len({u.id for u in utterances}) != len(utterances):
                raise ConfigError("the evaluation data and the shipped multilingual speech share utterance ids; "
                                  "rename your files or leave out --whisperq-multilingual")
            return utterances

        return self._once(("data", tuple(specs), s.data_limit, s.language), build)

    def normalizer(self) -> Scoring:
        """The run's text rules: Whisper's English normaliser for English, its basic one for other languages."""
        from pytest_whisperq.models.builtin import whisper_assets
        from pytest_whisperq.text import Scoring, english_normalizer

        def build() -> Scoring:
            return Scoring(english_normalizer(whisper_assets(self.cache) / "english.json"))

        return self._once("normalizer", build)

    def transcribe(self, backend: Backend, utterances: Sequence[Utterance]) -> list[Hypothesis]:
        """The backend's transcripts: once a run, and from the content-keyed cache for every utterance an
        identical transcriber already made (noted for the summary, never silent)."""
        from pytest_whisperq.data import dataset_fingerprint
        from pytest_whisperq.transcript_cache import cached_transcribe, transcribing

        fingerprint = dataset_fingerprint(utterances)

        def build() -> list[Hypothesis]:
            if getattr(backend, "cacheable", False):  # shows its own progress, for what it transcribes
                hypotheses, reused = cached_transcribe(self.cache, backend, utterances)
            else:
                with transcribing(backend, len(utterances)):
                    hypotheses, reused = backend.transcribe(utterances), 0
            self.transcript_sources[(str(backend.model.path), backend.name, fingerprint)] = (len(utterances), reused)
            return hypotheses

        return self._once(("transcripts", backend.name, backend.model.path, fingerprint), build)

    def agreement_transcripts(self) -> tuple[list[Hypothesis], list[Hypothesis]]:
        """The model's transcripts of the evaluation data from the agreement backend and the main one."""
        name = self.agreement_backend()
        if name is None:
            raise ConfigError("no agreement backend in this run: set --whisperq-agreement-backend")
        data = self.eval_data()
        main = self.transcribe(self.backend("model"), data)  # first: the backend under scrutiny fails fastest
        return self.transcribe(self.backend("model", name), data), main

    def wer_report(self, role: str) -> WerReport:
        """The role's WER report on the evaluation data (on the run's backend)."""
        from pytest_whisperq.checks.transcripts import score

        def build() -> WerReport:
            data = self.eval_data()
            return score(data, self.transcribe(self.backend(role), data), self.normalizer())

        return self._once(("wer", role), build)

    def detected_languages(self, role: str) -> list[str]:
        """The language the role's model identifies in each evaluation utterance, decoding without a forced
        one (once a run; never from the cache: it is one decoder step per utterance)."""
        backend, data = self.backend(role), self.eval_data()
        if not hasattr(backend, "detect_languages"):
            raise ConfigError(f"the {backend.name} backend cannot identify languages; leave out --whisperq-language-id")
        return self._once(("language_id", role), lambda: backend.detect_languages(data))

    def silence_transcripts(self, role: str) -> list[tuple[str, str]]:
        from pytest_whisperq.data import silence_clips

        clips = silence_clips(self.settings.language)
        return [(clip.id, h.text) for clip, h in zip(clips, self.transcribe(self.backend(role), clips))]

    # --- throughput -----------------------------------------------------------------------
    def throughput_rounds(self) -> Rounds:
        """Base and model timed in `--whisperq-rounds` interleaved rounds of `--whisperq-requests` each, after
        `--whisperq-warmup` discarded requests each: always measured afresh (never from the transcript cache),
        once a run. Where both compute with dense weights their ratio means nothing: one round each, for the
        card's figures, and the reason."""
        return self._once("throughput_rounds", self._measure_rounds)

    def _measure_rounds(self) -> Rounds:
        from pytest_whisperq.backends import quantization_method
        from pytest_whisperq.checks.throughput import Rounds, why_not_comparable

        s = self.settings
        backends = {"base": self.backend("base"), "model": self.backend("model")}
        quantized = quantization_method(self.tensors("model").config) is not None
        why = why_not_comparable(backends["model"].name, quantized, backends["model"].runs_quantized_weights())
        data = self.eval_data()
        requests = [data[i % len(data)] for i in range(s.requests)]
        if s.warmup:
            with progress.task(f"warming up base and model ({s.warmup} requests each)", total=2 * s.warmup,
                               unit="requests", delay=1.0):
                for backend in backends.values():
                    backend.transcribe([data[i % len(data)] for i in range(s.warmup)])
        timed: dict[str, list[Throughput]] = {"base": [], "model": []}
        rounds = 1 if why else s.rounds
        with progress.task(f"timing throughput, base and model in {rounds} interleaved round(s) of {s.requests}",
                           total=2 * rounds * s.requests, unit="requests"):
            for round_index in range(rounds):
                order = ("base", "model") if round_index % 2 == 0 else ("model", "base")  # drift falls on both alike
                for role in order:
                    timed[role].append(self._time_round(role, backends[role], requests))
        return Rounds(tuple(timed["base"]), tuple(timed["model"]), why)

    @staticmethod
    def _time_round(role: str, backend: Backend, requests: list[Utterance]) -> Throughput:
        import time

        from pytest_whisperq.checks.throughput import Throughput

        began = time.perf_counter()
        hypotheses = backend.transcribe(requests)
        wall = time.perf_counter() - began
        return Throughput(
            label=role, backend=backend.name, requests=len(requests), succeeded=len(hypotheses), wall_seconds=wall,
            audio_seconds=sum(u.seconds for u in requests), output_tokens=sum(len(h.tokens) for h in hypotheses),
            latencies=tuple(h.batch_seconds for h in hypotheses), retried=sum(h.attempts > 1 for h in hypotheses),
        )

    # --- what the run made, for the reports (nothing is computed here) --------------------
    def _made(self, key: Any) -> Any:
        memo = self._memo.get(key)
        return memo[1] if memo and memo[0] == "ok" else None

    def resolved_if_loaded(self, role: str) -> ResolvedModel | None:
        return self._made(self._resolved_key(role))

    def wer_report_if_made(self, role: str) -> WerReport | None:
        return self._made(("wer", role))

    def throughput_rounds_if_measured(self) -> Rounds | None:
        return self._made("throughput_rounds")

    def scheme_if_resolved(self) -> Scheme | None:
        return self._made(("scheme",))

    def backend_identities(self) -> list[dict[str, Any]]:
        return [{"model": str(backend.model.path), **backend.identity()} for backend in self._backends]

    # --- results ------------------------------------------------------------------------
    def unrun_checks(self) -> list[str]:
        """The end-of-run verdict on skipped whisperq tests: each fails the run unless allowed."""
        if not self.skipped:
            return []
        verdict = ("accepted (--whisperq-allow-skip)" if self.settings.allow_skip else
                   "FAIL: a gate that could not check must not pass; fix the cause, or pass --whisperq-allow-skip "
                   "to accept it")
        return [f"{len(self.skipped)} whisperq check(s) skipped, {verdict}:"] + [
            f"  {nodeid}: {reason}" for nodeid, reason in self.skipped]

    def required_checks(self) -> list[str]:
        """The shipped suite's tests a release needs (`file::function`); agreement only with a second backend."""
        from pytest_whisperq.report.verdict import AGREEMENT_TEST, LANGUAGE_ID_TEST, suite_tests
        from pytest_whisperq.resources import conformance_dir

        tests = suite_tests(conformance_dir())
        return [name for name in tests if (name != AGREEMENT_TEST or self.agreement_backend() is not None)
                and (name != LANGUAGE_ID_TEST or self.settings.language_id)]

    def verdict(self, exit_status: int) -> Verdict:
        from pytest_whisperq.report.verdict import release_verdict

        return release_verdict(self.results, self.failed_tests, self.required_checks(), exit_status,
                               self.settings.accept_inconclusive)

    def record(self, nodeid: str, result: CheckResult) -> None:
        self.results.append((nodeid, result))

    def summary_lines(self) -> list[str]:
        lines = []
        for nodeid, result in self.results:
            figure = ""
            if result.observed is not None:
                figure = f" {result.observed}{result.unit}"
                if result.interval is not None:
                    figure += f" [{result.interval[0]}, {result.interval[1]}]"
                elif result.decision is not None:
                    figure += f" [{result.decision.low:+.2f}, {result.decision.high:+.2f}]"
                if result.limit is not None:
                    figure += f" (limit {result.limit}{result.unit})"
            lines.append(f"{result.label} {result.name}{figure}  [{nodeid}]")
            if result.detail:
                lines.append(f"    {result.detail}")
        return lines

    def describe_models(self) -> list[str]:
        lines = []
        for role in ("model", "base"):
            memo = self._memo.get(self._resolved_key(role))
            if memo and memo[0] == "ok":
                lines.append(f"{role}: {memo[1].label}")
                for (path, backend, _), (count, reused) in self.transcript_sources.items():
                    if path == str(memo[1].path):
                        lines.append(f"  {count} utterances {transcript_origin(count, reused)} ({backend})")
                scheme = self.scheme_if_resolved() if role == "model" else None
                if scheme is not None:
                    lines.append(f"  gated as {scheme.label} [{scheme.source}]")
        return lines


