"""The end of a run: compare with the baseline, draw the charts, write the reports, save the run; in
that order, so the reports carry the comparison and the saved run is the document the reports show."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_whisperq.report.baseline import BaselineError, compare, load_run, save_run
from pytest_whisperq.report.collect import collect
from pytest_whisperq.report.write import write_reports
from pytest_whisperq.decision import Outcome
from pytest_whisperq.results import CheckResult, blocks_release

if TYPE_CHECKING:
    from pytest_whisperq.session import WhisperqSession

BASELINE_NODE = "baseline comparison"


def finish_run(session: WhisperqSession, exit_status: int) -> tuple[list[str], bool]:
    """Returns the lines to print and whether the end of the run failed it (a baseline regression)."""
    settings = session.settings
    messages: list[str] = []
    failed = False
    measured = collect(session, exit_status)
    if settings.baseline_compare is not None:
        try:
            path, baseline = load_run(settings.baseline_storage, settings.baseline_compare)
            results = compare(baseline, measured, settings.baseline_fail, path.name, settings.rule(),
                              settings.gated_pools)
        except BaselineError as error:
            results = [CheckResult(name="baseline", ok=False, detail=str(error))]
        for result in results:
            session.record(BASELINE_NODE, result)
        blocking = [result for result in results if blocks_release(result, settings.accept_inconclusive)]
        failed = bool(blocking)
        outcome = ("FAILED" if any(r.outcome is Outcome.FAIL for r in blocking) else "INCONCLUSIVE" if blocking
                   else "passed")
        gated = [result for result in results if result.gated]
        reported = f"; {len(results) - len(gated)} reported, not gated" if len(gated) < len(results) else ""
        messages.append(f"baseline comparison {outcome} ({sum(r.ok for r in gated)} of {len(gated)} gated figures shown "
                        f"within their limits{reported})")
        messages += [f"  {result.describe().splitlines()[0]}" for result in blocking]
    status = exit_status or int(failed)
    charts = []
    if settings.charts is not None:
        from pytest_whisperq.report.charts import draw

        charts = draw(measured, settings.charts)
        messages += [f"chart drawn to {chart}" for chart in charts]
    run = collect(session, status, [str(chart) for chart in charts])  # now with the comparison's results
    messages += [f"report written to {path}" for path in write_reports(run, settings.json, settings.markdown)]
    if settings.baseline_save:
        if status == 0 and run["verdict"] == "pass":
            messages.append(f"run saved as baseline {save_run(settings.baseline_storage, run)}")
        else:  # a failed or partial run must not become the reference the next one is held to
            messages.append(f"run NOT saved as a baseline: its release verdict is {run['verdict']} (exit status {status})")
    return messages, failed
