"""Saved runs and comparison against them: numbered saves, `latest`/number/path lookup, thresholds
in points and percent, and a real run that passes against itself and fails against a better one."""

from __future__ import annotations

import json

import pytest

from pytest_whisperq.errors import ConfigError
from pytest_whisperq.report.baseline import BaselineError, compare, load_run, parse_thresholds, save_run
from pytest_whisperq.resources import conformance_dir

pytest_plugins = ["pytester"]


def run_with(wer_real: float, rtfx: float | None = None) -> dict:
    """A report whose model has `wer_real` percent WER on 400 real utterances of 10 words (one error
    each on the first ones), kept per utterance as schema 2 reports keep them."""
    errors = round(wer_real * 40)
    rows = [{"id": f"u{i:03d}", "pool": "real", "words": 10, "model_errors": int(i < errors)} for i in range(400)]
    run = {"checks": [], "wer": {"model": {"real": {"wer_percent": wer_real}}}, "throughput": {}, "utterances": rows}
    if rtfx is not None:
        run["throughput"]["model"] = {"figures": {"rtfx": rtfx}}
    return run


def test_thresholds_parse_with_their_units():
    wer, rtfx = parse_thresholds("wer:0.3, rtfx:10%")
    assert (wer.metric, wer.limit, wer.unit, wer.larger_is_worse) == ("wer", 0.3, "points", True)
    assert (rtfx.metric, rtfx.limit, rtfx.unit, rtfx.larger_is_worse) == ("rtfx", 10.0, "%", False)
    for bad, message in (("speed:5%", "unknown metric 'speed'"), ("rtfx:10", "compared in percent"),
                         ("wer:1%", "compared in points"), ("wer:x", "not a number"), ("", "no threshold")):
        with pytest.raises(ConfigError, match=message):
            parse_thresholds(bad)


def test_regressions_beyond_the_limit_fail_and_others_pass():
    thresholds = parse_thresholds("wer:0.5,rtfx:10%")
    same = compare(run_with(3.0, 5.0), run_with(3.4, 4.6), thresholds, "0001")
    assert [r.ok for r in same] == [True, True]  # +0.4 points, -8%
    worse = compare(run_with(3.0, 5.0), run_with(3.6, 4.0), thresholds, "0001")
    assert [(r.name, r.ok, r.observed, str(r.outcome)) for r in worse] == [
        ("baseline[wer[real]]", False, 0.6, "fail"), ("baseline[rtfx]", False, 20.0, "fail")]
    assert ("wer[real]: 3.00% in 0001, 3.60% now, on the same 400 utterances; worse by +0.60 points; FAIL: resolved"
            in worse[0].detail)
    assert "--whisperq-baseline-save" in worse[0].detail
    better = compare(run_with(3.0, 5.0), run_with(1.0, 9.0), thresholds, "0001")
    assert all(r.ok for r in better)


def test_a_wer_change_the_data_cannot_resolve_is_inconclusive():
    small, same = run_with(3.0), run_with(3.0)
    small["utterances"] = small["utterances"][:40]
    same["utterances"] = same["utterances"][:40]  # no change, but on 400 words a rise of 0.5 stays plausible
    [result] = compare(small, same, parse_thresholds("wer:0.5"), "0001")
    assert result.outcome == "inconclusive" and not result.ok and result.observed == 0.0


def test_the_wer_of_a_pool_that_is_not_gated_is_reported_never_failed():
    both, drifted = run_with(3.0), run_with(3.0)
    both["utterances"] += [{**row, "pool": "synthetic"} for row in run_with(2.0)["utterances"]]
    drifted["utterances"] += [{**row, "pool": "synthetic"} for row in run_with(4.0)["utterances"]]
    for run, synthetic in ((both, 2.0), (drifted, 4.0)):
        run["wer"]["model"]["synthetic"] = {"wer_percent": synthetic}
    real, synthetic = compare(both, drifted, parse_thresholds("wer:0.5"), "0001")
    assert real.ok and real.gated
    assert synthetic.outcome == "fail" and not synthetic.gated  # reported: it cannot fail the run


def test_a_baseline_without_per_utterance_errors_cannot_be_judged():
    old = run_with(3.0)
    del old["utterances"]
    [result] = compare(old, run_with(3.0), parse_thresholds("wer:0.5"), "0001")
    assert result.outcome == "inconclusive" and "no per-utterance errors (a report from before schema 2)" in result.detail


def test_latency_may_not_rise_and_a_zero_baseline_cannot_be_compared():
    def with_p95(value):
        return {"checks": [], "throughput": {"model": {"figures": {"latency_p95_s": value}}}}

    [slower] = compare(with_p95(2.0), with_p95(2.5), parse_thresholds("latency_p95_s:10%"), "0001")
    assert not slower.ok and slower.observed == 25.0
    [faster] = compare(with_p95(2.0), with_p95(1.0), parse_thresholds("latency_p95_s:10%"), "0001")
    assert faster.ok
    [zero] = compare(with_p95(0.0), with_p95(1.0), parse_thresholds("latency_p95_s:10%"), "0001")
    assert not zero.ok and "no change in percent can be taken" in zero.detail


def test_runs_that_measured_different_things_are_not_compared():
    baseline, current = run_with(3.0), run_with(3.0)
    baseline["settings"] = {"data_limit": None, "backend": "transformers"}
    current["settings"] = {"data_limit": 12, "backend": "transformers"}
    results = compare(baseline, current, parse_thresholds("wer:0.5"), "0001")
    assert [(r.name, r.ok) for r in results] == [("baseline_comparable[data_limit]", False), ("baseline[wer[real]]", True)]
    assert "data_limit is 12 in this run but None in 0001" in results[0].detail
    both = run_with(3.0)
    both["wer"]["model"]["synthetic"] = {"wer_percent": 2.0}
    both["utterances"] += [{**row, "pool": "synthetic"} for row in run_with(2.0)["utterances"]]
    [missing, same] = compare(both, run_with(3.0), parse_thresholds("wer:0.5"), "0001")
    assert not missing.ok and "0001 has wer[synthetic] but this run did not measure it" in missing.detail and same.ok


def test_a_malformed_baseline_is_a_baseline_error_not_a_traceback():
    broken = {"checks": [], "wer": {"model": {"real": {"wer_percent": None}}}}
    with pytest.raises(BaselineError, match="not a report this version can compare with"):
        compare(broken, run_with(3.0), parse_thresholds("wer:0.5"), "0001")


def test_a_metric_this_run_did_not_measure_fails_with_the_reason():
    [result] = compare(run_with(3.0, 5.0), run_with(3.0), parse_thresholds("rtfx:10%"), "0001")
    assert not result.ok and "rtfx was not measured in this run" in result.detail


def test_runs_are_numbered_and_found_by_latest_number_or_path(tmp_path):
    first, second = save_run(tmp_path, run_with(1.0)), save_run(tmp_path, run_with(2.0))
    assert first.name.startswith("0001_") and second.name.startswith("0002_")
    assert load_run(tmp_path, "latest") == (second, run_with(2.0))
    assert load_run(tmp_path, "1") == (first, run_with(1.0))
    assert load_run(tmp_path, str(first))[0] == first
    with pytest.raises(BaselineError, match="no saved run number 7"):
        load_run(tmp_path, "7")
    with pytest.raises(BaselineError, match="no saved run in .* save one first with --whisperq-baseline-save"):
        load_run(tmp_path / "empty", "latest")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(BaselineError, match="cannot be read as a report"):
        load_run(tmp_path, str(tmp_path / "junk.json"))
    (tmp_path / "other.json").write_text(json.dumps({"benchmarks": []}))
    with pytest.raises(BaselineError, match="not a pytest-whisperq report"):
        load_run(tmp_path, str(tmp_path / "other.json"))


def test_compare_without_thresholds_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--whisperq-baseline-compare=latest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--whisperq-baseline-compare needs --whisperq-baseline-fail*"])


@pytest.mark.slow(cost=580)  # seconds, cold: the order under xdist (conftest.py)
def test_a_nightly_sees_drift_against_its_pinned_reference(pytester, tiny_en_w4a16, whisper_tiny_en_dir, suite_speech,
                                                           tmp_path):
    """The reference is whisper-tiny.en's report (a JSON path, as the nightly workflow pins it); a night
    on the same model passes against it; a night on a W4A16 checkpoint whose own accuracy tests pass (it
    is its own base) but whose WER is 7.5 points above the reference's fails on the comparison alone.
    A run of part of the suite is never saved as a baseline: its release verdict is partial."""
    storage, reference = tmp_path / "baselines", tmp_path / "reference.json"

    def night(model, *extra):
        return pytester.runpytest_subprocess(
            str(conformance_dir()), f"--whisperq-cache-dir={whisper_tiny_en_dir.parents[1]}", "-p", "no:cacheprovider",
            f"--whisperq-model={model}", f"--whisperq-base={model}", "--whisperq-max-wer=40", "-k", "accuracy",
            f"--whisperq-data={suite_speech}",
            f"--whisperq-baseline-storage={storage}", *extra)

    first = night(whisper_tiny_en_dir, f"--whisperq-json={reference}", "--whisperq-baseline-save")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["whisperq: run NOT saved as a baseline: its release verdict is partial (exit status 0)",
                                "release verdict: PARTIAL: * required check(s) did not run, so this is not a release"])
    assert not storage.exists() and json.loads(reference.read_text())["verdict"] == "partial"

    same = night(whisper_tiny_en_dir, f"--whisperq-baseline-compare={reference}", "--whisperq-baseline-fail=wer:0.5")
    assert same.ret == 0
    same.stdout.fnmatch_lines(["whisperq: baseline comparison passed (1 of 1 gated figures shown within their limits; "
                               "3 reported, not gated)"])
    same.stdout.fnmatch_lines(["PASS baseline[[]wer[[]real[]][]] 0.0 points [[]*[]] (limit 0.5 points)  [[]baseline comparison[]]"])

    drifted = night(tiny_en_w4a16, f"--whisperq-baseline-compare={reference}", "--whisperq-baseline-fail=wer:0.5",
                    f"--whisperq-json={tmp_path / 'night3.json'}")
    drifted.assert_outcomes(passed=2)  # every test passed ...
    assert drifted.ret == pytest.ExitCode.TESTS_FAILED  # ... and the run fails on the comparison
    drifted.stdout.fnmatch_lines(["whisperq: baseline comparison FAILED (0 of 1 gated figures shown within their limits; "
                                  "3 reported, not gated)"])
    drifted.stdout.fnmatch_lines([
        "FAIL baseline[[]wer[[]real[]][]] * [[]+*, +*[]] (limit 0.5 points)  [[]baseline comparison[]]",
        "    wer[[]real[]]: *% in reference.json, *% now, on the same 221 utterances; worse by +* points; FAIL: shown beyond*",
    ])
    report = json.loads((tmp_path / "night3.json").read_text())
    assert report["verdict"] == "fail" and report["exit_status"] == 1
    assert [c["name"] for c in report["checks"] if not c["ok"] and c["gated"]] == ["baseline[wer[real]]"]
    assert {c["name"] for c in report["checks"] if not c["gated"] and c["test"] == "baseline comparison"} == {
        "baseline[wer[words]]", "baseline[wer[synthetic]]", "baseline[wer[long]]"}


def test_reports_and_baselines_refuse_xdist_workers(pytester, tmp_path):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("-n", "2", f"--whisperq-json={tmp_path / 'run.json'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*reports and baselines are made from one process's results: run without*-n*"])


def test_a_report_that_cannot_be_written_fails_the_run_with_the_reason(pytester, tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    pytester.makepyfile(f"import shutil\n\ndef test_removes_the_folder():\n    shutil.rmtree({str(folder)!r})\n")
    result = pytester.runpytest_subprocess(f"--whisperq-json={folder / 'run.json'}")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["whisperq: the end of the run failed: FileNotFoundError: *run.json*"])
