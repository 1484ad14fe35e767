"""Collects the transport bench figures and writes them as markdown tables."""

from __future__ import annotations

import json
import platform
from collections import defaultdict
from pathlib import Path

import numpy as np

SIDES = {
    "ours": "ours, in process",
    "audio-process": "ours, --audio-process",
    "stock": "pipecat LocalAudioTransport",
}
TIMED = ("first audio (ms)", "barge-in stop (ms)")
BREAKDOWN = ("first audio: delta parsed -> queued (ms)", "first audio: delta parsed -> handed (ms)")
GOALS = {"first audio (ms)": 15.0, "barge-in stop (ms)": 20.0}  # p99, issue 10
MIN_P99 = 100


class Results:
    """Samples per configuration label (``side`` or ``side +GIL``) and metric."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))

    def add(self, label: str, metric: str, value: float) -> None:
        self.samples[label][metric].append(float(value))

    def labels(self) -> list[str]:
        order = [f"{s}{g}" for g in ("", " +GIL") for s in SIDES]
        return [label for label in order if label in self.samples]

    def metrics(self) -> list[str]:
        seen: dict[str, None] = {}
        for label in self.labels():
            seen.update(dict.fromkeys(self.samples[label]))
        return list(seen)

    def values(self, label: str, metric: str) -> np.ndarray:
        return np.asarray(self.samples[label].get(metric, []), dtype=float)

    def tail(self, label: str, metric: str) -> tuple[str, float] | None:
        """("p99", value) from >= 100 samples, else ("max", value); None without samples."""
        v = self.values(label, metric)
        if not len(v):
            return None
        if len(v) >= MIN_P99:
            return "p99", float(np.percentile(v, 99))
        return "max", float(v.max())


def _cell(results: Results, label: str, metric: str) -> str:
    v = results.values(label, metric)
    if not len(v):
        return "n/a"
    if metric in TIMED + BREAKDOWN:
        kind, value = results.tail(label, metric)
        return f"{np.percentile(v, 50):.1f} / {kind} {value:.1f} (n={len(v)})"
    if metric.startswith("gaps"):
        return f"{int(v.sum())} in {int((v > 0).sum())} of {len(v)} answers"
    if metric.startswith("answers never"):
        return f"{int(v.sum())}"
    return f"{v.mean():.2f}" + (f" (n={len(v)})" if len(v) > 1 else "")


def table(results: Results) -> str:
    labels = results.labels()
    head = [
        "metric",
        *[SIDES[label.split(" ")[0]] + label[len(label.split(" ")[0]) :] for label in labels],
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for metric in results.metrics():
        name = metric + (" p50 / p99 or max" if metric in TIMED + BREAKDOWN else "")
        lines.append(
            f"| {name} | " + " | ".join(_cell(results, label, metric) for label in labels) + " |"
        )
    return "\n".join(lines)


def comparisons(results: Results) -> list[str]:
    """Ratios and the goals, in words."""
    lines = []
    for metric in TIMED:
        for label in results.labels():
            tail = results.tail(label, metric)
            if tail and " +GIL" not in label:
                kind, value = tail
                met = (
                    "met"
                    if kind == "p99" and value <= GOALS[metric]
                    else ("not met" if value > GOALS[metric] else "met on the max (fewer than 100)")
                )
                lines.append(
                    f"- {metric} {kind}, {label}: {value:.1f} ms (goal p99 <= "
                    f"{GOALS[metric]:.0f} ms: {met})"
                )
        for side in SIDES:
            base, loaded = results.values(side, metric), results.values(f"{side} +GIL", metric)
            if len(base) and len(loaded):
                p50 = np.percentile(loaded, 50) - np.percentile(base, 50)
                tail = results.tail(side + " +GIL", metric)[1] - results.tail(side, metric)[1]
                lines.append(
                    f"- {metric}, {side}: GIL holder adds {p50:+.1f} ms p50, "
                    f"{tail:+.1f} ms at the tail"
                )
        ours, stock = results.values("ours", metric), results.values("stock", metric)
        ap = results.values("audio-process", metric)
        if len(ours) and len(stock) and np.percentile(ours, 50) > 0:
            base = np.percentile(ours, 50)
            ratio = (
                f"; audio-process / ours: {np.percentile(ap, 50) / base:.2f}x" if len(ap) else ""
            )
            lines.append(
                f"- {metric} p50, stock / ours: {np.percentile(stock, 50) / base:.2f}x" + ratio
            )
    cpu = "listening CPU, both processes (% of a core)"
    ours, ap = results.values("ours", cpu), results.values("audio-process", cpu)
    stock = results.values("stock", cpu)
    if len(ours) and len(ap):
        lines.append(
            f"- listening CPU, pipeline + audio process vs one process: "
            f"{ap.mean():.2f} % vs {ours.mean():.2f} % ({ap.mean() / ours.mean():.2f}x);"
            + (f" stock: {stock.mean():.2f} %" if len(stock) else "")
        )
    return lines


def write_report(
    results: Results, folder: Path | None, command: str, stem: str = "transports"
) -> str:
    """The markdown; also written as ``<stem>.md`` and ``<stem>.json`` under ``folder``."""
    text = "\n".join(
        [
            "# Transports: ours (in process, --audio-process) vs pipecat's LocalAudioTransport",
            "",
            f"Command: `{command}` ({platform.node()}, {platform.machine()}, Python "
            f"{platform.python_version()}, 2 cores shared with other jobs: interleaved rounds, "
            "read the ratios). PulseAudio pipe-sink speaker and null-sink mic at 24 kHz mono. "
            "Periods: ours 10 ms speaker callback, 20 ms mic; stock 10 ms output writes "
            "(`audio_out_10ms_chunks=1`) to a blocking stream, 20 ms mic (fixed in pipecat). The "
            "default agent pipeline as shipped (service, session and technical logs) runs in a "
            "client process per configuration; +GIL = a thread in it holds the GIL 30 ms of "
            "every 40 ms.",
            "",
            table(results),
            "",
            *comparisons(results),
            "",
            "Clocks start when the client's service parsed the server event and stop when the "
            "sample arrives at the speaker FIFO (PulseAudio's buffering included). Gaps: runs of "
            ">= 1 ms of silence inside what was heard of an answer. Listening CPU over the first "
            "seconds of each unloaded run (mic streaming, nothing played), from /proc.",
            "",
        ]
    )
    if folder is None:
        return text
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.md").write_text(text)
    (folder / f"{stem}.json").write_text(json.dumps(figures(results, command), indent=1) + "\n")
    return text


def figures(results: Results, command: str) -> dict[str, object]:
    """The figures ``python -m bench``'s summary reads: per configuration and metric, n, mean,
    p50 and the tail (p99 from >= 100 samples, else the max)."""
    out: dict[str, dict[str, dict[str, object]]] = {}
    for label in results.labels():
        for metric in results.metrics():
            v = results.values(label, metric)
            if not len(v):
                continue
            kind, value = results.tail(label, metric) or ("max", 0.0)
            out.setdefault(label, {})[metric] = {
                "n": len(v),
                "mean": float(v.mean()),
                "p50": float(np.percentile(v, 50)),
                "tail": kind,
                "tail_value": value,
            }
    return {"bench": "transports", "command": command, "figures": out}
