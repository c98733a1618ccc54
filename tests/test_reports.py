"""The JSON and Markdown reports, rendered from a real run and checked against its results."""

from __future__ import annotations

import json

import pytest

from pytest_whisperq.cache import sha256_file
from pytest_whisperq.report.markdown import CARD_ROWS
from pytest_whisperq.resources import conformance_dir

pytest_plugins = ["pytester"]


@pytest.mark.slow(cost=340)  # seconds, cold: the order under xdist (conftest.py)
def test_reports_of_a_real_failing_run_hold_its_figures(pytester, tiny_en_w4a16, whisper_tiny_en_dir, suite_speech,
                                                       tmp_path):
    report_json, report_md = tmp_path / "run.json", tmp_path / "run.md"
    result = pytester.runpytest_subprocess(
        str(conformance_dir()), f"--whisperq-cache-dir={whisper_tiny_en_dir.parents[1]}", "-p", "no:cacheprovider",
        f"--whisperq-model={tiny_en_w4a16}", "--whisperq-base=whisper-tiny.en", "--whisperq-max-wer=40",
        "--whisperq-requests=8", "--whisperq-warmup=1", f"--whisperq-data={suite_speech}",
        f"--whisperq-json={report_json}", f"--whisperq-markdown={report_md}", f"--whisperq-charts={tmp_path / 'charts'}",
        "-k", "format or accuracy or throughput",
    )
    result.assert_outcomes(passed=16, failed=1)  # tiny.en loses several WER points at 4 bits
    result.stdout.fnmatch_lines([f"whisperq: report written to {report_json}", f"whisperq: report written to {report_md}"])
    run = json.loads(report_json.read_text())

    assert run["verdict"] == "fail" and run["exit_status"] == 1 and run["schema"] == 2
    names = [c["name"] for c in run["checks"]]
    failed = [c["name"] for c in run["checks"] if c["outcome"] == "fail" and c["gated"]]
    assert run["checks_failed"] == 1 and failed == ["wer_delta[real]"]  # the other pools are reported, not gated
    informational = {c["name"]: c["outcome"] for c in run["checks"] if not c["gated"]}
    assert set(informational) == {"wer_delta[words]", "wer_delta[synthetic]", "wer_delta[long]",
                                "wer[words]", "wer[synthetic]", "wer[long]", "throughput_ratio[rtfx]"}
    # transformers dequantizes W4A16: both models run dense weights, so the speed ratio is not a verdict
    assert informational["throughput_ratio[rtfx]"] == "not applicable"
    assert "dequantizes the checkpoint to dense weights" in run["throughput"]["ratio"]["not_comparable"]
    assert run["required"]["not_run"] == [name for name in run["required"]["checks"] if "test_sanity.py" in name]
    decision = next(c for c in run["checks"] if c["name"] == "wer_delta[real]")["decision"]
    assert decision["outcome"] == "fail" and decision["low"] > 0.5 and decision["units"] == 221
    # every utterance's errors, for simulating what this data can tell apart
    rows = [row for row in run["utterances"] if row["pool"] == "real"]
    assert len(rows) == 221 and sum(row["model_errors"] for row in rows) == run["wer"]["model"]["real"]["errors"]
    assert {"linears_packed", "wer[real]", "throughput[base]", "throughput[model]",
            "throughput_ratio[rtfx]"} <= set(names)
    # the identities: the weights' sha256 as the files on disk have it
    assert run["models"]["model"]["files"]["model.safetensors"] == sha256_file(tiny_en_w4a16 / "model.safetensors")
    assert run["models"]["base"]["spec"] == "whisper-tiny.en"
    assert run["environment"]["libraries"]["transformers"] and run["settings"]["backend"] == "transformers"
    assert run["environment"]["cpu"]["model"] and run["environment"]["cpu"]["usable_cores"] >= 1

    # the figures are the results' own: the failing check's observed delta is the pooled WERs' difference
    real = {role: run["wer"][role]["real"] for role in ("model", "base")}
    assert real["model"]["words"] == real["base"]["words"] == 2253
    delta = next(c for c in run["checks"] if c["name"] == "wer_delta[real]")
    assert delta["observed"] == pytest.approx(real["model"]["wer_percent"] - real["base"]["wer_percent"], abs=0.01)
    assert f"model WER {real['model']['wer_percent']:.2f}%" in delta["detail"]
    model_speed = next(c for c in run["checks"] if c["name"] == "throughput[model]")
    assert model_speed["observed"] == pytest.approx(run["throughput"]["model"]["figures"]["requests_per_s"], abs=1e-3)
    assert len(run["throughput"]["model"]["latencies"]) == 8 and len(run["throughput"]["model"]["rounds"]) == 1

    markdown = report_md.read_text()
    assert markdown.startswith("# pytest-whisperq: ❌ FAIL\n")
    assert "| `wer_delta[real]` | ❌ FAIL |" in markdown and "<summary><code>wer_delta[real]</code> FAIL:" in markdown
    assert "(not gated)" in markdown and "release verdict: FAIL" in markdown
    assert "| `throughput_ratio[rtfx]` | ➖ not applicable (not gated) |" in markdown
    assert "The ratio is not applicable on this backend: the transformers backend dequantizes" in markdown
    assert (f"| WER, real speech (2253 words, 221 utterances) | {real['base']['wer_percent']:.2f}% | "
            f"{real['model']['wer_percent']:.2f}% |") in markdown
    evaluation = markdown[markdown.index("## Evaluation"):]
    for label, key, fmt in CARD_ROWS:  # every row of the card, with both models' figures
        row = f"| {label} | {fmt.format(run['throughput']['base']['figures'][key])} | " \
              f"{fmt.format(run['throughput']['model']['figures'][key])} |"
        assert row in evaluation

    # the worst regressions, worst first, with the three texts
    worst = run["regressions"][0]
    assert (worst["id"], worst["base_errors"], worst["model_errors"]) == ("asterisk__basic-pbx-ivr-main", 3, 54)
    assert "| `asterisk__basic-pbx-ivr-main` | ivr\\_prompt | 3 → 54 (61) |" in markdown

    # the charts: real PNGs, linked from the page relative to it
    from PIL import Image

    for name in ("wer_per_subset.png", "latency.png"):
        chart = tmp_path / "charts" / name
        assert str(chart) in run["charts"]
        assert f"(charts/{name})" in markdown
        with Image.open(chart) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 400
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is not None and len(colours) > 20  # drawn, not blank


def test_report_paths_are_checked_before_the_run(pytester, tmp_path):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest(f"--whisperq-json={tmp_path / 'missing-folder' / 'run.json'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--whisperq-json: folder * does not exist; create it first*"])


def test_no_report_is_written_unless_asked(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "report written" not in result.stdout.str()


def test_a_run_without_accuracy_or_throughput_says_so():
    from pytest_whisperq.report.markdown import render

    run = {"verdict": "pass", "exit_status": 0, "checks_passed": 1, "checks_failed": 0, "checks_inconclusive": 0,
           "checks_informational": 0, "verdict_lines": ["release verdict: PASS: every required check ran and passed"],
           "models": {"model": {"spec": "org/w4a16", "kind": "hub", "path": "/c/x", "files": {"model.safetensors": "ab" * 32}},
                      "base": None},
           "settings": {"backend": "transformers", "dtype": "auto", "device": "auto"}, "wer": {"model": None, "base": None},
           "throughput": {}, "checks": [{"test": "t.py::test_a", "name": "linears_packed", "ok": True, "outcome": "pass",
                                         "gated": True, "observed": "96/96", "limit": "96/96", "unit": "",
                                         "decision": None, "detail": "", "evidence": []}]}
    markdown = render(run)
    assert "- model: `org/w4a16` (1 files; weights sha256 `abababababab`)" in markdown
    assert "| `linears_packed` | ✅ pass | 96/96 |  | 96/96 | `t.py::test_a` |" in markdown
    assert "- release verdict: PASS: every required check ran and passed" in markdown
    assert "Accuracy was not measured in this run." in markdown and "Throughput was not measured in this run." in markdown


def test_text_from_checkpoints_and_transcripts_cannot_rewrite_the_page():
    from pytest_whisperq.report.markdown import render

    hostile = "</summary></details>\n# ✅ PASS @everyone [click](http://x) | `code`"
    run = {"verdict": "fail", "exit_status": 1, "checks_passed": 0, "checks_failed": 1, "checks_inconclusive": 0,
           "checks_informational": 0, "verdict_lines": [f"release verdict: FAIL: failed: {hostile}"],
           "models": {"model": None, "base": None}, "settings": {"backend": "transformers", "dtype": "auto", "device": "auto"},
           "wer": {}, "throughput": {}, "regressions": [],
           "checks": [{"test": "t.py::test_a", "name": "close_to_base", "ok": False, "outcome": "fail", "gated": True,
                       "observed": 1, "limit": 0, "unit": "", "decision": None, "detail": hostile, "evidence": [hostile]}]}
    markdown = render(run)
    assert "</summary></details>\n#" not in markdown and "&lt;/summary&gt;&lt;/details&gt; \\# ✅ PASS \\@everyone" in markdown
    assert "\\[click\\](http://x) \\| \\`code\\`" in markdown
    assert markdown.count("</details>") == 1  # only our own
