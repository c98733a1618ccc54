"""Saved runs and comparison against them, as pytest-benchmark does for timings: runs are saved as
numbered JSON documents (`0001_<time>.json`, ...) in a storage folder; a later run compares its
figures with the latest or a named one and fails on a configured regression, so a nightly job sees
drift that no absolute limit catches.

A threshold is `METRIC:LIMIT`: `wer:0.3` (the model's WER may rise by at most 0.3 points, in every
speech pool), `rtfx:10%` (its RTFx may fall by at most 10%), and so on for the metrics below.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_whisperq.checks.accuracy import ALL_LANGUAGES, pool_gated
from pytest_whisperq.decision import Outcome, Rule, decide, ratio_delta_se
from pytest_whisperq.errors import ConfigError, WhisperqError
from pytest_whisperq.results import CheckResult
from pytest_whisperq.userpath import user_path

# metric -> (unit of the limit, True when a larger value is a regression)
METRICS: dict[str, tuple[str, bool]] = {
    "wer": ("points", True),
    "rtfx": ("%", False),
    "requests_per_s": ("%", False),
    "output_tokens_per_s": ("%", False),
    "latency_p95_s": ("%", True),
}
_SAVED = re.compile(r"^(\d{4})_.*\.json$")


class BaselineError(WhisperqError):
    """A baseline that cannot be found or read."""


@dataclass(frozen=True)
class Threshold:
    metric: str
    limit: float
    unit: str  # "points" or "%"
    larger_is_worse: bool


def parse_thresholds(text: str) -> tuple[Threshold, ...]:
    """`wer:0.3,rtfx:10%` -> thresholds; a usage error names what is accepted."""
    thresholds = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        metric, _, raw = part.partition(":")
        if metric not in METRICS:
            raise ConfigError(f"unknown metric {metric!r} in {part!r}; known: {', '.join(METRICS)}")
        unit, larger_is_worse = METRICS[metric]
        number = raw.removesuffix("%") if unit == "%" else raw
        if unit == "%" and not raw.endswith("%"):
            raise ConfigError(f"{part!r}: {metric} is compared in percent, e.g. {metric}:10%")
        if unit == "points" and raw.endswith("%"):
            raise ConfigError(f"{part!r}: {metric} is compared in points, e.g. {metric}:0.3")
        try:
            limit = float(number)
        except ValueError:
            raise ConfigError(f"{part!r}: {raw!r} is not a number") from None
        if limit < 0:
            raise ConfigError(f"{part!r}: the limit cannot be negative")
        thresholds.append(Threshold(metric, limit, unit, larger_is_worse))
    if not thresholds:
        raise ConfigError("no threshold given; e.g. wer:0.3,rtfx:10%")
    return tuple(thresholds)


# --- storage -------------------------------------------------------------------------------------

def saved_runs(storage: Path) -> list[Path]:
    return sorted(p for p in storage.glob("*.json") if _SAVED.match(p.name)) if storage.is_dir() else []


def save_run(storage: Path, run: dict[str, Any]) -> Path:
    from pytest_whisperq.report.write import as_json, write_atomically

    storage.mkdir(parents=True, exist_ok=True)
    runs = saved_runs(storage)
    number = int(_SAVED.match(runs[-1].name).group(1)) + 1 if runs else 1
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = storage / f"{number:04d}_{stamp}.json"
    write_atomically(path, as_json(run))
    return path


def load_run(storage: Path, which: str) -> tuple[Path, dict[str, Any]]:
    """`latest`, a saved run's number (`3` or `0003`), or a path to a saved JSON report."""
    if which == "latest":
        runs = saved_runs(storage)
        if not runs:
            raise BaselineError(f"no saved run in {storage} to compare with; save one first with --whisperq-baseline-save")
        path = runs[-1]
    elif which.isdigit():
        matches = [p for p in saved_runs(storage) if int(_SAVED.match(p.name).group(1)) == int(which)]
        if not matches:
            raise BaselineError(f"no saved run number {which} in {storage} (saved: "
                                f"{', '.join(p.name for p in saved_runs(storage)) or 'none'})")
        path = matches[0]
    else:
        path = user_path(which)
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BaselineError(f"the baseline {path} cannot be read as a report: {error}") from None
    if not isinstance(run, dict) or "checks" not in run:
        raise BaselineError(f"{path} is not a pytest-whisperq report (written by --whisperq-json or "
                            "--whisperq-baseline-save)")
    return path, run


# --- comparison ----------------------------------------------------------------------------------

def figures(run: dict[str, Any], metric: str) -> dict[str, float]:
    """The model under test's values of `metric` in a run: `{label: value}` (one per speech pool
    for WER, one for the throughput metrics); empty when the run did not measure it."""
    if metric == "wer":
        pools = (run.get("wer") or {}).get("model") or {}
        return {f"wer[{pool}]": float(values["wer_percent"]) for pool, values in pools.items()}
    model = (run.get("throughput") or {}).get("model")
    return {metric: float(model["figures"][metric])} if model else {}


# settings that make two runs' figures comparable at all
COMPARABLE_SETTINGS = ("data", "data_limit", "backend", "device", "dtype", "language", "requests", "concurrency")


def incomparable(baseline: dict[str, Any], current: dict[str, Any], baseline_name: str) -> list[CheckResult]:
    """A result for each setting in which the two runs differ: their figures measure different things."""
    before, now = baseline.get("settings") or {}, current.get("settings") or {}
    return [CheckResult(name=f"baseline_comparable[{key}]", ok=False,
                        detail=f"{key} is {now.get(key)!r} in this run but {before.get(key)!r} in {baseline_name}: "
                               "their figures are not comparable; compare with a baseline saved with the same setting")
            for key in COMPARABLE_SETTINGS if before.get(key) != now.get(key)]


def compare(baseline: dict[str, Any], current: dict[str, Any], thresholds: tuple[Threshold, ...],
            baseline_name: str, rule: Rule = Rule(), gated_pools: tuple[str, ...] = ("real",)) -> list[CheckResult]:
    """Each threshold's comparison; the WER of a pool that is not gated is reported, never failed."""
    try:
        return incomparable(baseline, current, baseline_name) + _compare(baseline, current, thresholds, baseline_name,
                                                                         rule, gated_pools)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BaselineError(f"{baseline_name} is not a report this version can compare with "
                            f"({type(error).__name__}: {error}); save a new baseline") from None


def _compare(baseline: dict[str, Any], current: dict[str, Any], thresholds: tuple[Threshold, ...],
             baseline_name: str, rule: Rule, gated_pools: tuple[str, ...]) -> list[CheckResult]:
    results = []
    for threshold in thresholds:
        before, now = figures(baseline, threshold.metric), figures(current, threshold.metric)
        for label in sorted(set(before) - set(now)):
            if now:  # a pool the baseline measured and this run did not
                results.append(CheckResult(name=f"baseline[{label}]", ok=False,
                                           detail=f"{baseline_name} has {label} but this run did not measure it"))
        if not now:
            results.append(CheckResult(name=f"baseline[{threshold.metric}]", ok=False,
                                       detail=f"{threshold.metric} was not measured in this run, so it cannot be "
                                              f"compared with {baseline_name}; run the tests that measure it"))
            continue
        for label, value in now.items():
            if label not in before:
                results.append(CheckResult(name=f"baseline[{label}]", ok=False,
                                           detail=f"{baseline_name} has no {label} to compare with"))
                continue
            if threshold.metric == "wer":
                results.append(_compare_wer(label, baseline, current, threshold, baseline_name, rule, gated_pools))
            else:
                results.append(_compare_one(label, before[label], value, threshold, baseline_name))
    return results


def _paired_rows(run: dict[str, Any], pool: str) -> dict[str, tuple[int, int]]:
    """Per utterance of `pool` (`KIND:all`: of that kind in every language), its words and the model's errors."""
    kind, _, language = pool.partition(":")
    return {row["id"]: (int(row["words"]), int(row["model_errors"]))
            for row in run.get("utterances") or ()
            if row.get("pool") == pool or (language == ALL_LANGUAGES and str(row.get("pool", "")).startswith(kind + ":"))}


def _compare_wer(label: str, baseline: dict[str, Any], current: dict[str, Any], threshold: Threshold,
                 baseline_name: str, rule: Rule, gated_pools: tuple[str, ...]) -> CheckResult:
    """The model's WER now against the baseline's on the same utterances, judged by the decision rule
    (good: no rise, bad: twice the limit), from the per-utterance errors both reports keep."""
    pool = label[len("wer["):-1]
    before, now = _paired_rows(baseline, pool), _paired_rows(current, pool)
    name, gated = f"baseline[{label}]", pool_gated(pool, gated_pools)
    if not before or set(before) != set(now):
        why = (f"{baseline_name} has no per-utterance errors (a report from before schema 2)" if not before else
               f"{baseline_name} and this run scored different utterances in the {pool} pool")
        return CheckResult(name=name, ok=False, limit=threshold.limit, unit=" points", gated=gated,
                           decision=decide(0.0, math.inf, threshold.limit, threshold.limit, 0, rule),
                           detail=f"{label}: cannot be judged: {why}; save a baseline with this version on the same data")
    ids = sorted(now)
    point, se = ratio_delta_se([now[i][0] for i in ids], [now[i][1] - before[i][1] for i in ids])
    words = sum(now[i][0] for i in ids)
    decision = decide(float(point), float(se), threshold.limit, threshold.limit, len(ids), rule,
                      rule.rule_of_three_se(words))
    detail = (f"{label}: {100 * sum(before[i][1] for i in ids) / words:.2f}% in {baseline_name}, "
              f"{100 * sum(now[i][1] for i in ids) / words:.2f}% now, on the same {len(ids)} utterances; worse by "
              f"{point:+.2f} points; {str(decision.outcome).upper()}: {decision.how}")
    if decision.outcome is not Outcome.PASS:
        detail += (". If the change is intended, make this run the reference (--whisperq-baseline-save, then compare "
                   "with its number); otherwise compare the two reports' per-utterance errors")
    return CheckResult(name=name, ok=decision.outcome is Outcome.PASS, observed=round(float(point), 2),
                       limit=threshold.limit, unit=" points", detail=detail, decision=decision, gated=gated)


def _compare_one(label: str, before: float, now: float, threshold: Threshold, baseline_name: str) -> CheckResult:
    if threshold.unit == "%" and before <= 0:
        return CheckResult(name=f"baseline[{label}]", ok=False,
                           detail=f"{label} is {before:g} in {baseline_name}: no change in percent can be taken from "
                                  "it; save a baseline from a run that measured it")
    if threshold.unit == "points":
        worse_by = (now - before) if threshold.larger_is_worse else (before - now)
    else:
        change = (now - before) / before * 100.0
        worse_by = change if threshold.larger_is_worse else -change
    ok = worse_by <= threshold.limit
    unit = " points" if threshold.unit == "points" else "%"
    detail = f"{label}: {before:.4g} in {baseline_name}, {now:.4g} now; worse by {worse_by:+.3g}{unit}"
    if not ok:
        detail += (f" (limit {threshold.limit:g}{unit}). If the change is intended, save this run as the new baseline "
                   "(--whisperq-baseline-save); otherwise compare the two reports' checks and figures")
    return CheckResult(name=f"baseline[{label}]", ok=ok, observed=round(worse_by, 2), limit=threshold.limit, unit=unit,
                       detail=detail)
