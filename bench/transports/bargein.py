"""Barge-in, first audio, gaps and listening CPU: our transports (in this process and in an audio
process) vs pipecat's stock LocalAudioTransport, unloaded and with a GIL holder.

    python -m bench.transports.bargein [--trials 100] [--rounds 4] [--listen 10]

One run starts a private PulseAudio (tests/audio_rig/pulse.py: pipe-sink speaker read back,
null-sink microphone) and a Voice Live peer on 127.0.0.1 (tests/support/replay_server.py), then
runs the default agent pipeline as shipped in a client process per configuration
(bench/transports/client.py): side ``ours`` / ``audio-process`` / ``stock``, each without and with
a thread holding the GIL 30 ms of every 40 ms in the pipeline process. Configurations are
interleaved: ``--rounds`` rounds, each running every configuration for trials/rounds trials.

Each trial is an answer whose audio (1.5 s, never zero) arrives at once, interrupted by
``speech_started`` 0.3-0.7 s later, then 0.6 s of quiet. Clocks start when the client's service
parsed the server event (its receive loop's timestamp); the end is read at the speaker (when the
sample arrives in the pipe-sink FIFO, PulseAudio's buffering included):

* first audio = first delta parsed -> first agent sample at the speaker;
* barge-in stop = speech_started parsed -> last agent sample at the speaker;
* gaps = runs of >= 1 ms of silence inside what was heard of an answer (underruns);
* listening CPU (first ``--listen`` s of each unloaded client, mic streaming to the server): the
  pipeline process, its audio process and the PulseAudio daemon, from /proc.

p99 is given only from >= 100 samples; below that the max. Writes bench/results/transports.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from loguru import logger

from bench.transports.report import Results, write_report
from tests.audio_rig.pulse import PulseRig, SpeakerCapture
from tests.devices.processes import audio_children
from tests.support.replay_server import ReplayServer, ServerConn
from tests.support.scenarios import (
    RATE,
    Turn,
    _with,
    handshake,
    response_end,
    response_start,
    user_speaks,
)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
SIDES = ("ours", "audio-process", "stock")
ANSWER_S = 1.5
QUIET_S = 0.6
TICK = os.sysconf("SC_CLK_TCK")


def answer_audio(k: int) -> bytes:
    """A never-zero tone, so every sample that reaches the speaker is visible."""
    t = np.arange(int(ANSWER_S * RATE)) / RATE
    return (3000 + 2000 * np.sin(2 * np.pi * (300 + 7 * (k % 50)) * t)).astype(np.int16).tobytes()


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])


class Session:
    """The server's side of one client run: handshake, a listening window, then the trials."""

    def __init__(self, trials: int, listen_s: float, seed: int):
        self.trials, self.listen_s = trials, listen_s
        self.rng = random.Random(seed)
        self.listening = asyncio.Event()
        self.listened = asyncio.Event()
        self.done = asyncio.Event()

    async def __call__(self, conn: ServerConn) -> None:
        await handshake(conn)
        await conn.wait_audio(RATE * 2 // 5)  # the microphone streams
        if self.listen_s:
            self.listening.set()
            await asyncio.sleep(self.listen_s)
            self.listened.set()
        for k in range(self.trials):
            turn = Turn("u", "a", answer_audio(k + self.rng.randrange(1000)))
            await user_speaks(conn, turn, started=False)
            await response_start(conn, turn)
            await conn.stream_audio(turn.response_id, turn.item_id, turn.audio, speed=1000)
            await asyncio.sleep(self.rng.uniform(0.3, 0.7))
            await conn.send(
                _with(
                    "input_audio_buffer.speech_started", audio_start_ms=1000, item_id=f"item_U{k}"
                )
            )
            await response_end(conn, turn, status="cancelled", transcript_done=False)
            await asyncio.sleep(QUIET_S)
        self.done.set()


def heard_timeline(capture: SpeakerCapture) -> tuple[np.ndarray, np.ndarray]:
    """(samples, arrival time of each sample) of everything the speaker played."""
    samples, times = [], []
    for at, block in list(capture.blocks):
        n = len(block) // 2
        samples.append(np.frombuffer(block[: 2 * n], dtype=np.int16))
        times.append(at + np.arange(n) / RATE)
    if not samples:
        return np.zeros(0, np.int16), np.zeros(0)
    return np.concatenate(samples), np.concatenate(times)


def gaps(heard: np.ndarray, min_len: int = RATE // 1000) -> int:
    zero = heard == 0
    edges = np.diff(np.concatenate([[0], zero.astype(np.int8), [0]]))
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int((lengths >= min_len).sum())


def score(label: str, marks: list, capture: SpeakerCapture, out: Results) -> None:
    samples, times = heard_timeline(capture)
    firsts = [at for kind, _, at in marks if kind == "response.audio.delta"]
    for stage in ("queued", "handed"):  # in-process breakdown of first audio
        stamps = [at for kind, _, at in marks if kind == stage]
        for first_at, at in zip(firsts, stamps, strict=False):
            out.add(label, f"first audio: delta parsed -> {stage} (ms)", (at - first_at) * 1000)
    barges = [at for kind, _, at in marks if kind == "input_audio_buffer.speech_started"]
    for k, (first_at, barge_at) in enumerate(zip(firsts, barges, strict=False)):
        until = firsts[k + 1] if k + 1 < len(firsts) else float("inf")
        window = np.flatnonzero((times >= first_at) & (times < until) & (samples != 0))
        if not len(window):
            out.add(label, "answers never heard", 1)
            continue
        first, last = window[0], window[-1]
        out.add(label, "first audio (ms)", (times[first] - first_at) * 1000)
        out.add(label, "barge-in stop (ms)", (times[last] - barge_at) * 1000)
        out.add(label, "gaps heard (per answer)", gaps(samples[first : last + 1]))


async def run_client(side: str, gil: bool, session: Session, rig: PulseRig, out: Results) -> None:
    label = f"{side}{' +GIL' if gil else ''}"
    marks_file = Path(tempfile.mkstemp(prefix="bench-marks-", suffix=".json")[1])
    capture = SpeakerCapture(rig.fifo)
    capture.start()
    async with ReplayServer(session) as server:
        env = {**os.environ, **rig.env, "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.transports.client",
            "--side",
            side,
            "--endpoint",
            server.url,
            "--marks",
            str(marks_file),
            *(["--gil"] if gil else []),
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
        )
        if session.listen_s:
            await asyncio.wait_for(session.listening.wait(), 60)
            children = audio_children(proc.pid)
            for child in children:
                stat = Path(f"/proc/{child}/stat").read_text().rsplit(") ", 1)[1].split()
                out.add(label, "audio process nice value", int(stat[16]))
            pids = [proc.pid, *children, rig.daemon_pid]
            c0, t0 = [cpu_ticks(p) for p in pids], time.monotonic()
            await session.listened.wait()
            c1, t1 = [cpu_ticks(p) for p in pids], time.monotonic()
            share = [100 * (b - a) / TICK / (t1 - t0) for a, b in zip(c0, c1, strict=True)]
            pipeline, pulse = share[0], share[-1]
            child = sum(share[1:-1])
            out.add(label, "listening CPU, pipeline process (% of a core)", pipeline)
            out.add(label, "listening CPU, audio process (% of a core)", child)
            out.add(label, "listening CPU, both processes (% of a core)", pipeline + child)
            out.add(label, "listening CPU, PulseAudio daemon (% of a core)", pulse)
        pa0, ta0 = cpu_ticks(rig.daemon_pid), time.monotonic()
        await asyncio.wait_for(session.done.wait(), 60 + 3 * session.trials)
        pa1, ta1 = cpu_ticks(rig.daemon_pid), time.monotonic()
        out.add(
            label,
            "PulseAudio daemon CPU during trials (% of a core)",
            100 * (pa1 - pa0) / TICK / (ta1 - ta0),
        )
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 30)
    await asyncio.to_thread(capture.wait_for_samples, len(capture.samples()) + RATE // 5, 5)
    capture.stop()
    import json

    marks = json.loads(marks_file.read_text()) if marks_file.stat().st_size else []
    marks_file.unlink()
    score(label, marks, capture, out)


async def main_async(args: argparse.Namespace) -> None:
    out = Results()
    per_round = max(1, args.trials // args.rounds)
    with PulseRig() as rig:
        for r in range(args.rounds):
            for gil in (False, True):
                for side in SIDES:
                    logger.info(f"round {r + 1}/{args.rounds}: {side}{' +GIL' if gil else ''}")
                    listen = args.listen if not gil else 0.0
                    await run_client(side, gil, Session(per_round, listen, seed=r), rig, out)
    command = (
        f"python -m bench.transports.bargein --trials {args.trials} "
        f"--rounds {args.rounds} --listen {args.listen:g}"
    )
    print(write_report(out, None if args.no_write else RESULTS, command))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="barge-in trials per configuration")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds")
    parser.add_argument(
        "--listen",
        type=float,
        default=10.0,
        help="seconds of listening-only CPU per unloaded client run",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; write nothing in bench/results/"
    )
    args = parser.parse_args()
    logger.remove()
    logger.add(lambda m: print(m, end=""), level="INFO")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
