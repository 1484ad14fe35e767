"""What a process boundary costs: ``in_own_process(passthrough)`` against an in-process hop.

``python -m bench.multiprocess [--frames 600] [--interruptions 300] [--rounds 5]`` builds, in one
run,

    Source -> [nothing | Passthrough | in_own_process(Passthrough)] -> Sink

and sends 40 ms audio frames (``TTSAudioRawFrame``, 24 kHz mono, 1920 bytes) and then
``InterruptionFrame``\\ s one at a time (the next leaves once the previous reached the sink, as
real-time audio does: nothing is batched). It reports, per frame, the CPU of every process
involved (the pipeline process from ``getrusage``, the child from psutil) and the latency from the
source's push to the sink; the cost of the hop is the difference to the pipeline with nothing in
the middle. Also the codec choice: the hand-packed audio encoding against pickling the frame.
Writes ``bench/results/multiprocess.md``. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loguru import logger  # noqa: E402

logger.remove()

import psutil  # noqa: E402
from pipecat.frames.frames import Frame, InterruptionFrame, StartFrame, TTSAudioRawFrame  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from pipelines.frame_wire import decode_frame, encode_frame  # noqa: E402
from pipelines.multiprocess import OwnProcessProcessor, in_own_process  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "multiprocess.md"
AUDIO = os.urandom(1920)  # 40 ms at 24 kHz, mono, 16-bit


class Passthrough(FrameProcessor):
    """Pushes every frame on."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class Sink(FrameProcessor):
    """Notes when each frame arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()
        self.at = 0.0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, StartFrame) and direction == FrameDirection.DOWNSTREAM:
            self.at = time.perf_counter()
            self.arrived.set()
        await self.push_frame(frame, direction)


def cpu_s(child: psutil.Process | None) -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    own = usage.ru_utime + usage.ru_stime
    if child is not None:
        times = child.cpu_times()
        own += times.user + times.system
    return own


async def measure(
    middle: list[FrameProcessor], make: Callable[[], Frame], n: int
) -> tuple[float, list[float]]:
    """CPU µs per frame (all processes) and latencies (ms) for ``n`` frames sent one at a time."""
    source, sink = Passthrough(), Sink()
    worker = PipelineWorker(
        Pipeline([source, *middle, sink]),
        params=PipelineParams(audio_out_sample_rate=24000),
        enable_rtvi=False,
        enable_turn_tracking=False,
        idle_timeout_secs=None,
        cancel_on_idle_timeout=False,
    )
    started = asyncio.Event()
    worker.add_event_handler("on_pipeline_started", lambda *_: started.set())
    child = None
    for p in middle:
        if isinstance(p, OwnProcessProcessor):
            await p.wait_ready()
            child = psutil.Process(p.pid)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    await started.wait()
    for _ in range(20):  # warm up
        sink.arrived.clear()
        await source.push_frame(make())
        await sink.arrived.wait()
    latencies = []
    cpu0 = cpu_s(child)
    for _ in range(n):
        sink.arrived.clear()
        frame = make()
        sent = time.perf_counter()
        await source.push_frame(frame)
        await sink.arrived.wait()
        latencies.append((sink.at - sent) * 1000)
    cpu = (cpu_s(child) - cpu0) / n * 1e6
    await worker.cancel()
    await run
    return cpu, latencies


def codec_us(n: int = 20000) -> tuple[float, float]:
    """µs to encode + decode one 40 ms audio frame: pickled vs hand-packed."""
    frame = TTSAudioRawFrame(AUDIO, 24000, 1)
    t = time.perf_counter()
    for _ in range(n):
        pickle.loads(pickle.dumps(frame, protocol=5))
    pickled = (time.perf_counter() - t) / n * 1e6
    t = time.perf_counter()
    for _ in range(n):
        decode_frame(*encode_frame(frame))
    packed = (time.perf_counter() - t) / n * 1e6
    return pickled, packed


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def run(frames: int, interruptions: int, rounds: int = 5) -> str:
    kinds = {
        "40 ms audio frame": (lambda: TTSAudioRawFrame(AUDIO, 24000, 1), frames),
        "InterruptionFrame": (InterruptionFrame, interruptions),
    }
    rows = []
    for label, (make, n) in kinds.items():
        cpu: dict[str, list[float]] = {"bare": [], "hop": [], "own": []}
        lat: dict[str, list[float]] = {"hop": [], "own": []}
        per_round = max(1, n // rounds)
        for _ in range(rounds):  # interleaved: a load spike on this shared VM hits all three
            cpu["bare"].append((await measure([], make, per_round))[0])
            c, lats = await measure([Passthrough()], make, per_round)
            cpu["hop"].append(c)
            lat["hop"] += lats
            c, lats = await measure([in_own_process(Passthrough)], make, per_round)
            cpu["own"].append(c)
            lat["own"] += lats
        bare = statistics.median(cpu["bare"])
        hop = statistics.median(cpu["hop"]) - bare
        crossing = statistics.median(cpu["own"]) - bare
        rows.append((label, n, bare, hop, crossing, lat["hop"], lat["own"]))
    pickled, packed = codec_us()
    lines = [
        "# Crossing a process boundary: `in_own_process(passthrough)` vs an in-process hop",
        "",
        f"`python -m bench.multiprocess --frames {frames} --interruptions {interruptions}`; "
        f"{platform.python_version()}, {os.cpu_count()} CPUs (shared), "
        f"{time.strftime('%Y-%m-%d %H:%M')}.",
        "One frame at a time (the next leaves when the previous reached the sink). CPU: every "
        "process involved (pipeline + child), minus the same pipeline with nothing in the middle; "
        f"median of {rounds} interleaved rounds.",
        "",
        "| frame | n | CPU/frame, no hop (µs) | in-process hop (µs) | own process (µs) | own / hop "
        "| latency in-process p50 / p99 (ms) | latency own process p50 / p99 (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, n, bare, hop, crossing, lat_in, lat_own in rows:
        lines.append(
            f"| {label} | {n} | {bare:.0f} | {hop:.1f} | {crossing:.1f} | {crossing / hop:.1f}x "
            f"| {pct(lat_in, 50):.3f} / {pct(lat_in, 99):.3f} "
            f"| {pct(lat_own, 50):.3f} / {pct(lat_own, 99):.3f} |"
        )
    lines += [
        "",
        f"Audio frame codec, encode + decode: pickle protocol 5 {pickled:.1f} µs, hand-packed "
        f"{packed:.1f} µs ({pickled / packed:.1f}x less).",
        "",
        "Goals: interruption crossing ≤ 1 ms p99; CPU per audio frame ≤ 2x an in-process hop.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.multiprocess", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--interruptions", type=int, default=300)
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds, each 1/rounds of the frames"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; write nothing in bench/results/"
    )
    args = parser.parse_args(argv)
    text = asyncio.run(run(args.frames, args.interruptions, args.rounds))
    print(text)
    if not args.no_write:
        RESULTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
