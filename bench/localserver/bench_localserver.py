"""Benchmark of the local Voice Live server on this machine: (1) real-time factor of one session
(audio seconds processed per server CPU second and per wall second, audio pushed as fast as
possible), (2) how many concurrent sessions it holds in real time (ramp N clients each streaming
the question WAV in real time; a session keeps up when its turn is detected, answered and its
answer audio delivered on time). The server runs as a subprocess; its CPU comes from /proc.
Writes a markdown table to bench/results/localserver.md.

Run: ``.venv/bin/python bench/localserver/bench_localserver.py [--max-sessions 64]
[--budget-s 150]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from localserver.tts import synthesize  # noqa: E402

RATE = 24000
CHUNK_MS = 100
SILENCE_MS = 500
QUERY = urlencode({"api-version": "2026-07-15", "model": "gpt-realtime"})
SESSION = {
    "input_audio_transcription": {"model": "azure-speech"},
    "turn_detection": {"type": "server_vad", "silence_duration_ms": SILENCE_MS},
}


def question_audio() -> tuple[bytes, int]:
    """0.5 s silence + the question + 1 s silence (24 kHz pcm16) and the speech end in ms."""
    speech = synthesize("What is the capital of France?", RATE).pcm
    pcm = np.concatenate([np.zeros(RATE // 2, np.int16), speech, np.zeros(RATE, np.int16)])
    return pcm.astype("<i2").tobytes(), 500 + len(speech) * 1000 // RATE


class ServerProcess:
    """``python -m localserver`` in a subprocess."""

    def __init__(self, *args: str) -> None:
        self.args = args

    async def __aenter__(self) -> ServerProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "localserver",
            "--port",
            "0",
            *self.args,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode()
        self.url = (
            line.strip().rsplit(" ", 1)[-1].replace("http://", "ws://")
            + "/voice-live/realtime?"
            + QUERY
        )
        return self

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def __aexit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.proc.wait(), 10)


@dataclass
class Outcome:
    turn_lag_ms: float  # wall time from "speech end + silence_duration sent" to speech_stopped
    first_audio_ms: float  # from speech_stopped to the first response.audio.delta
    delivery_ratio: float  # answer audio duration / wall time to receive it (>= 1 keeps up)
    ok: bool


async def session(
    url: str, audio: bytes, speech_end_ms: int, realtime: bool, timeout: float = 60
) -> Outcome:
    """One client: stream the question, wait for the whole answer."""
    async with connect(url, additional_headers={"api-key": "bench"}, max_size=None) as ws:

        async def expect(kind: str) -> dict:
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                if event["type"] == kind:
                    return event
                if event["type"] == "response.audio.delta":
                    deltas.append((time.monotonic(), len(event["delta"]) * 3 // 4))

        deltas: list[tuple[float, int]] = []
        await expect("session.created")
        await ws.send(json.dumps({"type": "session.update", "session": SESSION}))
        await expect("session.updated")
        step = RATE * 2 * CHUNK_MS // 1000
        t0 = time.monotonic()
        due_turn = t0 + (speech_end_ms + SILENCE_MS) / 1000

        async def sender() -> None:
            for i, start in enumerate(range(0, len(audio), step)):
                if realtime:
                    await asyncio.sleep(max(0.0, t0 + i * CHUNK_MS / 1000 - time.monotonic()))
                chunk = base64.b64encode(audio[start : start + step]).decode()
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))

        send_task = asyncio.create_task(sender())
        await expect("input_audio_buffer.speech_stopped")
        t_stop = time.monotonic()
        await expect("response.done")
        await send_task
        t_first = deltas[0][0] if deltas else float("nan")
        answer_s = sum(n for _, n in deltas) / (RATE * 2)
        receive_s = max(deltas[-1][0] - t_first, 1e-3) if deltas else float("nan")
        lag = (t_stop - due_turn) * 1000 if realtime else 0.0
        first = (t_first - t_stop) * 1000
        # 1.5 s lead is sent at once
        ratio = (answer_s - 1.5) / receive_s if realtime else answer_s / receive_s
        return Outcome(lag, first, ratio, lag <= 500 and first <= 1000 and ratio >= 0.9)


async def measure_rtf(audio: bytes, speech_end_ms: int, runs: int = 5) -> dict[str, float]:
    """Audio pushed unpaced into one session at a time; server CPU and wall per audio second."""
    async with ServerProcess("--pace", "0") as server:
        await session(server.url, audio, speech_end_ms, realtime=False)  # warm-up (decoder, eSpeak)
        cpu0, wall0 = server.cpu_s(), time.monotonic()
        for _ in range(runs):
            await session(server.url, audio, speech_end_ms, realtime=False)
        cpu, wall = server.cpu_s() - cpu0, time.monotonic() - wall0
    audio_s = runs * len(audio) / (RATE * 2)
    return {
        "audio_s": audio_s,
        "cpu_s": cpu,
        "wall_s": wall,
        "x_rt_cpu": audio_s / cpu,
        "x_rt_wall": audio_s / wall,
    }


async def ramp(audio: bytes, speech_end_ms: int, max_sessions: int, budget_s: float) -> list[dict]:
    """Concurrent real-time sessions, N doubling-ish, until one falls behind or time runs out."""
    rows = []
    start = time.monotonic()
    async with ServerProcess() as server:
        for n in [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128]:
            if n > max_sessions or time.monotonic() - start > budget_s:
                break
            cpu0 = server.cpu_s()
            wall0 = time.monotonic()

            async def staggered(i: int, count: int) -> Outcome | BaseException:
                await asyncio.sleep(i / count)  # sessions start spread over one second
                try:
                    return await session(server.url, audio, speech_end_ms, realtime=True)
                except Exception as exc:  # a session that fails counts as not keeping up
                    return exc

            results = await asyncio.gather(*(staggered(i, n) for i in range(n)))
            outcomes = [r for r in results if isinstance(r, Outcome)]
            cpu = server.cpu_s() - cpu0
            wall = time.monotonic() - wall0
            kept = sum(o.ok for o in outcomes)
            rows.append(
                {
                    "n": n,
                    "kept_up": kept,
                    "failed": n - len(outcomes),
                    "turn_lag_p95_ms": float(np.percentile([o.turn_lag_ms for o in outcomes], 95))
                    if outcomes
                    else None,
                    "first_audio_p95_ms": float(
                        np.percentile([o.first_audio_ms for o in outcomes], 95)
                    )
                    if outcomes
                    else None,
                    "delivery_min": min((o.delivery_ratio for o in outcomes), default=None),
                    "server_cpu_pct": 100 * cpu / wall,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            if kept < n:
                break
    return rows


def report(rtf: dict[str, float], rows: list[dict], audio_s: float) -> str:
    best = max((r["n"] for r in rows if r["kept_up"] == r["n"]), default=0)
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    lines = [
        "# Local Voice Live server benchmark",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; "
        "generated by `bench/localserver/bench_localserver.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        "## Real-time factor of one session "
        "(question WAV pushed unpaced, VAD + grammar STT + eSpeak answer)",
        "",
        "| audio processed (s) | server CPU (s) | wall (s) | x real time per CPU-s "
        "| x real time (wall) |",
        "|---|---|---|---|---|",
        f"| {rtf['audio_s']:.1f} | {rtf['cpu_s']:.2f} | {rtf['wall_s']:.2f} "
        f"| {rtf['x_rt_cpu']:.0f} | {rtf['x_rt_wall']:.1f} |",
        "",
        f"## Concurrent real-time sessions (each streams {audio_s:.1f} s of audio "
        f"in {CHUNK_MS} ms chunks, in real time)",
        "",
        "A session keeps up when speech_stopped arrives <= 500 ms after the speech end "
        "+ silence_duration was sent, the first answer audio <= 1000 ms after speech_stopped, "
        "and the answer audio (after the 1.5 s lead) arrives at >= 0.9 x real time.",
        "",
        "| sessions | kept up | failed | turn lag p95 (ms) | first audio p95 (ms) "
        "| slowest delivery (x rt) | server CPU (% of one core) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['kept_up']} | {r['failed']} | {fmt(r['turn_lag_p95_ms'], '.0f')} | "
            f"{fmt(r['first_audio_p95_ms'], '.0f')} | {fmt(r['delivery_min'], '.2f')} "
            f"| {r['server_cpu_pct']:.0f} |"
        )
    lines += ["", f"**Largest N where every session kept up: {best}.**", ""]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-sessions", type=int, default=64)
    parser.add_argument("--budget-s", type=float, default=150)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "localserver.md"))
    parser.add_argument(
        "--no-write", action="store_true", help="print only; do not write the --out file"
    )
    args = parser.parse_args()
    audio, speech_end_ms = question_audio()
    rtf = await measure_rtf(audio, speech_end_ms)
    print(json.dumps(rtf), flush=True)
    rows = await ramp(audio, speech_end_ms, args.max_sessions, args.budget_s)
    text = report(rtf, rows, len(audio) / (RATE * 2))
    print(text)
    if not args.no_write:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    asyncio.run(main())
