"""The release verdict: pass only when every required check ran and passed.

pytest's exit status says whether the tests that ran passed; a release needs more. `-k format` or
`--deselect` can leave the accuracy gate unrun with exit status 0, so the verdict lists the shipped
suite's checks (the `test_*` functions of `conformance/`) and says "partial" when any did not run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pytest_whisperq.decision import Outcome
from pytest_whisperq.results import CheckResult, blocks_release

AGREEMENT_TEST = "test_agreement.py::test_backends_agree_on_the_model"
LANGUAGE_ID_TEST = "test_language_id.py::test_identified_languages_match_the_base"  # only with --whisperq-language-id
MAX_LISTED = 8


@lru_cache(maxsize=4)
def suite_tests(conformance: Path) -> tuple[str, ...]:
    """`file::function` of every test the shipped suite defines (read with ast; nothing imported)."""
    names = []
    for path in sorted(conformance.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names += [f"{path.name}::{node.name}" for node in tree.body
                  if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    return tuple(names)


def short_id(nodeid: str) -> str:
    """`conformance/test_x.py::test_y[param]` -> `test_x.py::test_y`, the form required tests are named in."""
    path, _, rest = nodeid.partition("::")
    return f"{path.replace(chr(92), '/').rsplit('/', 1)[-1]}::{rest.split('[', 1)[0]}"


@dataclass(frozen=True)
class Verdict:
    verdict: str  # pass | fail | inconclusive | partial
    not_run: tuple[str, ...]
    failed: tuple[str, ...]  # check names that failed, and tests that failed without a result
    inconclusive: tuple[str, ...]
    accepted_inconclusive: tuple[str, ...]

    def lines(self) -> list[str]:
        head = f"release verdict: {self.verdict.upper()}"
        reasons = {
            "pass": "every required check ran and passed",
            "fail": "failed: " + ", ".join(self.failed),
            "inconclusive": "the data could not decide: " + ", ".join(self.inconclusive)
                            + " (add evaluation data, or --whisperq-accept-inconclusive)",
            "partial": f"{len(self.not_run)} required check(s) did not run, so this is not a release",
        }
        lines = [f"{head}: {reasons[self.verdict]}"]
        if self.accepted_inconclusive:
            lines.append("  accepted although inconclusive (--whisperq-accept-inconclusive): "
                         + ", ".join(self.accepted_inconclusive))
        lines += [f"  not run: {name}" for name in self.not_run[:MAX_LISTED]]
        if len(self.not_run) > MAX_LISTED:
            lines.append(f"  ... and {len(self.not_run) - MAX_LISTED} more not run (the JSON report lists them all)")
        return lines


def release_verdict(results: Sequence[tuple[str, CheckResult]], failed_tests: Iterable[str], required: Sequence[str],
                    exit_status: int, accept_inconclusive: bool) -> Verdict:
    """Combine the recorded results, the tests pytest saw fail and the required checks into one verdict."""
    failed_tests = set(failed_tests)
    explained = {nodeid for nodeid, result in results if blocks_release(result, accept_inconclusive)}
    failed = [result.name for _, result in results if result.gated and result.outcome is Outcome.FAIL]
    failed += sorted(short_id(t) for t in failed_tests - explained)
    inconclusive = [result.name for _, result in results if result.gated and result.outcome is Outcome.INCONCLUSIVE]
    ran = {short_id(nodeid) for nodeid, _ in results} | {short_id(t) for t in failed_tests}
    not_run = tuple(name for name in required if name not in ran)
    accepted = tuple(inconclusive) if accept_inconclusive else ()
    if failed or (exit_status != 0 and not inconclusive):
        verdict = "fail"
        if not failed:
            failed = [f"pytest exit status {exit_status}"]
    elif inconclusive and not accept_inconclusive:
        verdict = "inconclusive"
    elif exit_status != 0:
        verdict, failed = "fail", [f"pytest exit status {exit_status}"]
    elif not_run:
        verdict = "partial"
    else:
        verdict = "pass"
    return Verdict(verdict, not_run, tuple(failed), tuple(inconclusive) if not accept_inconclusive else (), accepted)
