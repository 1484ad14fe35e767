"""Reconnect time after a mid-answer TCP drop, over repeated runs of the default script.

``python -m bench.reliability [--runs 10]`` runs the fault test's drop scenario (a real WebSocket
server on 127.0.0.1 aborts the TCP connection, no close frame, in the middle of the agent's
answer) ``--runs`` times, one after the other, and reports min / median / max of:

* detect + first retry: from the drop to the client's next upgrade request;
* new session: from the drop to the new connection's ``session.created`` leaving the server;
* resumed: from the drop to the last replayed history item arriving (conversation restored).

Also once each: server close 1011, 1001 ``session_expired`` (current agent, resumed by id), a
message over the receive limit (close 1009) and a peer that stops answering pings. Writes
``bench/results/reconnect.md``. A benchmark, not a test: nothing is asserted beyond each run
completing.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.fault_scenarios import ResumeOutcome, agent_info, resume_session, stalling  # noqa: E402
from tests.support.faulty_server import close_with, drop, send_oversized  # noqa: E402
from tests.support.script_run import API_KEY, script_env  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "reconnect.md"
AGENT = ("--api-key", API_KEY, "--agent-name", "my-agent", "--project-name", "proj")


def figures(out: ResumeOutcome) -> tuple[float, float, float]:
    fault = out.first.record.marks["fault"]
    items = [
        t for t, e in out.second.record.client_events if e.get("type") == "conversation.item.create"
    ]
    resumed = (items[-1] if items else out.second.record.marks["session_created"]) - fault
    return out.retry_s * 1000, out.reconnect_s * 1000, resumed * 1000


async def run_once(name: str, session, folder: Path) -> tuple[float, float, float]:
    out: ResumeOutcome = await session(folder)
    if (
        out.run.code != 0
        or len(out.server.conns) != 2
        or "turn3_done" not in out.second.record.marks
    ):
        raise SystemExit(f"{name}: the run did not reconnect and finish\n{out.run.describe()}")
    return figures(out)


def row(label: str, values: list[float]) -> str:
    return f"| {label} | {min(values):.0f} | {statistics.median(values):.0f} | {max(values):.0f} |"


async def main_async(runs: int, others_too: bool = True) -> str:
    drop_session = resume_session(lambda c: drop)
    others = {
        "close 1011 (model, transcript replayed)": resume_session(
            lambda c: lambda conn: close_with(conn, 1011, "internal error")
        ),
        "close 1001 session_expired (current agent, conversation-id)": resume_session(
            lambda c: lambda conn: close_with(conn, 1001, "session_expired"),
            AGENT,
            replay=0,
            agent=agent_info(),
        ),
        "message over the 8 MiB limit (close 1009)": resume_session(
            lambda c: lambda conn: send_oversized(conn, 9 * 1024 * 1024)
        ),
        "stalled peer, no pongs (ping interval 0.5 s, timeout 0.5 s)": resume_session(
            stalling, env=script_env(VOICELIVE_PING_INTERVAL="0.5", VOICELIVE_PING_TIMEOUT="0.5")
        ),
    }
    retry, created, resumed = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-reliability-") as tmp:
        for k in range(runs):
            r, c, s = await run_once("drop", drop_session, Path(tmp) / f"drop{k}")
            retry.append(r), created.append(c), resumed.append(s)
            print(
                f"drop run {k + 1}/{runs}: retry {r:.0f} ms, session.created {c:.0f} ms, "
                f"resumed {s:.0f} ms",
                flush=True,
            )
        single = {}
        for j, (name, session) in enumerate(others.items() if others_too else ()):
            single[name] = await run_once(name, session, Path(tmp) / f"other{j}")
            r, c, s = single[name]
            print(
                f"{name}: retry {r:.0f} ms, session.created {c:.0f} ms, resumed {s:.0f} ms",
                flush=True,
            )
    others_table = [
        "## Other faults, one run each (ms)",
        "",
        "| fault | next upgrade request | `session.created` | resumed |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {r:.0f} | {c:.0f} | {s:.0f} |" for name, (r, c, s) in single.items()),
        "",
    ]
    lines = [
        "# Reconnect time after a connection loss",
        "",
        f"`python -m bench.reliability --runs {runs}` on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, {time.strftime('%Y-%m-%d')}. "
        "The default script (model mode, WAV in and out) against a WebSocket server on "
        "127.0.0.1 that aborts the TCP connection (no close frame, 1006) in the middle of the "
        "agent's answer. "
        "Times are measured on the server's clock from the drop.",
        "",
        f"## TCP drop mid-answer, {runs} runs (ms)",
        "",
        "| from the drop to | min | median | max |",
        "|---|---:|---:|---:|",
        row("the client's next upgrade request (detect + first retry)", retry),
        row("the new connection's `session.created`", created),
        row("the history replayed (4 items: conversation restored)", resumed),
        "",
        *(others_table if single else ["(`--only-drop`: the other faults were not run.)", ""]),
        "The contract is a first retry within 2 s of the loss, and a stalled peer detected "
        "within ping interval +",
        "ping timeout (here 1 s).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reliability", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=10, help="drop runs (default 10)")
    parser.add_argument(
        "--only-drop",
        action="store_true",
        help="the drop runs only, not the other faults once each",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help=f"results file (default {RESULTS.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; do not write the results file"
    )
    args = parser.parse_args(argv)
    report = asyncio.run(main_async(args.runs, not args.only_drop))
    print(report)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
