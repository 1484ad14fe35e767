"""What the logging costs per frame, as shipped: this tree against a baseline revision, one run.

A benchmark, not a test. The default script (``python -m pipelines.agent``, WAV transports, the
logs it writes by default, no flags) runs as a subprocess against a Voice Live peer on 127.0.0.1
in this process, one session per tree and trial. The peer reads the client's CPU time (user +
system, all its threads, ``/proc/<pid>/stat``) at points of the conversation, so start-up
(imports, about 1.4 CPU-s) is left out:

* **mic frame -> WebSocket**: over ``--window`` seconds of listening (after the first second),
  the client's CPU divided by the 40 ms microphone appends it sent meanwhile;
* **audio delta -> frame**: over one response of ``--deltas`` 100 ms audio deltas (created,
  transcript deltas, audio at 4x real time, done) until it has played, the client's CPU minus
  the listening rate over that time, divided by the deltas (receiving, framing, logging and
  playing them into the output WAV).

Baseline trees are extracted with ``git archive`` (default: ``3c991d0``, the code the issue
measured, and ``64cdaa9``, main before the technical log changes: websockets' frame logging always
on, a DEBUG sink, three writer threads). Trials alternate the trees. CPU is reported as the median
over ``--reps``; the machine's load is printed (other processes skew wall time, less CPU time).

Run: ``.venv/bin/python -m bench.logcost [--reps 3] [--baseline REV]``; writes
``bench/results/logcost.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.baseline import extract  # noqa: E402
from tests.support.audio import write_wav  # noqa: E402
from tests.support.replay_server import ReplayServer, ServerConn  # noqa: E402
from tests.support.scenarios import (  # noqa: E402
    Turn,
    handshake,
    noise,
    response_end,
    response_start,
    transcript_deltas,
)
from tests.support.script_run import script_env  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MIC_MS = 40
DELTA_MS = 100


def child_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Window:
    """CPU of the client measured by the server inside one session (start-up excluded)."""

    mic_us: float = 0.0
    delta_us: float = 0.0


def windowed(pid: list[int], window_s: float, deltas: int, out: Window):  # type: ignore[no-untyped-def]
    """The server side of one measured session: after the handshake and 1 s of microphone audio,
    the client's CPU over ``window_s`` of listening (per 40 ms append), then over one response of
    ``deltas`` 100 ms deltas and their playing (minus the listening rate over that window)."""

    async def script(conn: ServerConn) -> None:
        def appends() -> int:
            events = conn.record.client_events
            return sum(1 for _, e in events if e.get("type") == "input_audio_buffer.append")

        async def until_appends(n: int) -> None:
            await conn.wait_until(lambda: appends() >= n, timeout=window_s + deltas / 10 + 30)

        await handshake(conn)
        await until_appends(1000 // MIC_MS)
        start_appends, start_cpu = appends(), child_cpu_s(pid[0])
        await until_appends(start_appends + int(window_s * 1000 / MIC_MS))
        listen_appends, listen_cpu = appends(), child_cpu_s(pid[0])
        out.mic_us = (listen_cpu - start_cpu) / (listen_appends - start_appends) * 1e6
        words = " ".join(str(i) for i in range(deltas))
        turn = Turn("count", words, noise(deltas * DELTA_MS / 1000, seed=5))
        await response_start(conn, turn)
        await transcript_deltas(conn, turn)
        await conn.stream_audio(turn.response_id, turn.item_id, turn.audio, speed=4.0)
        await response_end(conn, turn)
        # played in real time from its first delta: wait for that, and half a second more
        await until_appends(listen_appends + int((deltas * DELTA_MS + 500) / MIC_MS))
        end_appends, end_cpu = appends(), child_cpu_s(pid[0])
        listening_share = (end_appends - listen_appends) * out.mic_us / 1e6
        out.delta_us = (end_cpu - listen_cpu - listening_share) / deltas * 1e6

    return script


async def measured_session(
    tree: Path, tmp: Path, window_s: float, deltas: int
) -> tuple[Window, int]:
    """One default-script session of ``tree``; its windowed CPU figures and voicelive.log size."""
    tmp.mkdir(parents=True, exist_ok=True)
    input_s = 1.0 + window_s + deltas * DELTA_MS / 1000 + 3.0
    wav = write_wav(tmp / "in.wav", noise(input_s, seed=9, amplitude=300))
    env = script_env()
    env["PYTHONPATH"] = str(tree)
    pid: list[int] = [0]
    window = Window()
    async with ReplayServer(windowed(pid, window_s, deltas, window)) as server:
        argv = [
            sys.executable, "-m", "pipelines.agent", "--endpoint", server.url,
            "--api-key", "K-bench-logcost-1234", "--model", "gpt-realtime",
            "--input-wav", str(wav), "--output-wav", str(tmp / "out.wav"),
            "--log-dir", str(tmp / "logs"), "--idle-grace", "0.3",
        ]  # fmt: skip
        proc = subprocess.Popen(
            argv, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        pid[0] = proc.pid
        _, status, _ = await asyncio.to_thread(os.wait4, proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        script_errors = list(server.script_errors)
    if code != 0 or script_errors or not window.delta_us:
        raise RuntimeError(f"session in {tree} failed ({code}, {script_errors}): {err[-500:]}")
    return window, (tmp / "logs" / "voicelive.log").stat().st_size


REDACT_SNIPPET = """
import random, sys, time
from processors.redaction import add_secret, redact
rng = random.Random(1)
add_secret("".join(rng.choice("0123456789abcdef") for _ in range(32)))  # an Azure key
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
add_secret("eyJ" + "".join(rng.choice(B64) for _ in range(1500)))  # a bearer token
lines = [
    "2026-12-01 10:00:00,123:processors.voicelive.service:INFO:Response done: completed (312 ms)",
    "2026-12-01 10:00:00,123:voicelive.events:DEBUG:Received event: "
    "response.audio_transcript.delta",
    '{"at": "2026-12-01T10:00:00.123+00:00", "direction": "received", "event": {"type": '
    '"response.audio_transcript.delta", "delta": " the capital of France is Paris", "item_id": '
    '"item_abc", "response_id": "resp_123"}}',
    "2026-12-01 10:00:00,123:websockets.client:DEBUG:< TEXT '{'type': 'response.audio.delta', "
    "'response_id': 'resp_1', 'delta': 'AAAAAAAA...AAAAAAAAAAAAAAAA'}' [6459 bytes]",
]
n = 20000
t0 = time.process_time()
for _ in range(n):
    for line in lines:
        redact(line)
print((time.process_time() - t0) / n / len(lines) * 1e6)
"""


def redact_cost(tree: Path) -> float:
    """CPU microseconds per clean log line of ``tree``'s redactor (an Azure key and a 1.5 KB
    token registered)."""
    env = script_env()
    env["PYTHONPATH"] = str(tree)
    out = subprocess.run(
        [sys.executable, "-c", REDACT_SNIPPET],
        env=env,
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


@dataclass
class Figures:
    mic_us: list[float]
    delta_us: list[float]
    log_bytes: list[int]


async def measure(
    trees: dict[str, Path], reps: int, window_s: float, deltas: int, work: Path
) -> dict[str, Figures]:
    figures = {name: Figures([], [], []) for name in trees}
    for rep in range(reps):
        for name, tree in trees.items():  # alternating: load changes hit every tree alike
            window, size = await measured_session(tree, work / f"{name}-{rep}", window_s, deltas)
            f = figures[name]
            f.mic_us.append(window.mic_us)
            f.delta_us.append(window.delta_us)
            f.log_bytes.append(size)
            print(
                f"rep {rep + 1} {name:9s}: {window.mic_us:.0f} us/mic frame, "
                f"{window.delta_us:.0f} us/delta, voicelive.log {size} bytes",
                flush=True,
            )
    return figures


def report(
    figures: dict[str, Figures],
    args: argparse.Namespace,
    load: tuple[float, float],
    redaction: tuple[float, float],
) -> str:
    """The Markdown table: one column per tree, the ratio of each baseline to this tree."""
    names = list(figures)
    bases = [n for n in names if n != "this tree"]
    after = figures["this tree"]

    def med(values: list[float]) -> float:
        return statistics.median(values)

    rows = [
        ("CPU per 40 ms mic frame -> WebSocket (listening)", "mic_us", "us"),
        ("CPU per 100 ms audio delta -> frame (and played)", "delta_us", "us"),
        ("voicelive.log after the session", "log_bytes", "bytes"),
    ]
    revs = " ".join(f"--baseline {rev}" for rev in args.baseline)
    lines = [
        "# Logging cost per frame, as shipped",
        "",
        f"Command: `.venv/bin/python -m bench.logcost --reps {args.reps} {revs}` "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} before / {load[1]:.1f} after: a "
        "shared, loaded VM, read the ratios to one digit).",
        "",
        "Baselines: `3c991d0` is the code the issue measured (websockets' frame debug always on, a "
        "DEBUG sink, every line redacted twice by value, three writer threads per session); "
        "`64cdaa9` is main after the secrets work (faster redactor, once per line) but before the "
        "technical log changes. This tree: INFO by default, frames only with `--debug`, one "
        "writer thread per process. The default script with WAV transports and default flags; "
        f"the client's CPU read by the peer over {args.window:.0f} s of listening and over one "
        f"response of {args.deltas} deltas; median of {args.reps} alternating trials (each "
        "tree's own transports and service: differences beyond logging are in the "
        "older baseline's figures too).",
        "",
        "| figure | "
        + " | ".join(names)
        + " | "
        + " | ".join(f"{b} / this tree" for b in bases)
        + " |",
        "|---|" + "---|" * (len(names) + len(bases)),
    ]
    for label, attr, unit in rows:
        values = [med(getattr(figures[n], attr)) for n in names]
        now = med(getattr(after, attr))
        ratios = [med(getattr(figures[b], attr)) / now if now else float("inf") for b in bases]
        lines.append(
            f"| {label} | "
            + " | ".join(f"{v:,.0f} {unit}" for v in values)
            + " | "
            + " | ".join(f"{r:.2f}x" for r in ratios)
            + " |"
        )
    lines += [
        "",
        f"Redaction of one clean log line (an Azure key and a 1.5 KB token registered): "
        f"{redaction[0]:.1f} us with `{args.redactor_baseline}`'s redactor (by value; it ran twice "
        f"per line then) vs {redaction[1]:.1f} us now (8-character runs; once per line, on the "
        "writer thread).",
    ]
    lines += ["", "Every trial (us per mic frame / per delta):", ""]
    for name, f in figures.items():
        trials = ", ".join(f"{m:.0f}/{d:.0f}" for m, d in zip(f.mic_us, f.delta_us, strict=True))
        lines.append(f"- {name}: {trials}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline",
        action="append",
        help="revision to compare with, repeatable (default: 3c991d0, as the issue measured it, "
        "and 64cdaa9, main after the secrets work, before the technical log changes)",
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0, help="seconds of listening measured")
    parser.add_argument(
        "--deltas", type=int, default=100, help="100 ms audio deltas in the speaking session"
    )
    parser.add_argument(
        "--redactor-baseline", default="3c991d0", help="revision whose redactor to compare"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; write nothing in bench/results/"
    )
    args = parser.parse_args()
    args.baseline = args.baseline or ["3c991d0", "64cdaa9"]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="logcost-") as tmp:
        work = Path(tmp)
        for rev in dict.fromkeys([*args.baseline, args.redactor_baseline]):  # each once, first
            option = "--baseline" if rev in args.baseline else "--redactor-baseline"
            extract(rev, work / f"tree-{rev}", option)  # (a missing one fails before the run)
        trees = {rev: work / f"tree-{rev}" for rev in args.baseline}
        trees["this tree"] = ROOT
        figures = asyncio.run(measure(trees, args.reps, args.window, args.deltas, work / "runs"))
        redactor_tree = work / f"tree-{args.redactor_baseline}"
        redaction = (redact_cost(redactor_tree), redact_cost(ROOT))
    text = report(figures, args, (load_before, os.getloadavg()[0]), redaction)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "logcost.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
