"""Collects the transport bench figures and writes them as a markdown table and a PNG plot."""

from __future__ import annotations

import platform
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SIDES = {"ours": "ours: PyAudio{Input,Output}Transport",
         "stock": "pipecat LocalAudioTransport"}
TIMED = ("barge-in stop, hand-off (ms)", "barge-in stop at speaker (ms)",
         "first audio, hand-off (ms)", "first audio at speaker (ms)")


class Results:
    """Samples per side and metric."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))

    def add(self, side: str, metric: str, value: float) -> None:
        self.samples[side][metric].append(float(value))

    def metrics(self) -> list[str]:
        seen: dict[str, None] = {}
        for side in SIDES:
            seen.update(dict.fromkeys(self.samples[side]))
        return list(seen)

    def summary(self, side: str, metric: str) -> dict[str, float] | None:
        values = self.samples[side].get(metric)
        if not values:
            return None
        v = np.asarray(values)
        return {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99)),
                "mean": float(v.mean()), "max": float(v.max()), "n": len(v)}


def _fmt(stats: dict[str, float] | None, metric: str) -> str:
    if stats is None:
        return "n/a"
    if metric in TIMED:
        return f"{stats['p50']:.1f} / {stats['p99']:.1f} (n={stats['n']})"
    return f"{stats['mean']:.2f}" if stats["n"] == 1 else f"{stats['mean']:.2f} (max {stats['max']:.2f})"


def _ratio(ours: dict | None, stock: dict | None, metric: str) -> str:
    if not ours or not stock:
        return "n/a"
    key = "p50" if metric in TIMED else "mean"
    if ours[key] <= 0:
        return "ours 0" if stock[key] > 0 else "both 0"
    return f"{stock[key] / ours[key]:.1f}x"


def table(results: Results) -> str:
    lines = ["| metric | " + " | ".join(SIDES.values()) + " | stock / ours |",
             "|---|---|---|---|"]
    for metric in results.metrics():
        ours, stock = results.summary("ours", metric), results.summary("stock", metric)
        label = metric + (" p50 / p99" if metric in TIMED else "")
        lines.append(f"| {label} | {_fmt(ours, metric)} | {_fmt(stock, metric)} | "
                     f"{_ratio(ours, stock, metric)} |")
    return "\n".join(lines)


def plot(results: Results, path: Path) -> None:
    groups = [("barge-in stop (ms)", TIMED[:2]), ("first audio (ms)", TIMED[2:]),
              ("CPU (% of one core)", [m for m in results.metrics() if m.startswith("CPU")]),
              ("underruns, loop stalled", [m for m in results.metrics()
                                           if m.startswith("underruns")])]
    fig, axes = plt.subplots(1, len(groups), figsize=(16, 4.8))
    for ax, (title, metrics) in zip(axes, groups):
        x = np.arange(len(metrics))
        for offset, side in ((-0.2, "ours"), (0.2, "stock")):
            stats = [results.summary(side, m) for m in metrics]
            key = "p50" if metrics and metrics[0] in TIMED else "mean"
            heights = [s[key] if s else 0 for s in stats]
            bars = ax.bar(x + offset, heights, 0.4, label=SIDES[side])
            if key == "p50":
                p99 = [s["p99"] if s else 0 for s in stats]
                ax.errorbar(x + offset, heights, yerr=[np.zeros(len(p99)),
                            np.subtract(p99, heights)], fmt="none", ecolor="black", capsize=4)
            ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(x, [m.replace(" (ms)", "").replace(" (% of a core)", "")
                          .replace(", ", ",\n").replace(" (", "\n(") for m in metrics], fontsize=8)
        ax.set_title(title + (" - bar p50, whisker p99" if "ms" in title else ""), fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle("Transports on PulseAudio (same devices, one run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: Results, folder: Path, command: str, stem: str = "transports") -> str:
    """Write ``<stem>.md`` and ``<stem>.png`` under ``folder``; return the markdown."""
    folder.mkdir(parents=True, exist_ok=True)
    period = "default periods (10 ms speaker, 40 ms mic)" if stem == "transports" else stem.split("_", 1)[1]
    text = "\n".join([
        "# Transports: ours vs pipecat's stock LocalAudioTransport", "",
        f"Command: `{command}` ({platform.node()}, {platform.machine()}, Python "
        f"{platform.python_version()}); PulseAudio pipe-sink speaker and null-sink mic at "
        f"24 kHz mono; ours: {period}; stock: pipecat defaults (40 ms chunks, blocking "
        "writes).", "",
        table(results), "",
        "Hand-off = the moment audio is handed to PortAudio (our callback's read; the stock "
        "transport's blocking `write` start / return). At speaker = when the sample arrives in "
        "the pipe-sink FIFO, so it includes PulseAudio's own buffering for both sides. Ratios "
        "are stock / ours on p50 (times) or means.", ""])
    (folder / f"{stem}.md").write_text(text)
    plot(results, folder / f"{stem}.png")
    return text
