"""Run by the vLLM environment's python (tests/test_vllm_schemes.py): a vLLM backend as the suite builds it,
`vllm-server` (a server started from this python) or in-process `vllm`, on each checkpoint in turn (one
process: vLLM is imported once); the data's utterances transcribed, or the error the backend raised. Prints a
line per checkpoint: PROBE {"checkpoint": ..., "texts": [...]} or PROBE {"checkpoint": ..., "error": "..."}.

    python tests/vllm_scheme_probe.py DATA_DIR LOG_DIR vllm-server=CHECKPOINT vllm=CHECKPOINT ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def open_backend(kind: str, checkpoint: Path, log_dir: Path) -> Any:
    from pytest_whisperq.models.resolve import ResolvedModel
    from pytest_whisperq.models.spec import parse_model_spec

    model = ResolvedModel(parse_model_spec(str(checkpoint)), checkpoint)
    if kind == "vllm":
        from pytest_whisperq.backends.vllm_offline import VllmBackend

        return VllmBackend(model, batch_size=4)
    from pytest_whisperq.backends.vllm_server import start_vllm_server
    from pytest_whisperq.settings import build_settings

    settings = build_settings({"vllm_python": Path(sys.executable), "batch_size": 4, "concurrency": 4}, {})
    return start_vllm_server(model, settings, log_dir)


def probe(kind: str, checkpoint: Path, data: Path, log_dir: Path) -> dict[str, Any]:
    from pytest_whisperq.data import load_local_dataset
    from pytest_whisperq.errors import WhisperqError

    utterances = load_local_dataset(data)
    try:
        backend = open_backend(kind, checkpoint, log_dir)
        try:
            return {"texts": [hypothesis.text for hypothesis in backend.transcribe(utterances)]}
        finally:
            backend.close()
    except WhisperqError as error:
        return {"error": f"{type(error).__name__}: {error}"}


if __name__ == "__main__":
    data, log_dir, *runs = sys.argv[1:]
    for run in runs:
        kind, named = run.split("=", 1)
        found = probe(kind, Path(named), Path(data), Path(log_dir))
        print("PROBE " + json.dumps({"backend": kind, "checkpoint": named, **found}), flush=True)
