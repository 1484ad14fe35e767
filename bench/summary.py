"""The one table ``make bench`` ends with: issue 10's figures, ours next to pipecat's, goal, met?

``python -m bench.summary`` reads the JSON each bench wrote next to its ``.md`` under
``bench/results/`` (``session_cost``, ``sessions``, ``perframe``, ``transports``); a bench that was
not run shows "not measured". Every figure comes from one run of its bench, ours and stock side by
side in that run. Writes ``bench/results/summary.md`` too.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
NOT_MEASURED = "not measured"


@dataclass
class Row:
    figure: str
    ours: str = NOT_MEASURED
    stock: str = "—"
    goal: str = ""
    met: str = NOT_MEASURED
    source: str = ""


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _when(doc: dict[str, Any]) -> str:
    load = doc.get("load")
    return f"{doc.get('when', '?')}" + (f", load {load[0]:.1f}" if load else "")


def session_cost() -> Row:
    row = Row(
        "CPU per listening session, WAV transports, K sessions in one process", goal="≤ 0.5 %"
    )
    doc = _load("session_cost")
    if doc is None:
        return row
    now, before = doc["per_session_pct"].get("now", {}), doc["per_session_pct"].get("baseline", {})
    if not now:
        return row
    row.ours = ", ".join(f"{v:.2f} % (K={k})" for k, v in now.items())
    if before:
        row.ours += (
            f" [before, {doc['baseline']}: "
            + ", ".join(f"{v:.2f} %" for v in before.values())
            + "]"
        )
    row.met = _met(max(now.values()) <= doc.get("goal_pct", 0.5))
    row.source = f"session_cost.md ({_when(doc)})"
    return row


def sessions() -> Row:
    row = Row("concurrent real-time sessions on 2 cores (all answers on time)", goal="≥ 200")
    doc = _load("sessions")
    if doc is None:
        return row
    best: dict[int, int] = {}
    for r in doc["runs"]:
        if r["ok"] == r["sessions"] and r["answers"] and r["on_time"] == r["answers"]:
            best[r["workers"]] = max(best.get(r["workers"], 0), r["sessions"])
    tried = max(r["sessions"] for r in doc["runs"])
    row.ours = (
        ", ".join(f"{k} ({w} worker{'s' if w > 1 else ''})" for w, k in sorted(best.items())) or "0"
    )
    row.ours += f" (largest tried {tried})"
    row.met = _met(max(best.values(), default=0) >= 200)
    row.source = f"sessions.md ({_when(doc)})"
    return row


def perframe(key: str, figure: str, goal: str, beyond_goal_us: float | None) -> Row:
    row = Row(figure, stock=NOT_MEASURED, goal=goal)
    doc = _load("perframe")
    if doc is None:
        return row
    f = doc["figures"]
    ours, stock = f.get(f"{key}|ours"), f.get(f"{key}|pipecat")
    if not ours or not stock:
        return row
    if key.endswith("hot"):  # one figure per trial: no tail to speak of
        row.ours, row.stock = f"{ours['mean_us']:.0f} µs", f"{stock['mean_us']:.0f} µs"
    else:
        row.ours = f"{ours['mean_us']:.0f} µs ({ours['tail']} {ours['tail_us']:.0f})"
        row.stock = f"{stock['mean_us']:.0f} µs ({stock['tail']} {stock['tail_us']:.0f})"
    ratio = stock["mean_us"] / ours["mean_us"]
    ok = ratio >= 2.0
    note = f"{ratio:.2f}x"
    wake = f.get("mic paced|wake-up alone")
    if beyond_goal_us is not None and wake:
        beyond = ours["mean_us"] - wake["mean_us"]
        ok = ok and beyond <= beyond_goal_us
        note += f", {beyond:.0f} µs beyond a bare wake-up ({wake['mean_us']:.0f} µs)"
    row.met = f"{_met(ok)} ({note})"
    row.source = f"perframe.md ({_when(doc)})"
    return row


def transports(metric: str, figure: str, goal: str, limit: float, *, tail: bool) -> Row:
    row = Row(figure, stock=NOT_MEASURED, goal=goal)
    doc = _load("transports")
    if doc is None:
        return row
    f = doc["figures"]

    def cell(label: str) -> tuple[str, float] | None:
        m = f.get(label, {}).get(metric)
        if m is None:
            return None
        if tail:
            return f"{m['p50']:.1f} / {m['tail']} {m['tail_value']:.1f} ms (n={m['n']})", m[
                "tail_value"
            ]
        return f"{m['mean']:.2f} %", m["mean"]

    ours, stock = cell("ours"), cell("stock")
    if ours is None:
        return row
    row.ours = ours[0]
    row.stock = stock[0] if stock else NOT_MEASURED
    row.met = _met(ours[1] <= limit)
    row.source = f"transports.md ({doc.get('command', '')})"
    return row


def rows() -> list[Row]:
    return [
        session_cost(),
        sessions(),
        perframe(
            "mic paced",
            "CPU per 40 ms mic frame -> WebSocket, paced in real time, as shipped",
            "≥ 2x faster than pipecat, ≤ 50 µs beyond the wake-up",
            50.0,
        ),
        perframe(
            "delta paced",
            "CPU per 100 ms audio delta -> frame, paced, as shipped",
            "≥ 2x faster than pipecat",
            None,
        ),
        perframe(
            "mic hot",
            "CPU per 40 ms mic frame -> WebSocket, hot",
            "≥ 2x faster than pipecat",
            None,
        ),
        perframe(
            "delta hot",
            "CPU per 100 ms audio delta -> frame, hot",
            "≥ 2x faster than pipecat",
            None,
        ),
        transports(
            "listening CPU, both processes (% of a core)",
            "live listening CPU, full script, PulseAudio devices",
            "≤ 2 %",
            2.0,
            tail=False,
        ),
        transports(
            "barge-in stop (ms)",
            "barge-in: `speech_started` -> silence at the speaker, p50 / p99",
            "p99 ≤ 20 ms",
            20.0,
            tail=True,
        ),
        transports(
            "first audio (ms)",
            "first audio: first delta -> first sample at the speaker, p50 / p99",
            "p99 ≤ 15 ms",
            15.0,
            tail=True,
        ),
    ]


def table(rs: list[Row]) -> str:
    lines = ["| figure | ours | pipecat stock | goal | met? |", "|---|---|---|---|---|"]
    lines += [f"| {r.figure} | {r.ours} | {r.stock} | {r.goal} | {r.met} |" for r in rs]
    sources = [f"- {r.figure}: {r.source}" for r in rs if r.source]
    return "\n".join(lines) + ("\n\nFrom:\n" + "\n".join(sources) if sources else "") + "\n"


def main() -> int:
    text = table(rows())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.md").write_text(
        "# Issue 10's figures (`python -m bench.summary`)\n\n" + text
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
