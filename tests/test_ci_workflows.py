"""The GitHub Actions workflows users copy from ci/github/: valid against GitHub's workflow schema
(check-jsonschema, its vendored schema), clean under zizmor's security audit (offline), and using
only options this plugin has. Each linter is also shown to fail on a broken workflow."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_whisperq.settings import OPTIONS

WORKFLOWS = sorted((Path(__file__).parents[1] / "ci" / "github").glob("*.yml"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: it comes with pytest-whisperq[test] (./dev test installs it)",
                    pytrace=False)
    return found


def schema_check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, files)],
                          capture_output=True, text=True)


def audit(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("zizmor"), "--offline", "--no-progress", *map(str, files)], capture_output=True, text=True)


def test_the_three_workflows_are_there():
    assert [w.name for w in WORKFLOWS] == ["whisperq-nightly-gpu.yml", "whisperq-pr.yml", "whisperq-release-gate.yml"]


def test_workflows_match_githubs_schema():
    result = schema_check(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_the_security_audit():
    result = audit(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_use_only_options_the_plugin_has():
    known = {option.flag for option in OPTIONS}
    for workflow in WORKFLOWS:
        used = set(re.findall(r"--whisperq-[a-z-]+", workflow.read_text()))
        assert used, f"{workflow.name} runs no whisperq option"
        assert used <= known, f"{workflow.name}: unknown options {sorted(used - known)}"


def test_every_workflow_writes_and_uploads_the_reports():
    for workflow in WORKFLOWS:
        text = workflow.read_text()
        for needed in ("--whisperq-json=reports/whisperq.json", "--whisperq-markdown=reports/whisperq.md",
                       "--junitxml=reports/junit.xml", 'cat reports/whisperq.md >> "$GITHUB_STEP_SUMMARY"',
                       "actions/upload-artifact@", "if: always()", "persist-credentials: false"):
            assert needed in text, f"{workflow.name} lacks {needed!r}"


def test_the_linters_reject_broken_workflows(tmp_path):
    good = WORKFLOWS[-1].read_text()
    misspelt = tmp_path / "misspelt.yml"
    misspelt.write_text(good.replace("runs-on:", "run-on:"))
    assert schema_check(misspelt).returncode != 0
    injectable = tmp_path / "injectable.yml"  # an input pasted into a shell script: template injection
    injectable.write_text(good.replace('"$PYTHON" -m pytest --pyargs', 'echo ${{ inputs.checkpoint }}; "$PYTHON" -m pytest --pyargs'))
    result = audit(injectable)
    assert result.returncode != 0 and "template-injection" in result.stdout + result.stderr


def test_the_nightly_compares_with_a_pinned_reference_and_saves_nothing():
    """Compared with last night's run, each night could drift a little past the last: the nightly is held
    to one reference report (the release run's), named by a repository variable, and never saves."""
    nightly = (WORKFLOWS[0]).read_text()
    assert '--whisperq-baseline-compare="$REFERENCE"' in nightly and "vars.WHISPERQ_REFERENCE" in nightly
    assert "--whisperq-baseline-compare=latest" not in nightly and "--whisperq-baseline-save" not in nightly


def test_the_gpu_check_refuses_a_machine_without_cuda_and_tabulates_a_run(capsys):
    """`./dev gpu-check` on a CPU machine says so and exits 2; its table reads a run's JSON report."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "ci" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    assert gpu_check.main(["--out", "/nonexistent/never-written"]) == 2
    assert "torch sees no CUDA device here" in capsys.readouterr().err
    # the environment as the report records it; a python without vLLM is said to be one, with its error
    env = gpu_check.environment(sys.executable)
    assert env["cpu"]["model"] and env["gpu"] is None
    assert env["vllm (--vllm-python)"].startswith(f"not usable: {sys.executable} cannot run vLLM")
    figures = {"requests_per_s": 1.0, "output_tokens_per_s": 20.0, "rtfx": 8.0, "latency_median_s": 1.0,
               "latency_p95_s": 2.0}
    run = {"throughput": {"base": {"backend": "vllm-server", "figures": figures},
                          "model": {"backend": "vllm-server", "figures": {**figures, "rtfx": 6.0},
                                    "rounds": [{}, {}, {}]},
                          "ratio": {"rtfx_per_round": [0.74, 0.76, 0.75]}},
           "checks": [{"name": "throughput_ratio[rtfx]", "outcome": "fail", "observed": 0.75, "interval": [0.73, 0.77],
                       "limit": 0.8, "detail": "..."}]}
    table = gpu_check.throughput_table(run)
    assert "| rtfx | 8.0 | 6.0 | 0.750 |" in table
    assert any(line.startswith("throughput_ratio[rtfx]: fail (median 0.75, interval [0.73, 0.77]") for line in table)


def test_the_gpu_check_runs_its_steps_on_cuda_and_rehearses_them_on_cpu(monkeypatch, tmp_path, capsys):
    """Step 2's W4A16 checkpoint (read from its JSON report) goes to the vLLM steps; float16 on CUDA; on CPU
    (`--device cpu`, the rehearsal where no GPU is lent) transformers in its default dtype and vLLM in bfloat16;
    other arguments reach every run; a missing vLLM fails the check, never skips it."""
    import importlib

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "ci"))
    gpu_check = importlib.import_module("gpu_check")
    calls = []

    def fake_suite(out, name, python, *args):
        calls.append((name, python, args))
        throughput = {"backend": "vllm-server", "figures": {"requests_per_s": 1.0, "output_tokens_per_s": 20.0,
                      "rtfx": 8.0, "latency_median_s": 1.0, "latency_p95_s": 2.0}}
        return 0, {"models": {"model": {"path": "/made/w4a16"}}, "checks": [],
                   "throughput": {"base": throughput, "model": throughput}}, 1.0

    monkeypatch.setattr(gpu_check, "suite", fake_suite)
    monkeypatch.delenv("WHISPERQ_VLLM_PYTHON", raising=False)  # ./dev test sets it
    monkeypatch.setattr(gpu_check, "environment", lambda vllm_python: {"gpu": "NVIDIA H200", "vllm": None})
    assert gpu_check.main(["--out", str(tmp_path / "cuda"), "--vllm-python", "/v/python", "--whisperq-data=D"]) == 0
    assert [(name, python) for name, python, _ in calls] == [
        ("transformers-cuda", gpu_check.sys.executable), ("vllm-server", gpu_check.sys.executable),
        ("vllm-in-process", "/v/python")]
    for _, _, args in calls:
        assert {"--whisperq-data=D", "--whisperq-dtype=float16"} <= set(args)
    assert "--whisperq-device=cuda" in calls[0][2]
    assert {"--whisperq-model=/made/w4a16", "--whisperq-backend=vllm-server", "--whisperq-vllm-python=/v/python"} <= set(
        calls[1][2])
    printed = capsys.readouterr().out
    assert "| rtfx | 8.0 | 8.0 | 1.000 |" in printed
    assert "gpu-check: transformers-cuda ok, vllm-server ok, vllm ok" in printed

    calls.clear()
    monkeypatch.setattr(gpu_check, "environment", lambda vllm_python: {"gpu": None, "vllm": None})
    assert gpu_check.main(["--out", str(tmp_path / "cpu"), "--device", "cpu", "--vllm-python", "/v/python"]) == 0
    assert [name for name, _, _ in calls] == ["transformers-cpu", "vllm-server", "vllm-in-process"]
    assert "--whisperq-device=cpu" in calls[0][2] and not any(a.startswith("--whisperq-dtype") for a in calls[0][2])
    assert all("--whisperq-dtype=bfloat16" in args for _, _, args in calls[1:])

    calls.clear()
    assert gpu_check.main(["--out", str(tmp_path / "no-vllm"), "--device", "cpu"]) == 1
    assert [name for name, _, _ in calls] == ["transformers-cpu"]
    assert "vllm FAILED (1)" in capsys.readouterr().out


def test_the_scheme_matrix_gates_each_scheme_and_refuses_its_wrong_declaration(monkeypatch, tmp_path, capsys):
    """`./dev schemes`: each scheme quantized and gated by the whole suite (pytest arguments passed through), its
    checkpoint then declared as another scheme, which must fail; the table and exit status say which did not."""
    import argparse
    import importlib
    from pathlib import Path

    import pytest

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "ci"))
    matrix = importlib.import_module("scheme_matrix")
    calls = []
    wrong_outcome = {"ok": False}

    def fake_suite(out, name, python, *args):
        calls.append((name, args))
        if "-as-" in name:
            return 1, {"verdict": "fail", "checks": [{"name": "quantization_config", "observed": 5, **wrong_outcome,
                                                      "evidence": ["format: 'int-quantized', expected 'pack-quantized'"]}]}, 1.0
        return 0, {"verdict": "pass", "scheme": {"label": f"{name} (declared)"},
                   "models": {"model": {"path": f"/made/{name}"}},
                   "checks": [{"name": "wer_delta[real]", "observed": -0.09, "decision": {"low": -0.26, "high": 0.09}},
                              {"name": "dequantized_weights_close", "observed": 1.59}]}, 1.0

    monkeypatch.setattr(matrix, "suite", fake_suite)
    assert matrix.main(["--schemes", "W8A8,W4A16:64:weight", "--out", str(tmp_path), "--whisperq-data=D"]) == 0
    assert [name for name, _ in calls] == ["W8A8", "W8A8-as-W8A16", "W4A16-G64-weight", "W4A16-G64-weight-as-W4A16_ASYM"]
    assert {"--whisperq-scheme=W8A8", "--whisperq-data=D"} <= set(calls[0][1])
    assert {"--whisperq-model=/made/W8A8", "--whisperq-scheme=W8A16", "format"} <= set(calls[1][1])
    assert {"--whisperq-group-size=64", "--whisperq-actorder=weight"} <= set(calls[2][1])
    printed = capsys.readouterr().out
    assert ("| W8A8 | W8A8 (declared) | -0.09 [-0.26, +0.09] | 1.59 x | PASS | fails: 5 deviations, e.g. format: "
            "'int-quantized', expected 'pack-quantized' |") in printed
    assert "schemes: all passed, each wrong declaration refused" in printed

    wrong_outcome["ok"] = True  # a checkpoint that passes as a scheme it is not: the matrix fails
    assert matrix.main(["--schemes", "W8A8", "--out", str(tmp_path)]) == 1
    assert "NOT as they must be: W8A8" in capsys.readouterr().out
    with pytest.raises(argparse.ArgumentTypeError, match="W9A9: no other scheme"):
        matrix.parse_entries("W9A9")
