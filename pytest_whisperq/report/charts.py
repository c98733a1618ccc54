"""PNG charts of a run for people who would rather look: WER per subset (base beside the model) and
the distribution of request latencies. matplotlib is imported here only (the `charts` extra),
without pyplot's global state, so drawing works on headless CI runners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_whisperq.errors import ConfigError
from pytest_whisperq.report.markdown import model_name

COLORS = {"base": "#4C72B0", "model": "#DD8452"}


def require_matplotlib() -> None:
    from importlib.util import find_spec

    if find_spec("matplotlib") is None:
        raise ConfigError("--whisperq-charts needs matplotlib: pip install 'pytest-whisperq[charts]'")


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def wer_per_subset(run: dict[str, Any], path: Path) -> Path | None:
    """Grouped bars: each subset's WER for base and model, labelled with the values."""
    wer = run["wer"]
    if not (wer.get("base") and wer.get("model")):
        return None
    rows = [(f"{subset} ({pool})", wer["base"][pool]["subsets"][subset]["wer_percent"], values["wer_percent"])
            for pool in wer["model"] if pool in wer["base"]
            for subset, values in wer["model"][pool]["subsets"].items() if subset in wer["base"][pool]["subsets"]]
    figure = _figure(max(6.0, 1.4 * len(rows)), 4.0)
    axes = figure.subplots()
    positions = range(len(rows))
    width = 0.38
    for offset, role, index in ((-width / 2, "base", 1), (width / 2, "model", 2)):
        bars = axes.bar([p + offset for p in positions], [row[index] for row in rows], width,
                        label=f"{role}: {model_name(run, role)}", color=COLORS[role])
        axes.bar_label(bars, fmt="%.2f", fontsize=8)
    axes.set_xticks(list(positions), [row[0] for row in rows], rotation=20, ha="right", fontsize=8)
    axes.set_ylabel("WER (%)")
    axes.set_title("WER per subset, lower is better")
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=110)
    return path


def latency_distribution(run: dict[str, Any], path: Path) -> Path | None:
    """Box plots of the measured requests' latencies, base beside the model, with p95 marked."""
    throughput = run["throughput"]
    roles = [role for role in ("base", "model") if throughput.get(role)]
    if not roles:
        return None
    figure = _figure(6.0, 4.0)
    axes = figure.subplots()
    data = [throughput[role]["latencies"] for role in roles]
    boxes = axes.boxplot(data, patch_artist=True, widths=0.5)
    axes.set_xticks(range(1, len(roles) + 1), [f"{role}\n{model_name(run, role)}" for role in roles], fontsize=8)
    for patch, role in zip(boxes["boxes"], roles):
        patch.set_facecolor(COLORS[role])
    for position, (role, values) in enumerate(zip(roles, data), start=1):  # every request as a dot, spread sideways
        spread = [position + 0.16 * ((i % 7) - 3) / 3 for i in range(len(values))]
        axes.scatter(spread, values, s=10, color="black", alpha=0.6, zorder=3)
        p95 = throughput[role]["figures"]["latency_p95_s"]
        axes.plot([position - 0.3, position + 0.3], [p95, p95], color="black", linestyle="--", linewidth=1)
        axes.annotate(f"p95 {p95:.2f} s", (position + 0.3, p95), fontsize=8, va="center")
    backend = throughput[roles[-1]]["backend"]
    axes.set_ylim(bottom=0)
    axes.set_ylabel("latency per request (s)")
    axes.set_title(f"Request latency ({backend}, {throughput[roles[-1]]['requests']} requests)")
    figure.savefig(path, dpi=110)
    return path


def draw(run: dict[str, Any], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    drawn = [wer_per_subset(run, folder / "wer_per_subset.png"), latency_distribution(run, folder / "latency.png")]
    return [path for path in drawn if path is not None]
