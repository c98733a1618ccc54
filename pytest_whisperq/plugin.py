"""pytest entry point: options, fixtures and hooks. Thin glue; the logic lives elsewhere.

Nothing heavy is imported here: torch and transformers load only when a fixture needs a model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from pytest_whisperq import progress
from pytest_whisperq.errors import WhisperqError
from pytest_whisperq.results import CheckResult, blocks_release, failure_message
from pytest_whisperq.session import NO_MODEL_MESSAGE, WhisperqSession
from pytest_whisperq.settings import OPTIONS, Settings, argparse_type, build_settings

if TYPE_CHECKING:
    from pytest_whisperq.backends import Backend, Hypothesis
    from pytest_whisperq.checks.fidelity import LayerError, Tolerance
    from pytest_whisperq.checks.scheme import Scheme
    from pytest_whisperq.checks.throughput import Rounds
    from pytest_whisperq.checks.transcripts import WerReport
    from pytest_whisperq.data import Utterance
    from pytest_whisperq.models.resolve import ResolvedModel
    from pytest_whisperq.models.tensors import CheckpointTensors
    from pytest_whisperq.text import Scoring

SESSION_KEY = pytest.StashKey[WhisperqSession]()
GATED_PROPERTY = "whisperq_gate"  # user property of every test that uses a whisperq fixture
WORKER_NOTES = "whisperq_notes"  # key of an xdist worker's notes in its workeroutput
# Fixtures that cannot work without --whisperq-model (directly or through another fixture).
NEEDS_MODEL = {"whisperq_model", "whisperq_model_ref"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("whisperq", "pytest-whisperq: release gate for quantized Whisper checkpoints")
    for option in OPTIONS:
        if option.is_flag:
            group.addoption(option.flag, action="store_true", default=None, dest=f"whisperq_{option.name}",
                            help=option.help)
        else:
            group.addoption(option.flag, type=argparse_type(option), default=None, dest=f"whisperq_{option.name}",
                            metavar=option.metavar, help=option.help)
        parser.addini(option.ini, help=f"default for {option.flag}", default=None)


def pytest_configure(config: pytest.Config) -> None:
    cli = {option.name: config.getoption(f"whisperq_{option.name}") for option in OPTIONS}
    ini = {option.ini: config.getini(option.ini) for option in OPTIONS}
    try:
        settings = build_settings(cli, ini, config.inipath.parent if config.inipath else None)
    except WhisperqError as error:
        raise pytest.UsageError(str(error)) from None
    if _runs_xdist_workers(config) and (settings.json or settings.markdown or settings.charts or settings.baseline_save
                                        or settings.baseline_compare):
        raise pytest.UsageError("the whisperq reports and baselines are made from one process's results: run "
                                "without pytest-xdist's -n (the models are loaded once a process anyway)")
    config.stash[SESSION_KEY] = state = WhisperqSession(settings)
    config.pluginmanager.register(_OutcomeRecorder(state), "whisperq-outcome-recorder")
    # long work reports on the terminal; not under -q, and not from xdist workers (their output is not shown)
    quiet = config.get_verbosity() < 0 or hasattr(config, "workerinput")
    progress.configure(None if quiet else _TerminalProgress(config))


def _runs_xdist_workers(config: pytest.Config) -> bool:
    numprocesses = config.getoption("numprocesses", None) if config.pluginmanager.hasplugin("xdist") else None
    return bool(numprocesses) and not hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the tests: compare with the baseline (a regression fails the run), write the reports
    asked for, save the run as a baseline; each once, from the results every test recorded."""
    state = session.config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    if hasattr(session.config, "workerinput"):  # xdist workers leave it to the controller
        session.config.workeroutput[WORKER_NOTES] = list(state.notes)  # type: ignore[attr-defined]
        return
    settings = state.settings
    messages = state.notes + state.unrun_checks()
    if state.skipped and not settings.allow_skip and session.exitstatus in (pytest.ExitCode.OK,
                                                                             pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if settings.baseline_compare is not None or settings.baseline_save or settings.json is not None \
            or settings.markdown is not None or settings.charts is not None:
        from pytest_whisperq.report.finish import finish_run

        try:
            more, failed = finish_run(state, int(session.exitstatus))
        except (WhisperqError, OSError) as error:  # a report that cannot be written fails the run, with the reason
            more, failed = [f"the end of the run failed: {type(error).__name__}: {error}"], True
        messages += more
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        writer = getattr(reporter, "_tw", None)  # -q's progress dots end without a newline (pytest's own writer)
        if messages and writer is not None and getattr(writer, "width_of_current_line", 0):
            writer.line()
        for message in messages:
            reporter.write_line(f"whisperq: {message}")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """On the xdist controller: the notes each worker made at collection (it is the workers that collect)
    are printed once, at the end, as in a run without -n."""
    state = node.config.stash.get(SESSION_KEY, None)  # type: ignore[attr-defined]
    if state is None:
        return
    for note in getattr(node, "workeroutput", {}).get(WORKER_NOTES, ()):
        if note not in state.notes:
            state.notes.append(note)


def pytest_unconfigure(config: pytest.Config) -> None:
    progress.configure(None)
    state = config.stash.get(SESSION_KEY, None)
    if state is not None:
        state.close()  # a server started for this run never outlives it


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    from pytest_whisperq.quantize import llmcompressor_available

    state = config.stash[SESSION_KEY]
    _deselect_agreement_without_a_second_backend(state, config, items)
    _deselect_language_id_unless_asked(state, config, items)
    for item in items:
        if _uses_whisperq(item):  # travels with every report, through xdist too: see pytest_runtest_logreport
            item.user_properties.append((GATED_PROPERTY, "required"))
    if state.settings.model is not None or llmcompressor_available():
        return  # a named model, or the base quantized here
    if any(NEEDS_MODEL & set(getattr(item, "fixturenames", ())) for item in items):
        raise pytest.UsageError(NO_MODEL_MESSAGE)


# the fixtures that load a role on a backend (their dependents carry them in their fixture closure)
BACKEND_FIXTURES = {"base": ("whisperq_base", "whisperq_throughput_rounds", "whisperq_detected_languages"),
                    "model": ("whisperq_model", "whisperq_throughput_rounds", "whisperq_detected_languages",
                              "whisperq_agreement_transcripts")}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Which roles the selected tests (after -k, -m and the deselections above) load on a backend: a server
    started early for the other role is worth it only when some test needs it."""
    state = session.config.stash.get(SESSION_KEY, None)
    if state is not None and hasattr(session.config, "workerinput"):
        state.roles_on_backends = set()  # an xdist worker sees every selected item, not its share: start nothing early
    elif state is not None:
        state.roles_on_backends = {role for role, fixtures in BACKEND_FIXTURES.items()
                                   if any(set(fixtures) & set(getattr(item, "fixturenames", ())) for item in session.items)}


def _uses_whisperq(item: pytest.Item) -> bool:
    return any(name.startswith("whisperq_") for name in getattr(item, "fixturenames", ()))


def _deselect_agreement_without_a_second_backend(state: WhisperqSession, config: pytest.Config,
                                                 items: list[pytest.Item]) -> None:
    """Cross-backend agreement is not a check of this run when it has one backend: deselected, and said
    so in the summary, instead of a skip that reads like a check that could not run."""
    if state.agreement_backend() is not None:
        return
    agreement = [item for item in items if "whisperq_agreement_transcripts" in getattr(item, "fixturenames", ())]
    if agreement:
        items[:] = [item for item in items if item not in agreement]
        config.hook.pytest_deselected(items=agreement)
        chosen = state.settings.agreement_backend
        state.notes.append(
            f"{len(agreement)} cross-backend agreement test(s) deselected: "
            + ("--whisperq-agreement-backend=none" if chosen == "none" else
               f"this run uses only the {state.settings.backend} backend (set --whisperq-agreement-backend=NAME "
               "to compare it with another)")
        )


def _deselect_language_id_unless_asked(state: WhisperqSession, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Language identification is an optional check: deselected, and said so, unless --whisperq-language-id."""
    if state.settings.language_id:
        return
    chosen = [item for item in items if "whisperq_detected_languages" in getattr(item, "fixturenames", ())]
    if chosen:
        items[:] = [item for item in items if item not in chosen]
        config.hook.pytest_deselected(items=chosen)
        state.notes.append(f"{len(chosen)} language-identification test(s) deselected: optional, "
                           "--whisperq-language-id runs them")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that asked for `whisperq_check` and passed without recording a result checked nothing: it fails."""
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not report.passed or "whisperq_check" not in getattr(item, "fixturenames", ()):
        return
    state = item.config.stash.get(SESSION_KEY, None)
    if state is not None and not any(nodeid == item.nodeid for nodeid, _ in state.results):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} asked for whisperq_check but recorded no result: the check did not run, "
                           "so it cannot pass. Call whisperq_check(result) with the check's result")


class _TerminalProgress:
    """`progress.Sink` on pytest's terminal: on a terminal one line rewritten in place, elsewhere (CI logs)
    plain lines; written past output capturing, as pytest's live logging does."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @property
    def live(self) -> bool:  # asked when used: the terminal reporter is registered after this plugin's configure
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        return bool(reporter is not None and reporter.isatty)

    @contextmanager
    def _terminal(self) -> Iterator[pytest.TerminalReporter | None]:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            yield reporter
            return
        with capture.global_and_fixture_disabled():
            yield reporter

    def show(self, text: str) -> None:
        self._write(text, last=False)

    def finish(self, text: str) -> None:
        self._write(text, last=True)

    def _write(self, text: str, last: bool) -> None:
        with self._terminal() as reporter:
            if reporter is None:
                return
            if not reporter.isatty:
                reporter.write_line(text)
            else:
                reporter.ensure_newline()  # off the line pytest was writing test results on
                reporter.rewrite(text, erase=True)
                if last:
                    reporter.write("\n")
            reporter.flush()


class _OutcomeRecorder:
    """Remembers every whisperq test that was skipped (xfail aside): by default that fails the run; and
    every one that failed, for the release verdict. Reports carry the mark in their user properties, so
    this works on the xdist controller too."""

    def __init__(self, state: WhisperqSession) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if (GATED_PROPERTY, "required") not in report.user_properties:
            return
        if report.skipped and not hasattr(report, "wasxfail"):
            self._record(report)
        elif report.failed:
            self.state.failed_tests.add(report.nodeid)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A module skipped as a whole (`importorskip("vllm")` at its top) has no tests to carry the mark:
        in a run that gates a model, or in the shipped suite, it counts as checks that did not run."""
        if report.skipped and (self.state.settings.model is not None or _in_conformance(report.nodeid)):
            self._record(report)

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        self.state.skipped.append((report.nodeid, reason.removeprefix("Skipped: ")))


def _in_conformance(nodeid: str) -> bool:
    return nodeid.split("::")[0].replace("\\", "/").startswith("conformance/")


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash[SESSION_KEY].settings
    if settings.model is None:  # unrelated suites stay quiet; the summary names a quantized model
        return None
    return [f"whisperq: model={settings.model} base={settings.base} backend={settings.backend} "
            f"device={settings.device} dtype={settings.dtype} cache={settings.cache_dir}"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    if state is None or not state.results:
        return
    terminalreporter.section("whisperq")
    for line in state.describe_models() + state.summary_lines() + state.verdict(int(exitstatus)).lines():
        terminalreporter.write_line(line)


@contextmanager
def _as_test_failure() -> Iterator[None]:
    """A user-fixable problem fails the test with its message, not a traceback."""
    try:
        yield
    except WhisperqError as error:
        # `from None`: the message is the whole story; pytest would otherwise print the error twice,
        # joined by "During handling of the above exception, another exception occurred"
        raise pytest.fail.Exception(f"{type(error).__name__}: {error}", pytrace=False) from None


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def whisperq_session(request: pytest.FixtureRequest) -> WhisperqSession:
    return request.config.stash[SESSION_KEY]


@pytest.fixture(scope="session")
def whisperq_settings(whisperq_session: WhisperqSession) -> Settings:
    return whisperq_session.settings


@pytest.fixture(scope="session")
def whisperq_model_ref(whisperq_session: WhisperqSession) -> ResolvedModel:
    """The checkpoint under test, resolved to a local directory (downloaded or built if needed)."""
    with _as_test_failure():
        return whisperq_session.resolved("model")


@pytest.fixture(scope="session")
def whisperq_base_ref(whisperq_session: WhisperqSession) -> ResolvedModel:
    """The base model, resolved to a local directory."""
    with _as_test_failure():
        return whisperq_session.resolved("base")


@pytest.fixture(scope="session")
def whisperq_model(whisperq_session: WhisperqSession, whisperq_model_ref: ResolvedModel) -> Backend:
    """The checkpoint under test, loaded on the configured backend, device and dtype."""
    with _as_test_failure():
        return whisperq_session.backend("model")


@pytest.fixture(scope="session")
def whisperq_base(whisperq_session: WhisperqSession, whisperq_base_ref: ResolvedModel) -> Backend:
    """The base model, loaded on the configured backend, device and dtype."""
    with _as_test_failure():
        return whisperq_session.backend("base")


@pytest.fixture(scope="session")
def whisperq_model_tensors(whisperq_session: WhisperqSession, whisperq_model_ref: ResolvedModel) -> CheckpointTensors:
    """The checkpoint under test's config and safetensors headers; tensors read on demand."""
    with _as_test_failure():
        return whisperq_session.tensors("model")


@pytest.fixture(scope="session")
def whisperq_base_tensors(whisperq_session: WhisperqSession, whisperq_base_ref: ResolvedModel) -> CheckpointTensors:
    """The base's config and safetensors headers; tensors read on demand."""
    with _as_test_failure():
        return whisperq_session.tensors("base")


@pytest.fixture(scope="session")
def whisperq_model_vocabulary(whisperq_session: WhisperqSession, whisperq_model_ref: ResolvedModel) -> dict[str, int]:
    """The checkpoint under test's tokenizer vocabulary, token -> id (read as JSON, nothing executed)."""
    with _as_test_failure():
        return whisperq_session.vocabulary("model")


@pytest.fixture(scope="session")
def whisperq_base_vocabulary(whisperq_session: WhisperqSession, whisperq_base_ref: ResolvedModel) -> dict[str, int]:
    """The base's tokenizer vocabulary, token -> id."""
    with _as_test_failure():
        return whisperq_session.vocabulary("base")


@pytest.fixture(scope="session")
def whisperq_scheme(whisperq_session: WhisperqSession) -> Scheme:
    """The quantization scheme the checkpoint must have: --whisperq-scheme, or the one it declares (auto)."""
    return whisperq_session.scheme()


@pytest.fixture(scope="session")
def whisperq_layer_errors(
    whisperq_session: WhisperqSession, whisperq_model_tensors: CheckpointTensors, whisperq_base_tensors: CheckpointTensors,
) -> list[LayerError]:
    """Each quantized Linear's relative error against the base (our own INT4 unpacking)."""
    with _as_test_failure():
        return whisperq_session.layer_errors()


@pytest.fixture(scope="session")
def whisperq_layer_tolerance(whisperq_session: WhisperqSession) -> Tolerance:
    return whisperq_session.tolerance()


@pytest.fixture(scope="session")
def whisperq_eval_data(whisperq_session: WhisperqSession) -> list[Utterance]:
    """Evaluation utterances (16 kHz audio and reference text)."""
    with _as_test_failure():
        return whisperq_session.eval_data()


@pytest.fixture(scope="session")
def whisperq_normalizer(whisperq_session: WhisperqSession) -> Scoring:
    """The run's text rules (`pytest_whisperq.text.Scoring`), the same for every model: called with a text it is
    Whisper's English normaliser; `.units(text, language)` normalises and cuts any language's text."""
    with _as_test_failure():
        return whisperq_session.normalizer()


@pytest.fixture(scope="session")
def whisperq_transcribe(whisperq_session: WhisperqSession) -> Callable[[Backend, Sequence[Utterance]], list[Hypothesis]]:
    """`transcribe(backend, utterances)`: greedy transcripts, memoised for the session."""

    def transcribe(backend: Backend, utterances: Sequence[Utterance]) -> list[Hypothesis]:
        with _as_test_failure():
            return whisperq_session.transcribe(backend, utterances)

    return transcribe


@pytest.fixture(scope="session")
def whisperq_wer(
    whisperq_eval_data: list[Utterance],
    whisperq_transcribe: Callable[[Backend, Sequence[Utterance]], list[Hypothesis]],
    whisperq_normalizer: Scoring,
) -> Callable[[Backend], WerReport]:
    """`whisperq_wer(backend)`: any backend's normalised WER report on the evaluation data."""
    from pytest_whisperq.checks.transcripts import score

    def wer(backend: Backend) -> WerReport:
        return score(whisperq_eval_data, whisperq_transcribe(backend, whisperq_eval_data), whisperq_normalizer)

    return wer


@pytest.fixture(scope="session")
def whisperq_model_wer(whisperq_session: WhisperqSession, whisperq_model: Backend) -> WerReport:
    """The model under test's WER report on the evaluation data (per utterance, per subset)."""
    with _as_test_failure():
        return whisperq_session.wer_report("model")


@pytest.fixture(scope="session")
def whisperq_base_wer(whisperq_session: WhisperqSession, whisperq_base: Backend) -> WerReport:
    """The base's WER report on the same utterances (from the cache when an identical run made it)."""
    with _as_test_failure():
        return whisperq_session.wer_report("base")


@pytest.fixture(scope="session")
def whisperq_model_silence(whisperq_session: WhisperqSession, whisperq_model: Backend) -> list[tuple[str, str]]:
    """`[(clip, transcript)]`: what the model under test says on audio without speech."""
    with _as_test_failure():
        return whisperq_session.silence_transcripts("model")


@pytest.fixture(scope="session")
def whisperq_base_silence(whisperq_session: WhisperqSession, whisperq_base: Backend) -> list[tuple[str, str]]:
    """`[(clip, transcript)]`: what the base says on the same clips."""
    with _as_test_failure():
        return whisperq_session.silence_transcripts("base")


@pytest.fixture(scope="session")
def whisperq_throughput_rounds(whisperq_session: WhisperqSession) -> Callable[[], Rounds]:
    """`whisperq_throughput_rounds()`: base and model timed in interleaved rounds (`checks.throughput.Rounds`),
    measured once a run, never from a cache, when first asked for."""

    def measure() -> Rounds:
        with _as_test_failure():
            return whisperq_session.throughput_rounds()

    return measure


@pytest.fixture(scope="session")
def whisperq_detected_languages(whisperq_session: WhisperqSession) -> Callable[[str], list[str]]:
    """`whisperq_detected_languages(role)`: the language the role's model identifies in each evaluation
    utterance when none is forced, in data order."""
    def detect(role: str) -> list[str]:
        with _as_test_failure():
            return whisperq_session.detected_languages(role)

    return detect


@pytest.fixture(scope="session")
def whisperq_agreement_transcripts(
    whisperq_session: WhisperqSession, whisperq_model_ref: ResolvedModel,
) -> tuple[str, list[Hypothesis], list[Hypothesis]]:
    """`(reference_backend, its transcripts, the main backend's)`: the model under test's transcripts of
    the evaluation data from two backends. Skips, saying why, when the run has only one backend."""
    name = whisperq_session.agreement_backend()
    if name is None:
        pytest.skip(f"cross-backend agreement needs a second backend: this run uses only "
                    f"{whisperq_session.settings.backend} (set --whisperq-agreement-backend=NAME)")
    with _as_test_failure():
        reference, main = whisperq_session.agreement_transcripts()
    return name, reference, main


@pytest.fixture
def whisperq_check(request: pytest.FixtureRequest, whisperq_session: WhisperqSession) -> Callable[..., object]:
    """`whisperq_check(*results)`: record the checks' results and fail the test if any did not pass
    (all of them are recorded and shown, not only the first failure). Returns the result, or the
    list of results when given several."""

    def check(*results: CheckResult) -> CheckResult | list[CheckResult]:
        if not results:
            pytest.fail("whisperq_check() was given no result: the check did not run", pytrace=False)
        for result in results:
            whisperq_session.record(request.node.nodeid, result)
        accept = whisperq_session.settings.accept_inconclusive
        blocking = [result for result in results if blocks_release(result, accept)]
        if blocking:
            pytest.fail(failure_message(blocking), pytrace=False)
        return results[0] if len(results) == 1 else list(results)

    return check
