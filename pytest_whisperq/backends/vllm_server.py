"""`vllm-server`: vLLM's OpenAI-compatible server, started here from the Python environment vLLM is
installed in (its pins clash with llm-compressor's, so it usually lives in its own), bound to
loopback on a free port, and stopped when the run ends."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_whisperq.backends.openai_server import OpenAIServerBackend
from pytest_whisperq.backends.server import LOOPBACK, ServerProcess, free_port
from pytest_whisperq.backends.vllm_common import CPU_KV_CACHE_GIB, MAX_MODEL_LEN, explain
from pytest_whisperq.cache import safe_name

if TYPE_CHECKING:
    from pytest_whisperq.models.resolve import ResolvedModel
    from pytest_whisperq.settings import Settings

SERVED_NAME = "whisper"


def vllm_python(settings: Settings) -> Path:
    explicit = settings.vllm_python or os.environ.get("WHISPERQ_VLLM_PYTHON")
    return Path(explicit) if explicit else Path(sys.executable)


def server_command(python: Path, model_dir: Path, port: int, dtype: str, memory_fraction: float = 0.3) -> list[str]:
    # `vllm serve` is broken in some CPU builds; the module entry point is the same server.
    return [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", SERVED_NAME, "--host", LOOPBACK, "--port", str(port),
            "--max-model-len", str(MAX_MODEL_LEN), "--enforce-eager", "--dtype", dtype,
            "--gpu-memory-utilization", str(memory_fraction)]  # GPU: room for the base's server beside it


class VllmServerBackend(OpenAIServerBackend):
    name = "vllm-server"
    cacheable = True  # started here from the checkpoint on disk: its content and the vLLM version are the key

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "vllm": self.engine_version}


def start_vllm_server(model: ResolvedModel, settings: Settings, log_dir: Path) -> VllmServerBackend:
    import httpx

    python = vllm_python(settings)
    port = free_port()
    dtype = settings.dtype  # vLLM's "auto" is the checkpoint's own dtype
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)}
    server = ServerProcess(
        f"vLLM server for {model.label} (python {python}; is vllm installed there? see --whisperq-vllm-python)",
        server_command(python, model.path, port, dtype, settings.vllm_memory_fraction), f"http://{LOOPBACK}:{port}/health",
        log_dir / f"vllm-{safe_name(model.path.name)}-{port}.log", env=env, startup_timeout=settings.startup_timeout,
        explain=explain,
    )
    server.start()
    url = f"http://{LOOPBACK}:{port}/v1"
    backend = VllmServerBackend(model, url, SERVED_NAME, concurrency=settings.concurrency,
                                request_timeout=settings.request_timeout, server=server, dtype=dtype)
    try:
        backend.engine_version = str(httpx.get(f"http://{LOOPBACK}:{port}/version", timeout=10).json().get("version"))
    except (httpx.HTTPError, ValueError, AttributeError):
        backend.engine_version = "unknown"
    return backend
