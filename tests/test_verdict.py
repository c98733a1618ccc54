"""The release verdict: pass only when every required check ran and passed; partial, inconclusive and
fail each for its reason."""

from __future__ import annotations

from pytest_whisperq.decision import decide
from pytest_whisperq.report.verdict import release_verdict, short_id, suite_tests
from pytest_whisperq.resources import conformance_dir
from pytest_whisperq.results import CheckResult

REQUIRED = ["test_accuracy.py::test_wer_delta_within_limit", "test_format.py::test_every_linear_is_packed"]
PASSED = CheckResult("linears_packed", True)
INCONCLUSIVE = CheckResult("wer_delta[real]", False, decision=decide(0.3, 0.5, 0.5, 0.5, 100))
INFO_FAIL = CheckResult("wer_delta[synthetic]", False, decision=decide(3.0, 0.1, 0.5, 0.5, 100), gated=False)


def node(name: str) -> str:
    return f"conformance/{name}"


def test_the_shipped_suite_is_read_without_importing_it():
    tests = suite_tests(conformance_dir())
    assert "test_accuracy.py::test_wer_delta_within_limit" in tests
    assert "test_agreement.py::test_backends_agree_on_the_model" in tests
    assert len([t for t in tests if t.startswith("test_format.py::")]) == 13
    assert short_id("conformance/test_x.py::test_y[a-b]") == "test_x.py::test_y"


def test_every_required_check_passing_is_a_pass():
    results = [(node(REQUIRED[0]), CheckResult("wer_delta[real]", True)), (node(REQUIRED[1]), PASSED),
               (node(REQUIRED[0]), INFO_FAIL)]  # a failing figure that is not gated does not block
    verdict = release_verdict(results, set(), REQUIRED, 0, accept_inconclusive=False)
    assert verdict.verdict == "pass" and verdict.lines() == ["release verdict: PASS: every required check ran and passed"]


def test_a_check_that_did_not_run_makes_the_run_partial():
    verdict = release_verdict([(node(REQUIRED[1]), PASSED)], set(), REQUIRED, 0, accept_inconclusive=False)
    assert verdict.verdict == "partial" and verdict.not_run == (REQUIRED[0],)
    assert verdict.lines()[-1] == f"  not run: {REQUIRED[0]}"


def test_inconclusive_is_its_own_verdict_unless_accepted():
    results = [(node(REQUIRED[0]), INCONCLUSIVE), (node(REQUIRED[1]), PASSED)]
    failed_tests = {node(REQUIRED[0])}
    verdict = release_verdict(results, failed_tests, REQUIRED, 1, accept_inconclusive=False)
    assert verdict.verdict == "inconclusive" and verdict.inconclusive == ("wer_delta[real]",)
    accepted = release_verdict(results, set(), REQUIRED, 0, accept_inconclusive=True)
    assert accepted.verdict == "pass" and accepted.accepted_inconclusive == ("wer_delta[real]",)
    assert "accepted although inconclusive (--whisperq-accept-inconclusive): wer_delta[real]" in accepted.lines()[1]


def test_a_failure_outranks_an_inconclusive_and_a_test_failing_without_a_result_is_named():
    results = [(node(REQUIRED[0]), INCONCLUSIVE), (node(REQUIRED[1]), CheckResult("linears_packed", False))]
    verdict = release_verdict(results, {node(REQUIRED[0]), node(REQUIRED[1])}, REQUIRED, 1, False)
    assert verdict.verdict == "fail" and verdict.failed == ("linears_packed",)
    errored = release_verdict([(node(REQUIRED[0]), INCONCLUSIVE)], {node(REQUIRED[0]), node(REQUIRED[1])}, REQUIRED, 1,
                              False)
    assert errored.verdict == "fail" and errored.failed == (REQUIRED[1],)  # errored in its fixture: no result
