"""The batch's summary: ``summary.json``, ``summary.csv`` (a row per turn), ``latency.png`` and
the table printed at the end (conversations ok/failed, turns, latency p50/p95/max)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.batch.jobs import Result

CSV_FIELDS = [
    "conversation",
    "ok",
    "turn",
    "input",
    "user",
    "agent",
    "latency_ms",
    "answer_duration_ms",
    "interrupted",
    "heard_ms",
    "failure",
]


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (linear), or None without values."""
    return float(np.percentile(values, q)) if values else None


def latencies(result: Result) -> list[float]:
    """The conversation's first-audio latencies (ms), one per turn that has one."""
    turns = result.report.get("turns", [])
    return [
        t["first_audio_latency_ms"] for t in turns if t.get("first_audio_latency_ms") is not None
    ]


def totals(results: list[Result]) -> dict[str, Any]:
    """The whole batch's figures."""
    all_latency = [v for r in results for v in latencies(r)]
    return {
        "conversations": len(results),
        "ok": sum(r.ok for r in results),
        "failed": sum(not r.ok for r in results),
        "turns": sum(len(r.report.get("turns", [])) for r in results),
        "latency_ms": {
            "p50": percentile(all_latency, 50),
            "p95": percentile(all_latency, 95),
            "max": max(all_latency) if all_latency else None,
            "samples": len(all_latency),
        },
    }


def write_summary(out: Path, results: list[Result], extra: dict[str, Any]) -> dict[str, Any]:
    """Write summary.json and summary.csv into ``out``; returns the totals."""
    summary_totals = totals(results)
    conversations = []
    for r in results:
        lat = latencies(r)
        conversations.append(
            {
                "conversation": r.name,
                "ok": r.ok,
                "failure": r.reason,
                "turns": len(r.report.get("turns", [])),
                "reconnects": len(r.report.get("reconnects", [])),
                "latency_ms": {
                    "p50": percentile(lat, 50),
                    "p95": percentile(lat, 95),
                    "max": max(lat) if lat else None,
                },
                "seconds": r.seconds,
                "worker_pid": r.worker_pid,
            }
        )
    doc = {**extra, "totals": summary_totals, "conversations": conversations}
    (out / "summary.json").write_text(
        json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    with open(out / "summary.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in results:
            turns = r.report.get("turns", [])
            if not turns:
                writer.writerow({"conversation": r.name, "ok": r.ok, "failure": r.reason or ""})
            for n, t in enumerate(turns, 1):
                writer.writerow(
                    {
                        "conversation": r.name,
                        "ok": r.ok,
                        "turn": n,
                        "input": t.get("input"),
                        "user": t.get("user_text") or "",
                        "agent": t.get("agent_text") or "",
                        "latency_ms": t.get("first_audio_latency_ms"),
                        "answer_duration_ms": t.get("answer_duration_ms"),
                        "interrupted": t.get("interrupted"),
                        "heard_ms": t.get("heard_ms"),
                        "failure": r.reason or "",
                    }
                )
    return summary_totals


def plot_latency(out: Path, results: list[Result]) -> Path | None:
    """``latency.png``: each conversation's per-turn latencies, p50 and p95 marked; None
    when there is nothing to plot or matplotlib is missing (the caller says so)."""
    data = [(r.name, latencies(r)) for r in results]
    if not any(values for _, values in data):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(data) + 3), 4.5))
    for x, (_, values) in enumerate(data):
        if not values:
            continue
        jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(x + jitter, values, s=14, alpha=0.7, color="tab:blue")
        for q, style in ((50, "-"), (95, "--")):
            v = percentile(values, q)
            ax.hlines(v, x - 0.3, x + 0.3, colors="tab:red", linestyles=style, linewidth=1.5)
    ax.set_xticks(range(len(data)), [name for name, _ in data], rotation=45, ha="right")
    ax.set_ylabel("user speech end -> first agent audio (ms)")
    ax.set_title("Latency per turn (red: p50 solid, p95 dashed)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = out / "latency.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def table(results: list[Result], summary_totals: dict[str, Any]) -> str:
    """The table printed at the end of a batch."""
    rows = [("conversation", "result", "turns", "p50", "p95", "max")]
    for r in results:
        lat = latencies(r)
        rows.append(
            (
                r.name,
                "ok" if r.ok else "FAILED",
                str(len(r.report.get("turns", []))),
                _ms(percentile(lat, 50)),
                _ms(percentile(lat, 95)),
                _ms(max(lat) if lat else None),
            )
        )
    lat = summary_totals["latency_ms"]
    rows.append(
        (
            "all",
            f"{summary_totals['ok']} ok / {summary_totals['failed']} failed",
            str(summary_totals["turns"]),
            _ms(lat["p50"]),
            _ms(lat["p95"]),
            _ms(lat["max"]),
        )
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    failures = [f"{r.name}: {r.reason}" for r in results if not r.ok]
    if failures:
        lines.append("")
        lines.extend(f"failed: {f}" for f in failures)
    return "\n".join(lines)
