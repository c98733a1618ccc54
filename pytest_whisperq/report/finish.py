"""The end of a run: compare with the baseline, write the reports, save the run; in that order, so
the reports carry the comparison and the saved run is the one the reports describe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_whisperq.report.baseline import BaselineError, compare, load_run, save_run
from pytest_whisperq.report.collect import collect
from pytest_whisperq.report.write import write_reports
from pytest_whisperq.results import CheckResult

if TYPE_CHECKING:
    from pytest_whisperq.session import WhisperqSession

BASELINE_NODE = "baseline comparison"


def finish_run(session: WhisperqSession, exit_status: int) -> tuple[list[str], bool]:
    """Returns the lines to print and whether the baseline comparison failed the run."""
    settings = session.settings
    messages: list[str] = []
    failed = False
    if settings.baseline_compare is not None:
        try:
            path, baseline = load_run(settings.baseline_storage, settings.baseline_compare)
            results = compare(baseline, collect(session, exit_status), settings.baseline_fail, path.name)
        except BaselineError as error:
            results = [CheckResult(name="baseline", ok=False, detail=str(error))]
        for result in results:
            session.record(BASELINE_NODE, result)
        failed = not all(result.ok for result in results)
        messages.append(f"baseline comparison {'FAILED' if failed else 'passed'} "
                        f"({sum(r.ok for r in results)} of {len(results)} figures within their limits)")
    status = exit_status or int(failed)
    written = write_reports(session, status, settings.json, settings.markdown, settings.charts)
    messages += [f"report written to {path}" for path in written]
    if settings.baseline_save:
        messages.append(f"run saved as baseline {save_run(settings.baseline_storage, collect(session, status))}")
    return messages, failed
