"""What the logging costs per frame, as shipped: this tree against a baseline revision, one run.

A benchmark, not a test. The default script (``python -m pipelines.agent``, WAV transports, the
logs it writes by default, no flags) runs as a subprocess against a Voice Live peer on 127.0.0.1
in this process. The child's CPU time (user + system, all its threads, from ``os.wait4``) is
measured for four sessions per tree, and marginal costs are taken from their differences, so
start-up (imports, about 1.4 CPU-s) cancels out:

* **mic frame -> WebSocket**: a listening session with ``--input-wav`` of ``long`` minus one of
  ``short`` seconds, divided by the extra 40 ms microphone frames (each an
  ``input_audio_buffer.append``);
* **audio delta -> frame**: a session whose server streams ``deltas`` 100 ms audio deltas (a
  response, as a real one: created, deltas with transcript deltas, done) minus the same session
  without them, divided by ``deltas`` (includes playing them into the output WAV).

The baseline tree is extracted with ``git archive`` (default: ``64cdaa9``, main before the
technical log changes: websockets' frame logging always on, DEBUG sink, lines redacted twice,
three writer threads). Trials alternate baseline and this tree. CPU is reported as the median
over ``--reps``; the machine's load is printed (other processes skew wall time, less CPU time).

Run: ``.venv/bin/python -m bench.logcost [--reps 3] [--baseline REV]``; writes
``bench/results/logcost.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.audio import write_wav  # noqa: E402
from tests.support.replay_server import ReplayServer, ServerConn  # noqa: E402
from tests.support.scenarios import (
    RATE,
    Turn,
    handshake,
    noise,
    response_end,
    response_start,
    transcript_deltas,
)  # noqa: E402
from tests.support.script_run import script_env  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MIC_MS = 40
DELTA_MS = 100


def extract(rev: str, into: Path) -> Path:
    """The tree of ``rev`` (tracked files) under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def listening(conn: ServerConn) -> object:
    return handshake(conn)


def streaming(n: int):  # type: ignore[no-untyped-def]
    """After the handshake and 0.4 s of microphone audio: one response of ``n`` 100 ms deltas."""

    async def script(conn: ServerConn) -> None:
        await handshake(conn)
        await conn.wait_audio(RATE * 2 * 2 // 5)
        turn = Turn(
            "count to a hundred",
            " ".join(str(i) for i in range(n)),
            noise(n * DELTA_MS / 1000, seed=5),
        )
        await response_start(conn, turn)
        await transcript_deltas(conn, turn)
        await conn.stream_audio(turn.response_id, turn.item_id, turn.audio, speed=4.0)
        await response_end(conn, turn)

    return script


async def cpu_of_session(tree: Path, tmp: Path, input_s: float, deltas: int) -> float:
    """CPU seconds of one default-script session (all its threads)."""
    tmp.mkdir(parents=True, exist_ok=True)
    wav = write_wav(tmp / "in.wav", noise(input_s, seed=9, amplitude=300))
    script = streaming(deltas) if deltas else listening
    env = script_env()
    env["PYTHONPATH"] = str(tree)
    async with ReplayServer(script) as server:  # type: ignore[arg-type]
        argv = [
            sys.executable,
            "-m",
            "pipelines.agent",
            "--endpoint",
            server.url,
            "--api-key",
            "K-bench-logcost-1234",
            "--model",
            "gpt-realtime",
            "--input-wav",
            str(wav),
            "--output-wav",
            str(tmp / "out.wav"),
            "--log-dir",
            str(tmp / "logs"),
            "--idle-grace",
            "0.3",
        ]
        proc = subprocess.Popen(
            argv,
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, status, usage = await asyncio.to_thread(os.wait4, proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"session in {tree} failed ({proc.returncode}): {err[-500:]}")
    return usage.ru_utime + usage.ru_stime


@dataclass
class Figures:
    mic_us: list[float]
    delta_us: list[float]
    log_bytes: list[int]


async def measure(
    trees: dict[str, Path], reps: int, short: float, long: float, deltas: int, work: Path
) -> dict[str, Figures]:
    figures = {name: Figures([], [], []) for name in trees}
    mic_frames = (long - short) * 1000 / MIC_MS
    for rep in range(reps):
        for name, tree in trees.items():  # alternating: load changes hit both sides alike
            base = work / f"{name}-{rep}"
            short_cpu = await cpu_of_session(tree, base / "short", short, 0)
            long_cpu = await cpu_of_session(tree, base / "long", long, 0)
            speaking_cpu = await cpu_of_session(tree, base / "speaking", short, deltas)
            f = figures[name]
            f.mic_us.append((long_cpu - short_cpu) / mic_frames * 1e6)
            f.delta_us.append((speaking_cpu - short_cpu) / deltas * 1e6)
            f.log_bytes.append((base / "long" / "logs" / "voicelive.log").stat().st_size)
            print(
                f"rep {rep + 1} {name:9s}: short {short_cpu:.2f} s, long {long_cpu:.2f} s, speaking {speaking_cpu:.2f} s CPU"
                f" -> {f.mic_us[-1]:.0f} us/mic frame, {f.delta_us[-1]:.0f} us/delta",
                flush=True,
            )
    return figures


def report(figures: dict[str, Figures], args: argparse.Namespace, load: tuple[float, float]) -> str:
    before, after = figures["baseline"], figures["this tree"]

    def med(values: list[float]) -> float:
        return statistics.median(values)

    rows = [
        (
            "CPU per 40 ms mic frame -> WebSocket (listening)",
            med(before.mic_us),
            med(after.mic_us),
            "us",
        ),
        (
            "CPU per 100 ms audio delta -> frame (and played)",
            med(before.delta_us),
            med(after.delta_us),
            "us",
        ),
        (
            f"voicelive.log after a {args.long:.0f} s listening session",
            med(before.log_bytes),
            med(after.log_bytes),
            "bytes",
        ),
    ]
    lines = [
        "# Logging cost per frame, as shipped",
        "",
        f"Command: `.venv/bin/python -m bench.logcost --reps {args.reps} --baseline {args.baseline}` "
        f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load[0]:.1f} before / {load[1]:.1f} after).",
        "",
        f"Baseline: `{args.baseline}` (websockets' frame debug always on, DEBUG sink, lines redacted twice, "
        "a writer thread per file). This tree: INFO by default, frames only with `--debug`, one redaction, "
        "one writer thread per process. The default script with WAV transports and default flags; "
        f"marginal CPU from sessions of {args.short:.0f} s and {args.long:.0f} s of microphone input and "
        f"one with {args.deltas} response deltas; median of {args.reps} alternating trials.",
        "",
        "| figure | baseline | this tree | ratio |",
        "|---|---|---|---|",
    ]
    for label, b, a, unit in rows:
        lines.append(
            f"| {label} | {b:,.0f} {unit} | {a:,.0f} {unit} | {b / a if a else float('inf'):.2f}x |"
        )
    lines += ["", "Every trial (us per mic frame / per delta):", ""]
    for name, f in figures.items():
        trials = ", ".join(f"{m:.0f}/{d:.0f}" for m, d in zip(f.mic_us, f.delta_us))
        lines.append(f"- {name}: {trials}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline",
        default="64cdaa9",
        help="revision to compare with (default: main before the log changes)",
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--short", type=float, default=3.0, help="seconds of microphone input, short session"
    )
    parser.add_argument(
        "--long", type=float, default=11.0, help="seconds of microphone input, long session"
    )
    parser.add_argument(
        "--deltas", type=int, default=60, help="100 ms audio deltas in the speaking session"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="logcost-") as tmp:
        work = Path(tmp)
        trees = {"baseline": extract(args.baseline, work / "baseline-tree"), "this tree": ROOT}
        figures = asyncio.run(
            measure(trees, args.reps, args.short, args.long, args.deltas, work / "runs")
        )
    text = report(figures, args, (load_before, os.getloadavg()[0]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "logcost.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
