"""No false pass: a whisperq check that did not run fails the run with its reason, unless the user
allowed it; the exit status reflects every check. Through pytester, without loading a model."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def run(pytester: pytest.Pytester, tmp_path: Path):
    def run_(source: str, *args: str, subprocess: bool = False) -> pytest.RunResult:
        pytester.makepyfile(test_gate=textwrap.dedent(source))
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        return runner(f"--whisperq-cache-dir={tmp_path / 'cache'}", "-p", "no:cacheprovider", *args)

    return run_


SKIPPING_CHECK = """
    import pytest

    def test_needs_a_gpu(whisperq_settings):
        pytest.skip("no GPU on this runner")

    def test_passes(whisperq_settings):
        pass

    def test_unrelated_skip():
        pytest.skip("not a whisperq test")

    @pytest.mark.xfail(reason="known", strict=False)
    def test_expected_failure(whisperq_settings):
        assert False
"""


def test_a_skipped_check_fails_the_run_with_its_reason(run) -> None:
    result = run(SKIPPING_CHECK)
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "whisperq: 1 whisperq check(s) skipped, FAIL: a gate that could not check must not pass; *--whisperq-allow-skip*",
        "whisperq:   test_gate.py::test_needs_a_gpu: no GPU on this runner",
    ])
    assert "test_unrelated_skip" not in result.stdout.str().split("short test summary")[0].split("whisperq:")[-1]


def test_skips_are_accepted_only_when_the_user_says_so(run) -> None:
    result = run(SKIPPING_CHECK, "--whisperq-allow-skip")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["whisperq: 1 whisperq check(s) skipped, accepted (--whisperq-allow-skip):"])


def test_the_ini_file_can_allow_skips(run, pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nwhisperq_allow_skip = true\n")
    assert run(SKIPPING_CHECK).ret == pytest.ExitCode.OK


def test_a_suite_without_whisperq_tests_keeps_its_skips(run) -> None:
    result = run("""
        import pytest

        def test_skip():
            pytest.skip("elsewhere")
    """)
    assert result.ret == pytest.ExitCode.OK
    assert "whisperq:" not in result.stdout.str()


def test_skips_fail_the_run_under_xdist_too(run) -> None:
    result = run(SKIPPING_CHECK, "-n", "2", subprocess=True)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_gate.py::test_needs_a_gpu: no GPU on this runner"])


def test_a_test_that_asks_for_whisperq_check_and_records_nothing_fails(run) -> None:
    result = run("""
        def test_forgot_to_check(whisperq_check):
            result = "computed but never checked"

        def test_checks(whisperq_check):
            from pytest_whisperq.results import CheckResult
            whisperq_check(CheckResult("fine", True))

        def test_fails_on_its_own(whisperq_check):
            assert 1 == 2
    """)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*test_forgot_to_check asked for whisperq_check but recorded no result: the check did not run*",
    ])
    # a test that failed on its own keeps its own failure: only the silent pass is turned into one.
    # Read from the failures section: the short summary repeats messages as far as the terminal is wide.
    failures = result.stdout.str().split("short test summary info")[0]
    own_failure = failures.split("test_fails_on_its_own ___")[1]
    assert "assert 1 == 2" in own_failure
    assert "recorded no result" not in own_failure
    assert failures.count("asked for whisperq_check but recorded no result") == 1


def test_agreement_is_deselected_and_said_so_when_the_run_has_one_backend(run) -> None:
    source = """
        def test_agreement(whisperq_agreement_transcripts):
            raise AssertionError("must not run without a second backend")

        def test_other(whisperq_settings):
            pass
    """
    result = run(source, "--whisperq-model=whisper-tiny.en")
    result.assert_outcomes(passed=1, deselected=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["whisperq: 1 cross-backend agreement test(s) deselected: this run uses only the "
                                 "transformers backend (set --whisperq-agreement-backend=NAME to compare it with another)"])
    explicit = run(source, "--whisperq-model=whisper-tiny.en", "--whisperq-agreement-backend=none")
    explicit.stdout.fnmatch_lines(["*deselected: --whisperq-agreement-backend=none"])
    # under xdist the workers collect: the controller prints their note once
    parallel = run(source, "--whisperq-model=whisper-tiny.en", "-n", "2", subprocess=True)
    assert parallel.ret == pytest.ExitCode.OK
    assert parallel.stdout.str().count("whisperq: 1 cross-backend agreement test(s) deselected: this run uses only") == 1


def test_the_reports_name_what_did_not_run(run, tmp_path: Path) -> None:
    import json

    result = run(SKIPPING_CHECK, f"--whisperq-json={tmp_path / 'run.json'}", f"--whisperq-markdown={tmp_path / 'run.md'}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["verdict"] == "fail" and report["exit_status"] == 1
    assert report["skipped"] == [{"test": "test_gate.py::test_needs_a_gpu", "reason": "no GPU on this runner"}]
    assert "- not run, **fails the run**: `test_gate.py::test_needs_a_gpu`: no GPU on this runner" in \
        (tmp_path / "run.md").read_text()


def test_a_module_skipped_as_a_whole_fails_a_gating_run(run) -> None:
    source = """
        import pytest

        pytest.importorskip("a_backend_that_is_not_installed")

        def test_on_that_backend(whisperq_settings):
            pass
    """
    gating = run(source, "--whisperq-model=whisper-tiny.en")
    assert gating.ret == pytest.ExitCode.TESTS_FAILED
    gating.stdout.fnmatch_lines(["whisperq:   test_gate.py: could not import 'a_backend_that_is_not_installed'*"])
    # allowed, or no model gated and not the shipped suite: pytest's own verdict on a run with no tests
    allowed = run(source, "--whisperq-model=whisper-tiny.en", "--whisperq-allow-skip")
    assert allowed.ret == pytest.ExitCode.NO_TESTS_COLLECTED and "accepted (--whisperq-allow-skip)" in allowed.stdout.str()
    ordinary = run(source)
    assert ordinary.ret == pytest.ExitCode.NO_TESTS_COLLECTED and "whisperq:" not in ordinary.stdout.str()
