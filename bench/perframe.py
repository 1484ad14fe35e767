"""CPU per frame over a real WebSocket, hot and paced: ours vs pipecat's AzureVoiceLiveLLMService.

``python -m bench.perframe [--rounds 3] [--frames 150] [--deltas 120]``

Both services run as shipped, in one process, trials alternating (ours, stock, stock, ours...),
each trial on a fresh service and a fresh connection to a scripted server on 127.0.0.1 in a
process of its own (websockets' server with its defaults: it accepts permessage-deflate when a
client offers it, as pipecat's client does; ours offers none). Logging as the default script's
``main()`` sets it: the redacted console (to /dev/null here, so the terminal does not count) and
this session's technical log file at INFO, the trials inside the session's log context.

* mic: ``InputAudioRawFrame`` of 40 ms (24 kHz mono, the session's rate) -> ``process_frame`` ->
  ``input_audio_buffer.append`` on the socket; the same 40 ms period on both sides (ours sends one
  append per frame, pipecat one per frame).
* delta: ``response.audio.delta`` of 100 ms (the service's period) from the socket -> the
  ``TTSAudioRawFrame`` pushed downstream (a collector stands in for the next processor).

Hot: frames back to back (one ``sleep(0)`` per mic frame, as a pipeline yields; the server sends
every delta at once); CPU per frame = the trial's process CPU / frames. Paced: one mic frame every
40 ms (``asyncio.sleep`` to the next tick, as a transport's clock does) / the server sends one
delta every 100 ms; CPU per frame = the process CPU from one frame to the next, so the wake-ups
are in it. "wake-up alone" is the paced mic loop with no service: the floor any paced pipeline
pays per frame on this machine. p99 is given from >= 100 samples, else the max.

Writes ``bench/results/perframe.md`` and ``perframe.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from pipecat.frames.frames import InputAudioRawFrame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.azure.voice_live.llm import AzureVoiceLiveLLMService
from websockets.asyncio.client import connect as websocket_connect

from bench.hotpath import Collector, build_stream, mic_frames  # noqa: I001 - sets loguru quiet
from processors.logsetup import (
    add_technical_log,
    configure_console,
    new_session_key,
    remove_technical_log,
)
from processors.voicelive.connection import ConnectionSettings, Credentials, VoiceLiveConnection
from processors.voicelive.endpoint import Endpoint, Model
from processors.voicelive.service import VoiceLiveAgentService
from processors.voicelive.session_config import SessionConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RATE = 24000
MIC_S, DELTA_S = 0.040, 0.100
MIN_P99 = 100
DOWN = FrameDirection.DOWNSTREAM
KEY = "bench-key-0123456789"

# -- the scripted server (its own process) -------------------------------------------------------


async def _serve(port_file: Path, n_deltas: int) -> None:
    from websockets.asyncio.server import serve

    stream = build_stream(n_audio=n_deltas, text_every=10**9)

    async def handler(ws: Any) -> None:
        for message in stream.prelude:
            await ws.send(message)
        async for message in ws:
            if '"bench.play"' not in message:
                continue  # appends and session.update: read and dropped
            pace = json.loads(message)["pace_s"]
            start = time.monotonic()
            for event in stream.timed:
                if pace and '"response.audio.delta"' in event:
                    start += pace
                    await asyncio.sleep(max(0.0, start - time.monotonic()))
                await ws.send(event)
            await ws.close()
            return

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port_file.write_text(str(server.sockets[0].getsockname()[1]))
        await stop.wait()


# -- the two sides -------------------------------------------------------------------------------


class Stamps(Collector):
    """Counts frames; notes the process CPU at every audio frame pushed."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu: list[float] = []

    async def push(self, frame: Any, direction: FrameDirection = DOWN) -> None:
        if type(frame) is TTSAudioRawFrame:
            self.cpu.append(time.process_time())
        await super().push(frame, direction)


class Ours:
    name = "ours"

    async def open(self, port: int) -> None:
        settings = ConnectionSettings(
            endpoint=Endpoint.parse(f"http://127.0.0.1:{port}"),
            target=Model("bench"),
            api_version="2026-07-15",
            credentials=Credentials(api_key=KEY),
        )
        self.svc = svc = VoiceLiveAgentService(settings, SessionConfig(input_sample_rate=RATE))
        self.conn = VoiceLiveConnection(settings)
        await self.conn.open()
        svc._connection = self.conn
        svc._closing = True  # the server's close then ends the receive loop quietly
        self.frames = Stamps()
        svc.push_frame = self.frames.push  # type: ignore[method-assign]
        svc.broadcast_frame = self.frames.broadcast  # type: ignore[method-assign]
        self.receiving = asyncio.create_task(svc._receive_loop(self.conn))
        await _until(lambda: svc.session.ready)

    async def play(self, pace: float) -> None:
        self.conn.send({"type": "bench.play", "pace_s": pace})

    async def close(self) -> None:
        await self.conn.close(flush_s=0.0)
        await asyncio.wait_for(self.receiving, 5)


class Stock:
    name = "pipecat"

    async def open(self, port: int) -> None:
        self.svc = svc = AzureVoiceLiveLLMService(endpoint=f"http://127.0.0.1:{port}", api_key=KEY)
        svc._ensure_audio_config(RATE, RATE)  # what setup() does with the pipeline's rates
        # what its _connect() does: websockets' connect with its defaults (deflate offered)
        svc._websocket = await websocket_connect(
            uri=f"ws://127.0.0.1:{port}/?api-version=x&model=bench",
            additional_headers={"api-key": KEY},
        )
        self.frames = Stamps()
        svc.push_frame = self.frames.push  # type: ignore[method-assign]
        svc.broadcast_frame = self.frames.broadcast  # type: ignore[method-assign]
        self.receiving = asyncio.create_task(svc._receive_task_handler())
        await _until(lambda: svc._api_session_ready)

    async def play(self, pace: float) -> None:
        await self.svc._websocket.send(json.dumps({"type": "bench.play", "pace_s": pace}))

    async def close(self) -> None:
        await self.svc._websocket.close()
        await asyncio.wait_for(self.receiving, 5)


async def _until(ready: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError("the session did not become ready")
        await asyncio.sleep(0.01)


# -- trials --------------------------------------------------------------------------------------


async def mic_trial(side: Any, frames: list[InputAudioRawFrame], paced: bool) -> list[float]:
    """Per-frame CPU samples (paced) or [mean per frame] (hot)."""
    frame_in = side.svc.process_frame if side is not None else None
    samples: list[float] = []
    await asyncio.sleep(0.05)  # the session.update went out
    c0 = last = time.process_time()
    tick = time.monotonic()
    for f in frames:
        if frame_in is not None:
            await frame_in(f, DOWN)
        if paced:
            tick += MIC_S
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            now = time.process_time()
            samples.append(now - last)
            last = now
        else:
            await asyncio.sleep(0)
    if not paced:
        await asyncio.sleep(0)  # our sender task drains what it holds
        samples = [(time.process_time() - c0) / len(frames)]
    return samples


async def delta_trial(side: Any, n: int, paced: bool) -> list[float]:
    c0 = time.process_time()
    await side.play(DELTA_S if paced else 0.0)
    await asyncio.wait_for(side.receiving, n * DELTA_S + 30)
    cpu = side.frames.cpu
    if len(cpu) != n:
        raise RuntimeError(f"{side.name}: {len(cpu)} of {n} audio frames")
    if paced:
        return list(np.diff(cpu))
    return [(cpu[-1] - c0) / n]


async def run(args: argparse.Namespace, port: int) -> dict[str, list[float]]:
    frames = [
        InputAudioRawFrame(audio=f.audio, sample_rate=RATE, num_channels=1)
        for f in _mic_40ms(args.frames)
    ]
    out: dict[str, list[float]] = {}
    kinds = [Ours, Stock]
    for r in range(args.rounds):
        for test in ("mic hot", "mic paced", "delta hot", "delta paced"):
            for kind in kinds if r % 2 == 0 else kinds[::-1]:
                side = kind()
                await side.open(port)
                if test.startswith("mic"):
                    samples = await mic_trial(side, frames, paced=test.endswith("paced"))
                    await side.close()
                else:
                    samples = await delta_trial(side, args.deltas, paced=test.endswith("paced"))
                    await side.close()
                out.setdefault(f"{test}|{side.name}", []).extend(samples)
        out.setdefault("mic paced|wake-up alone", []).extend(
            await mic_trial(None, frames, paced=True)
        )
    return out


def _mic_40ms(n: int) -> list[InputAudioRawFrame]:
    twenty = mic_frames(RATE, 2 * n)
    return [
        InputAudioRawFrame(
            audio=twenty[2 * i].audio + twenty[2 * i + 1].audio, sample_rate=RATE, num_channels=1
        )
        for i in range(n)
    ]


# -- report --------------------------------------------------------------------------------------


def stats(samples: list[float]) -> dict[str, float | int | str]:
    us = np.asarray(samples) * 1e6
    tail, kind = (
        (float(np.percentile(us, 99)), "p99") if len(us) >= MIN_P99 else (float(us.max()), "max")
    )
    return {
        "n": len(us),
        "mean_us": float(us.mean()),
        "p50_us": float(np.median(us)),
        "tail": kind,
        "tail_us": tail,
    }


def report(
    figures: dict[str, dict[str, Any]], args: argparse.Namespace, load: tuple[float, ...]
) -> str:
    def cell(key: str, paced: bool) -> str:
        s = figures.get(key)
        if s is None:
            return "-"
        if not paced:
            return f"{s['mean_us']:.0f} (n={s['n']} trials)"
        return (
            f"{s['mean_us']:.0f} / {s['p50_us']:.0f} / {s['tail']} {s['tail_us']:.0f} (n={s['n']})"
        )

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = f"python -m bench.perframe --rounds {args.rounds} --frames {args.frames}"
    lines = [
        "# CPU per frame over a real WebSocket: ours vs pipecat's AzureVoiceLiveLLMService",
        "",
        f"`{command} --deltas {args.deltas}`; {when}; {os.cpu_count()} cores, load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (shared VM: trials alternate, read the "
        "ratios). Mic frames of 40 ms on both sides; audio deltas of 100 ms on both sides. "
        "Logging as the default script sets it (console sink + this session's technical log at "
        "INFO). Hot: µs CPU per frame, mean over trials. Paced: µs CPU per frame including the "
        "wake-ups, mean / p50 / p99 (max when < 100 samples).",
        "",
        "| path | ours | pipecat stock | pipecat / ours |",
        "|---|--:|--:|--:|",
    ]
    for test, label in (
        ("mic hot", "40 ms mic frame -> append, hot"),
        ("mic paced", "40 ms mic frame -> append, paced"),
        ("delta hot", "100 ms delta -> frame, hot"),
        ("delta paced", "100 ms delta -> frame, paced"),
    ):
        paced = test.endswith("paced")
        o, p = figures.get(f"{test}|ours"), figures.get(f"{test}|pipecat")
        ratio = f"{p['mean_us'] / o['mean_us']:.2f}x" if o and p else "-"
        ours, stock = cell(f"{test}|ours", paced), cell(f"{test}|pipecat", paced)
        lines.append(f"| {label} | {ours} | {stock} | {ratio} |")
    alone = cell("mic paced|wake-up alone", True)
    lines.append(f"| one paced wake-up alone (40 ms sleep, no service) | {alone} | | |")
    wake = figures.get("mic paced|wake-up alone")
    if wake:
        lines += [
            "",
            "Beyond the bare wake-up (paced mean minus the wake-up alone): "
            + ", ".join(
                f"{k.split('|')[1]} {figures[k]['mean_us'] - wake['mean_us']:.0f} µs"
                for k in ("mic paced|ours", "mic paced|pipecat")
                if k in figures
            )
            + " per mic frame.",
        ]
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="bench-perframe-") as tmp_name:
        tmp = Path(tmp_name)
        port_file = tmp / "port"
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.perframe", "--serve", str(port_file), str(args.deltas)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            await _until(lambda: port_file.exists() and port_file.read_text(), 30)
            devnull = open(os.devnull, "w")
            configure_console(stream=devnull)  # as main() does (the terminal is not measured)
            session = new_session_key()
            handle = add_technical_log(tmp / "voicelive.log", level="INFO", session=session)
            try:
                with logger.contextualize(session=session):
                    return await run(args, int(port_file.read_text()))
            finally:
                remove_technical_log(handle)
                devnull.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.perframe", description=__doc__.splitlines()[0]
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--frames", type=int, default=150, help="mic frames per trial (40 ms each)")
    p.add_argument("--deltas", type=int, default=120, help="audio deltas per trial (100 ms each)")
    p.add_argument(
        "--no-write", action="store_true", help="print only; write nothing in bench/results/"
    )
    p.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(Path(args.serve[0]), int(args.serve[1])))
        return 0
    samples = asyncio.run(main_async(args))
    figures = {k: stats(v) for k, v in samples.items()}
    text = report(figures, args, os.getloadavg())
    print(text)
    if args.no_write:
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "perframe.md").write_text(text)
    doc = {
        "bench": "perframe",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": os.getloadavg(),
        "figures": figures,
    }
    (RESULTS / "perframe.json").write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
