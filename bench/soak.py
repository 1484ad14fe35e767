"""Soak: a long session whose server expires every session after 20 s, with a user turn every 5 s.

``python -m bench.soak --minutes 15`` starts a scripted Voice Live server on 127.0.0.1 and runs
the default script (``python -m pipelines.agent``, model mode) against it as a subprocess, with a
WAV input holding one user turn every ``--turn-every`` seconds. The server:

* creates each session after a random 0.2-1.5 s (as a busy real server may), announces
  ``expires_at`` = now + ``--session-s`` and, if the client is still there at that time, sends
  ``error`` ``session_expired`` and closes 1001;
* hears turns with its own VAD over the microphone audio it receives (each turn's samples carry
  its number: ``±(4000 + n)``), commits a turn once 300 ms of silence follow it, and answers it
  (transcript, words, audio, ``response.done``). A turn whose connection goes away before its
  end is not committed there, as on a real server.

It reports, from the server's record and the session log: turns in the input, heard whole
(committed with every one of its samples: a turn whose start was lost in a reconnect gap counts
as cut, not heard) and answered exactly once, turns that straddled a reconnect (their audio
split across two connections, or held during a reconnect and sent to the next session),
connects and the most in any 60 s, history items replayed per reconnect, and the client's RSS
(psutil, every 2 s): growth from the median of the second minute to the median of the last
minute. Writes ``bench/results/soak.md``. A benchmark: it only fails (exit 1) when the run
itself breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "soak.md"
RATE = 24000
API_KEY = "K-soakkey-5e1d2c3b4a90"
LOUD = 3000  # VAD threshold; the background noise stays under 200
BASE = 4000  # a turn's samples are ±(BASE + n)
TURN_S = 1.2  # each turn lasts this long
TURN_SAMPLES = round(TURN_S * RATE)  # exactly, whatever float rounding does to start times
SILENCE_S = 0.3  # the server commits a turn after this much silence
FIRST_TURN_S = 2.0


def turn_starts(seconds: float, every: float) -> list[float]:
    starts, t = [], FIRST_TURN_S
    while t + TURN_S + 1.0 < seconds:
        starts.append(t)
        t += every
    return starts


def input_pcm(seconds: float, every: float) -> tuple[bytes, int]:
    """Background noise with one numbered turn every ``every`` seconds; returns (pcm, turns)."""
    rng = np.random.default_rng(5)
    samples = rng.integers(-200, 200, int(seconds * RATE), dtype=np.int16)
    starts = turn_starts(seconds, every)
    for n, start in enumerate(starts, 1):
        a = round(start * RATE)
        b = a + TURN_SAMPLES
        value = BASE + n
        samples[a:b] = np.where(np.arange(b - a) % 2 == 0, value, -value).astype(np.int16)
    return samples.tobytes(), len(starts)


def write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)


@dataclass
class Record:
    """What the server saw, over every connection."""

    connects: list[float] = field(default_factory=list)  # monotonic upgrade times
    heard: Counter[int] = field(default_factory=Counter)
    cut: dict[int, float] = field(default_factory=dict)  # turns committed with part missing (s)
    answered: Counter[int] = field(default_factory=Counter)
    turn_conns: dict[int, set[int]] = field(
        default_factory=dict
    )  # turn -> connections its audio reached
    held_turns: set[int] = field(default_factory=set)  # turns with audio in a held-audio burst
    replayed: list[int] = field(default_factory=list)  # history items per resumed connection
    expired_closes: int = 0
    errors: list[str] = field(default_factory=list)


def event(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "event_id": f"event_{random.getrandbits(40):x}", **fields})


class SoakServer:
    """Each connection: a slow session.created, a VAD that answers turns, a hard expiry."""

    def __init__(self, session_s: float, seed: int = 7) -> None:
        self.session_s = session_s
        self.rec = Record()
        self.rng = random.Random(seed)
        self._n = 0

    async def handle(self, ws: ServerConnection) -> None:
        self._n += 1
        conn_no = self._n
        self.rec.connects.append(time.monotonic())
        try:
            await Connection(self, ws, conn_no).run()
        except ConnectionClosed:
            pass
        except Exception as exc:  # reported in the results, never silently
            self.rec.errors.append(f"connection {conn_no}: {exc.__class__.__name__}: {exc}")


class Connection:
    def __init__(self, server: SoakServer, ws: ServerConnection, no: int) -> None:
        self.server, self.ws, self.no = server, ws, no
        self.rec = server.rec
        self.speech: int | None = None  # the turn being spoken
        self.speech_samples = 0  # how many of its samples this connection received
        self.silence = 0
        self.items = 0
        self.ready_at = 0.0
        self.audio_since_ready = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        await asyncio.sleep(self.server.rng.uniform(0.2, 1.5))  # the session takes a moment
        sid = f"sess_Soak{self.no}"
        expires = time.time() + self.server.session_s
        session = {
            "id": sid,
            "object": "realtime.session",
            "model": "gpt-realtime",
            "expires_at": int(expires),
        }
        await self.ws.send(event("session.created", session=session))
        expiry = asyncio.create_task(self._expire(expires))
        try:
            async for message in self.ws:
                msg = json.loads(message)
                kind = msg.get("type")
                if kind == "session.update":
                    await self.ws.send(
                        event("session.updated", session={**session, **msg.get("session", {})})
                    )
                    self.ready_at = time.monotonic()
                elif kind == "input_audio_buffer.append":
                    await self._audio(base64.b64decode(msg["audio"]))
                elif kind == "conversation.item.create":
                    self.items += 1
        finally:
            expiry.cancel()
            for task in self.tasks:
                task.cancel()
            if self.no > 1:
                self.rec.replayed.append(self.items)

    async def _expire(self, expires: float) -> None:
        await asyncio.sleep(max(0.0, expires - time.time()))
        self.rec.expired_closes += 1
        err = {
            "type": "invalid_request_error",
            "code": "session_expired",
            "message": "session expired",
        }
        await self.ws.send(event("error", error=err))
        await self.ws.close(1001, "session_expired")

    async def _audio(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype=np.int16)
        # Audio arriving far faster than real time right after session.updated was held.
        self.audio_since_ready += len(samples)
        since = time.monotonic() - self.ready_at
        burst = since < 0.25 and self.audio_since_ready / RATE > since + 0.1
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) >= LOUD)
        if loud.size:
            turn = int(np.abs(samples[loud[0]].astype(np.int32))) - BASE
            self.rec.turn_conns.setdefault(turn, set()).add(self.no)
            if burst:
                self.rec.held_turns.add(turn)
            if self.speech is None:
                self.speech, self.speech_samples = turn, 0
                await self.ws.send(
                    event(
                        "input_audio_buffer.speech_started",
                        audio_start_ms=0,
                        item_id=f"item_U{turn}",
                    )
                )
            self.speech_samples += int(loud.size)
            self.silence = len(samples) - int(loud[-1]) - 1
        else:
            self.silence += len(samples)
        if self.speech is not None and self.silence >= SILENCE_S * RATE:
            turn, self.speech = self.speech, None
            self.rec.heard[turn] += 1
            if self.speech_samples < TURN_SAMPLES:  # part of it went missing
                self.rec.cut[turn] = self.speech_samples / RATE
            self.tasks.append(asyncio.create_task(self._answer(turn)))

    async def _answer(self, turn: int) -> None:
        ws, user, resp, item = (
            self.ws,
            f"item_U{turn}",
            f"resp_{turn}_{self.no}",
            f"item_A{turn}_{self.no}",
        )
        await ws.send(event("input_audio_buffer.speech_stopped", audio_end_ms=0, item_id=user))
        await ws.send(event("input_audio_buffer.committed", previous_item_id=None, item_id=user))
        await ws.send(
            event(
                "conversation.item.input_audio_transcription.completed",
                item_id=user,
                content_index=0,
                transcript=f"Turn {turn}",
            )
        )
        await ws.send(
            event(
                "response.created",
                response={
                    "id": resp,
                    "object": "realtime.response",
                    "status": "in_progress",
                    "output": [],
                },
            )
        )
        ids = {"response_id": resp, "item_id": item, "output_index": 0, "content_index": 0}
        text = f"Answer to turn {turn}. Got it."
        for k, word in enumerate(text.split(" ")):
            await ws.send(
                event(
                    "response.audio_transcript.delta", **ids, delta=word if k == 0 else " " + word
                )
            )
        tone = (np.sin(np.arange(RATE // 10) * 0.05) * 3000).astype(np.int16).tobytes()
        for _ in range(4):  # 0.4 s of audio, sent faster than real time as the service does
            await ws.send(
                event("response.audio.delta", **ids, delta=base64.b64encode(tone).decode())
            )
            await asyncio.sleep(0.05)
        await ws.send(event("response.audio.done", **ids))
        await ws.send(event("response.audio_transcript.done", **ids, transcript=text))
        await ws.send(
            event(
                "response.done",
                response={
                    "id": resp,
                    "object": "realtime.response",
                    "status": "completed",
                    "output": [],
                },
            )
        )
        self.rec.answered[turn] += 1


def max_in_window(times: list[float], window: float = 60.0) -> int:
    return max((sum(1 for t in times if s <= t < s + window) for s in times), default=0)


async def sample_rss(pid: int, samples: list[tuple[float, int]], started: float) -> None:
    proc = psutil.Process(pid)
    while True:
        try:
            samples.append((time.monotonic() - started, proc.memory_info().rss))
        except psutil.Error:
            return
        await asyncio.sleep(2.0)


def median_between(samples: list[tuple[float, int]], a: float, b: float) -> float:
    values = [rss for t, rss in samples if a <= t < b]
    return statistics.median(values) if values else float("nan")


async def run(minutes: float, turn_every: float, session_s: float, folder: Path) -> dict[str, Any]:
    seconds = minutes * 60.0
    pcm, turns = input_pcm(seconds, turn_every)
    write_wav(folder / "in.wav", pcm)
    server = SoakServer(session_s)
    async with serve(server.handle, "127.0.0.1", 0, max_size=16 * 1024 * 1024) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        argv = [
            "-m", "pipelines.agent", "--endpoint", f"http://127.0.0.1:{port}",
            "--input-wav", str(folder / "in.wav"), "--output-wav", str(folder / "out.wav"),
            "--log-dir", str(folder / "logs"), "--idle-grace", "1.0",
            "--api-key", API_KEY, "--model", "gpt-realtime",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AI_FOUNDRY_"))}
        env["PYTHONPATH"] = str(ROOT)
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *argv, cwd=folder, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        rss: list[tuple[float, int]] = []
        sampler = asyncio.create_task(sample_rss(proc.pid, rss, started))
        try:
            _, err = await asyncio.wait_for(proc.communicate(), seconds + 120)
        except TimeoutError:
            proc.kill()
            _, err = await proc.communicate()
            server.rec.errors.append("the client did not end within 2 minutes of its input")
        sampler.cancel()
        elapsed = time.monotonic() - started
    log = next((folder / "logs").glob("session_*.log")).read_text(encoding="utf-8").splitlines()
    rec = server.rec
    said = Counter(line for line in log if line.startswith("User Input: Turn "))
    replies = Counter(
        line for line in log if line.startswith("Agent Audio Response: Answer to turn ")
    )
    expected = range(1, turns + 1)
    split = {t for t, conns in rec.turn_conns.items() if len(conns) > 1}
    last = elapsed - 60.0
    warm = median_between(rss, 60.0, 120.0)
    end = median_between(rss, last, elapsed + 1)
    return {
        "exit": proc.returncode,
        "stderr": err.decode("utf-8", "replace").strip(),
        "elapsed": elapsed,
        "turns": turns,
        "heard_once": sum(1 for n in expected if rec.heard[n] == 1 and n not in rec.cut),
        "cut": len(rec.cut),
        "answered_once": sum(1 for n in expected if rec.answered[n] == 1),
        "logged_once": sum(
            1
            for n in expected
            if said[f"User Input: Turn {n}"] == 1
            and replies[f"Agent Audio Response: Answer to turn {n}. Got it."] == 1
        ),
        "not_once": sorted(
            n for n in expected if rec.heard[n] != 1 or n in rec.cut or rec.answered[n] != 1
        ),
        "partial_lines": sum(1 for line in log if "(partial)" in line),
        "straddled": len(split | rec.held_turns),
        "split": len(split),
        "held": len(rec.held_turns),
        "connects": len(rec.connects),
        "max_per_minute": max_in_window(rec.connects),
        "expired_closes": rec.expired_closes,
        "replayed_max": max(rec.replayed, default=0),
        "replayed_last": rec.replayed[-1] if rec.replayed else 0,
        "rss_warm_mb": warm / 2**20,
        "rss_end_mb": end / 2**20,
        "rss_growth_mb": (end - warm) / 2**20,
        "rss_max_mb": max((r for _, r in rss), default=0) / 2**20,
        "errors": rec.errors,
    }


def report(r: dict[str, Any], args: argparse.Namespace) -> str:
    ok = r["heard_once"] == r["answered_once"] == r["logged_once"] == r["turns"]
    rows = [
        ("run time (s)", f"{r['elapsed']:.0f}"),
        ("user turns in the input", r["turns"]),
        ("heard whole (all its samples, committed by the server) exactly once", r["heard_once"]),
        ("heard with part of the turn missing", r["cut"]),
        ("answered (`response.done`) exactly once", r["answered_once"]),
        ("in the session log once (user line and answer line)", r["logged_once"]),
        (
            f"turns that straddled a reconnect (audio held in the gap: {r['held']}; "
            f"split over two connections: {r['split']})",
            r["straddled"],
        ),
        (
            "connects (most in any 60 s; the service allows 30)",
            f"{r['connects']} ({r['max_per_minute']})",
        ),
        ("sessions the server had to expire (not renewed in time)", r["expired_closes"]),
        (
            "history items replayed per reconnect (most; last)",
            f"{r['replayed_max']}; {r['replayed_last']}",
        ),
        (
            "client RSS, median of minute 2 -> median of the last minute (MB)",
            f"{r['rss_warm_mb']:.1f} -> {r['rss_end_mb']:.1f}",
        ),
        ("client RSS growth over the run (MB)", f"{r['rss_growth_mb']:+.2f}"),
        ("client RSS max (MB)", f"{r['rss_max_mb']:.1f}"),
        ("partial answer lines left in the session log", r["partial_lines"]),
        ("client exit code", r["exit"]),
    ]
    verdict = "yes" if ok else "NO: " + str(r["not_once"][:20])
    errors = f" Server errors: {r['errors']}." if r["errors"] else ""
    return "\n".join(
        [
            "# Soak: a long session through many reconnects",
            "",
            f"`python -m bench.soak --minutes {args.minutes:g}` on "
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{platform.machine()}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}. The default script (model mode, WAV in and out) "
            "against a scripted server on 127.0.0.1 that expires every session after "
            f"{args.session_s:g} s (the client renews halfway, at a quiet moment) and creates each "
            f"session 0.2-1.5 s after the upgrade; a user turn every {args.turn_every:g} s.",
            "",
            "| figure | value |",
            "|---|---:|",
            *(f"| {name} | {value} |" for name, value in rows),
            "",
            f"Every turn heard and answered exactly once: {verdict}.{errors}",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--minutes", type=float, default=15.0, help="length of the session (default 15)"
    )
    parser.add_argument(
        "--session-s", type=float, default=20.0, help="server session lifetime (default 20)"
    )
    parser.add_argument(
        "--turn-every", type=float, default=5.0, help="seconds between user turns (default 5)"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="results file (default bench/results/soak.md)"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; do not write the results file"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        result = asyncio.run(run(args.minutes, args.turn_every, args.session_s, Path(tmp)))
    text = report(result, args)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    print(text)
    if result["stderr"]:
        print(f"client stderr: {result['stderr'][-2000:]}")
    return 0 if result["exit"] == 0 and not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
