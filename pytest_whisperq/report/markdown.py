"""Markdown from the collected run: a pull-request comment or CI job summary (verdict, every check,
what failed and why), ending with the model card's Evaluation section for base and quantized model."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

# The card's performance rows: (label, key in Throughput.figures(), format)
CARD_ROWS = (
    ("Total time (s)", "total_time_s", "{:.2f}"),
    ("Requests", "requests", "{}"),
    ("Successful requests", "successful_requests", "{}"),
    ("Average latency (s)", "latency_mean_s", "{:.3f}"),
    ("Median latency (s)", "latency_median_s", "{:.3f}"),
    ("P95 latency (s)", "latency_p95_s", "{:.3f}"),
    ("Requests per second", "requests_per_s", "{:.3f}"),
    ("Output tokens per second", "output_tokens_per_s", "{:.2f}"),
    ("RTFx (audio s / wall s)", "rtfx", "{:.2f}"),
)


def _cell(value: Any) -> str:
    """Text from checkpoints and transcripts, made inert: HTML escaped (no closing our <details>),
    Markdown's specials and @mentions escaped, one line."""
    text = "" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))
    text = html.escape(text.replace("\n", " "), quote=False)
    return re.sub(r"([\\`*_\[\]#|!@~])", r"\\\1", text)


def _code(value: Any) -> str:
    """A code span (backslashes would show there): backticks and line breaks removed, HTML escaped."""
    return "`" + html.escape(str(value).replace("`", "'").replace("\n", " "), quote=False) + "`"


def model_name(run: dict[str, Any], role: str) -> str:
    """A column heading: the hub id or built-in name, a local checkpoint's folder name."""
    model = run["models"].get(role)
    if model is None:
        return role
    return Path(model["path"]).name if model["kind"] in ("local", "quantize") else model["spec"]


def checks_table(run: dict[str, Any]) -> list[str]:
    lines = ["| check | outcome | observed | interval | limit | test |", "|---|---|---|---|---|---|"]
    for check in run["checks"]:
        unit = check["unit"]
        suffix = f" {unit}" if unit else ""
        observed = "" if check["observed"] is None else f"{_cell(check['observed'])}{suffix}"
        limit = "" if check["limit"] is None else f"{_cell(check['limit'])}{suffix}"
        decision = check.get("decision")
        interval = f"[{decision['low']:+.2f}, {decision['high']:+.2f}]" if decision else ""
        outcome = OUTCOME_CELLS[check["outcome"]] + ("" if check["gated"] else " (not gated)")
        lines.append(f"| {_code(check['name'])} | {outcome} | {observed} | {interval} | {limit} | {_code(check['test'])} |")
    return lines


OUTCOME_CELLS = {"pass": "✅ pass", "fail": "❌ FAIL", "inconclusive": "❔ INCONCLUSIVE",
                 "not applicable": "➖ not applicable"}
VERDICT_TITLES = {"pass": "✅ PASS", "fail": "❌ FAIL", "inconclusive": "❔ INCONCLUSIVE (not a release)",
                  "partial": "⚠️ PARTIAL (required checks did not run: not a release)"}


def failures(run: dict[str, Any]) -> list[str]:
    lines = []
    for check in (c for c in run["checks"] if c["outcome"] != "pass"):
        lines += ["", f"<details><summary><code>{html.escape(check['name'])}</code> {check['outcome'].upper()}: {_cell(check['detail'])[:300]}</summary>",
                  "", *[f"- {_cell(item)}" for item in check["evidence"]], "", "</details>"]
    return lines


def evaluation_section(run: dict[str, Any]) -> list[str]:
    """The model card's Evaluation section: accuracy and performance, base beside quantized."""
    base, model = model_name(run, "base"), model_name(run, "model")
    lines = ["## Evaluation", ""]
    wer = run["wer"]
    if wer.get("base") and wer.get("model"):
        lines += ["### Accuracy (WER, lower is better)", "", f"| Metric | {base} | {model} | Δ (points) |", "|---|---|---|---|"]
        for pool, figures in wer["model"].items():
            reference = wer["base"].get(pool)
            if reference is None:
                continue
            delta = figures["wer_percent"] - reference["wer_percent"]
            lines.append(f"| WER, {pool} speech ({figures['words']} words, {figures['utterances']} utterances) | "
                         f"{reference['wer_percent']:.2f}% | {figures['wer_percent']:.2f}% | {delta:+.2f} |")
            for subset, sub in figures["subsets"].items():
                ref_sub = reference["subsets"].get(subset)
                if ref_sub:
                    lines.append(f"| &nbsp;&nbsp;{subset} ({sub['words']} words) | {ref_sub['wer_percent']:.2f}% | "
                                 f"{sub['wer_percent']:.2f}% | {sub['wer_percent'] - ref_sub['wer_percent']:+.2f} |")
        lines.append("")
    else:
        lines += ["Accuracy was not measured in this run.", ""]
    throughput = run["throughput"]
    if throughput.get("base") and throughput.get("model"):
        backend = throughput["model"]["backend"]
        rounds = len(throughput["model"].get("rounds") or [None])
        lines += [f"### Performance ({backend} backend, {throughput['model']['requests']} requests in {rounds} "
                  f"round{'s' if rounds > 1 else ''})", "",
                  f"| Metric | {base} | {model} | {model} / {base} |", "|---|---|---|---|"]
        for label, key, fmt in CARD_ROWS:
            b, m = throughput["base"]["figures"][key], throughput["model"]["figures"][key]
            ratio = f"{m / b:.3f}" if isinstance(b, float) and b else ""
            lines.append(f"| {label} | {fmt.format(b)} | {fmt.format(m)} | {ratio} |")
        comparison = throughput.get("ratio") or {}
        if comparison.get("not_comparable"):
            lines += ["", f"The ratio is not applicable on this backend: {_cell(comparison['not_comparable'])}."]
        elif comparison.get("rtfx_per_round"):
            lines += ["", "RTFx ratio per interleaved round: "
                      + ", ".join(f"{r:.3f}" for r in comparison["rtfx_per_round"]) + " (judged in the checks above)."]
        lines.append("")
    else:
        lines += ["Throughput was not measured in this run.", ""]
    return lines


def regressions_table(run: dict[str, Any]) -> list[str]:
    rows = run.get("regressions") or []
    if not rows:
        return []
    lines = ["### Worst per-utterance regressions", "",
             "| utterance | subset | errors base → model (words) | reference | base | model |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {_code(row['id'])} | {_cell(row['subset'])} | {row['base_errors']} → {row['model_errors']} ({row['words']}) | "
                     f"{_cell(row['reference'])} | {_cell(row['base'])} | {_cell(row['model'])} |")
    return lines + [""]


def charts_section(run: dict[str, Any], markdown_dir: Path | None) -> list[str]:
    charts = run.get("charts") or []
    if not charts:
        return []
    lines = ["### Charts", ""]
    for chart in charts:
        target = os.path.relpath(chart, markdown_dir) if markdown_dir else chart
        lines.append(f"![{Path(chart).stem.replace('_', ' ')}]({target})")
    return lines + [""]


def render(run: dict[str, Any], markdown_dir: Path | None = None) -> str:
    """The page; chart links are made relative to `markdown_dir`, where the page is written."""
    verdict = VERDICT_TITLES[run["verdict"]]
    model, base = run["models"].get("model"), run["models"].get("base")
    lines = [f"# pytest-whisperq: {verdict}", ""]
    if model:
        lines.append(f"- model: `{model['spec']}` ({len(model['files'])} files; "
                     f"weights sha256 {_weights_hash(model)})")
    if base:
        lines.append(f"- base: `{base['spec']}` (weights sha256 {_weights_hash(base)})")
    settings = run["settings"]
    lines += [f"- backend: {settings['backend']}, dtype {settings['dtype']}, device {settings['device']}; "
              f"{run['checks_passed']} checks passed, {run['checks_failed']} failed, {run['checks_inconclusive']} "
              f"inconclusive, {run['checks_informational']} reported without gating; pytest exit status "
              f"{run['exit_status']}"]
    lines += [f"- {_cell(line.strip())}" for line in run["verdict_lines"]]
    for skipped in run.get("skipped", []):
        how = "accepted (--whisperq-allow-skip)" if run.get("skips_allowed") else "**fails the run**"
        lines.append(f"- not run, {how}: {_code(skipped['test'])}: {_cell(skipped['reason'])}")
    lines += [f"- {_cell(note)}" for note in run.get("notes", [])] + [""]
    lines += checks_table(run) + failures(run) + [""] + evaluation_section(run) + regressions_table(run) \
        + charts_section(run, markdown_dir)
    return "\n".join(lines).rstrip() + "\n"


def _weights_hash(model: dict[str, Any]) -> str:
    weights = [h for name, h in model["files"].items() if name.endswith(".safetensors")]
    return ", ".join(f"`{h[:12]}`" for h in weights) or "none"
