"""Barge-in, first audio, CPU and underruns: our PyAudio transports vs pipecat's stock ones.

    python -m bench.transports.bargein [--trials 30] [--seconds 60]

One run starts a private PulseAudio (tests/audio_rig/pulse.py: pipe-sink speaker read back,
null-sink microphone) and measures, for each side on the same devices:

* barge-in: an agent response (2 s, sent as 100 ms deltas faster than real time, like Voice
  Live) is interrupted 0.3-0.8 s after its first audio was handed to the device. Stop time =
  InterruptionFrame reaching the transport -> last agent sample handed to the device (0 when
  nothing is handed after it), and -> last agent sample arriving at the speaker capture;
* first audio: first audio frame reaching the transport -> first agent sample handed to the
  device, and -> at the speaker capture;
* CPU of this process (getrusage) in a duplex session (mic running into the pipeline): the first
  half listening only, the second half also speaking (audio fed in real time);
* underruns while the loop is stalled by 50 ms CPU bursts every 200 ms with 3 s of audio
  queued: gaps (>= 1 ms of zeros) inside the agent audio at the speaker capture.

Writes bench/results/transports.md and bench/results/transports.png.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import time
from pathlib import Path

import numpy as np
from loguru import logger
from pipecat.frames.frames import InterruptionFrame, TTSAudioRawFrame, TTSStoppedFrame
from pipecat.transports.local.audio import LocalAudioTransport, LocalAudioTransportParams

from bench.transports.probes import OursProbe, StockProbe
from bench.transports.report import Results, write_report
from tests.audio_rig.harness import PipelineHarness
from tests.audio_rig.pulse import PulseRig, SpeakerCapture
from transports.pyaudio import PyAudioInputTransport

RATE = 24000
DELTA_MS = 100
RESULTS = Path(__file__).resolve().parents[1] / "results"


def agent_audio(seconds: float, seed: int) -> np.ndarray:
    """A never-zero signal, so every sample that reaches the speaker is visible."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (3000 + 2000 * np.sin(2 * np.pi * (300 + 10 * seed) * t)).astype(np.int16)


async def send_response(harness: PipelineHarness, item: str, audio: np.ndarray,
                        realtime: bool = False) -> None:
    step = RATE * DELTA_MS // 1000
    for i, start in enumerate(range(0, len(audio), step)):
        if realtime and i:
            await asyncio.sleep(DELTA_MS / 1000)
        await harness.send(TTSAudioRawFrame(audio[start:start + step].tobytes(), RATE, 1,
                                            context_id=item))


def speaker_runs(samples: np.ndarray, min_gap: int = RATE // 10) -> list[tuple[int, int]]:
    """(first, last) indices of non-zero runs separated by >= ``min_gap`` zeros."""
    nz = np.flatnonzero(samples)
    if not len(nz):
        return []
    breaks = np.flatnonzero(np.diff(nz) >= min_gap)
    starts = np.concatenate([[nz[0]], nz[breaks + 1]])
    ends = np.concatenate([nz[breaks], [nz[-1]]])
    return list(zip(starts.tolist(), ends.tolist()))


def gaps_inside(samples: np.ndarray, first: int, last: int, min_len: int = RATE // 1000) -> int:
    """Runs of >= ``min_len`` zeros between ``first`` and ``last``."""
    zero = samples[first:last + 1] == 0
    edges = np.diff(np.concatenate([[0], zero.astype(np.int8), [0]]))
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int((lengths >= min_len).sum())


FRAMES_PER_BUFFER: int | None = None  # --frames-per-buffer (ours); None = the default


def make_transports(name: str, with_input: bool = False) -> list:
    """[mic,] speaker of one side, on the default (PulseAudio) devices."""
    if name == "ours":
        speaker = OursProbe(frames_per_buffer=FRAMES_PER_BUFFER)
        return [PyAudioInputTransport(), speaker] if with_input else [speaker]
    stock = LocalAudioTransport(LocalAudioTransportParams(
        audio_in_enabled=with_input, audio_in_sample_rate=RATE, audio_out_enabled=True,
        audio_out_sample_rate=RATE, audio_out_end_silence_secs=0))
    speaker = StockProbe(stock._pyaudio, stock._params)  # the stock output, instrumented
    return [stock.input(), speaker] if with_input else [speaker]


async def bargein_trials(name: str, rig: PulseRig, trials: int, out: Results) -> None:
    [probe] = make_transports(name)
    rng = random.Random(7)
    speaker = SpeakerCapture(rig.fifo)
    speaker.start()
    async with PipelineHarness([probe]) as harness:
        await asyncio.sleep(0.5)  # the stream is up and idle, as between two answers
        for k in range(trials):
            item = f"{name}{k}"
            await send_response(harness, item, agent_audio(2.0, k))
            deadline = time.monotonic() + 2
            while probe.handoffs(item)[0] is None and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            await asyncio.sleep(rng.uniform(0.3, 0.8))
            await harness.send(InterruptionFrame())
            await asyncio.sleep(0.6)  # the tail reaches the speaker; silence between trials
        await harness.end()
    await asyncio.to_thread(speaker.wait_for_samples, len(speaker.samples()) + RATE // 5, 5)
    samples = speaker.stop()
    runs = speaker_runs(samples)
    items = [f"{name}{k}" for k in range(trials)]
    for k, item in enumerate(items):
        until = probe.first_in[items[k + 1]] if k + 1 < trials else float("inf")
        first, last = (probe.handoffs(item, until) if name == "stock" else probe.handoffs(item))
        t_in, t_int = probe.first_in[item], probe.interrupted_at[k]
        out.add(name, "first audio, hand-off (ms)", (first - t_in) * 1000)
        out.add(name, "barge-in stop, hand-off (ms)", max(0.0, last - t_int) * 1000)
        if len(runs) == trials:
            run_first, run_last = runs[k]
            out.add(name, "first audio at speaker (ms)",
                    (speaker.arrival_time(run_first) - t_in) * 1000)
            out.add(name, "barge-in stop at speaker (ms)",
                    (speaker.arrival_time(run_last) - t_int) * 1000)
    if len(runs) != trials:
        logger.warning(f"{name}: {len(runs)} speaker runs for {trials} trials; "
                       "speaker-side figures skipped")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def duplex_cpu(name: str, seconds: float, out: Results) -> None:
    async with PipelineHarness(make_transports(name, with_input=True)) as harness:
        await asyncio.sleep(1.0)  # warm-up
        half = seconds / 2
        c0, t0 = cpu_seconds(), time.monotonic()
        await asyncio.sleep(half)
        c1, t1 = cpu_seconds(), time.monotonic()
        await send_response(harness, f"{name}-talk", agent_audio(half, 1), realtime=True)
        c2, t2 = cpu_seconds(), time.monotonic()
        await harness.end()
    out.add(name, "CPU listening (% of a core)", 100 * (c1 - c0) / (t1 - t0))
    out.add(name, "CPU speaking+listening (% of a core)", 100 * (c2 - c1) / (t2 - t1))


async def stalled_loop_underruns(name: str, rig: PulseRig, out: Results) -> None:
    [probe] = make_transports(name)
    speaker = SpeakerCapture(rig.fifo)
    speaker.start()
    async with PipelineHarness([probe]) as harness:
        await asyncio.sleep(0.3)
        await send_response(harness, f"{name}-stall", agent_audio(3.0, 3))
        await harness.send(TTSStoppedFrame())
        end = time.monotonic() + 2.8
        while time.monotonic() < end:
            stall_until = time.perf_counter() + 0.05
            while time.perf_counter() < stall_until:  # a CPU-bound handler holding the loop
                pass
            await asyncio.sleep(0.15)
        await asyncio.sleep(0.8)
        await harness.end()
    await asyncio.to_thread(speaker.wait_for_samples, len(speaker.samples()) + RATE // 5, 5)
    samples = speaker.stop()
    runs = speaker_runs(samples)
    first, last = runs[0][0], runs[-1][1]
    out.add(name, "underruns, loop stalled (gaps at speaker)", gaps_inside(samples, first, last))
    out.add(name, "underruns, loop stalled (transport count)", probe.underruns)


async def main_async(args: argparse.Namespace) -> None:
    out = Results()
    with PulseRig() as rig:
        parts = args.only or ["bargein", "stall", "cpu"]
        for name in ("ours", "stock"):
            if "bargein" in parts:
                logger.info(f"{name}: barge-in trials")
                await bargein_trials(name, rig, args.trials, out)
            if "stall" in parts:
                logger.info(f"{name}: stalled loop")
                await stalled_loop_underruns(name, rig, out)
            if "cpu" in parts:
                logger.info(f"{name}: duplex CPU, {args.seconds} s")
                await duplex_cpu(name, args.seconds, out)
    command = f"python -m bench.transports.bargein --trials {args.trials} --seconds {args.seconds:g}"
    stem = "transports"
    if args.frames_per_buffer:
        command += f" --frames-per-buffer {args.frames_per_buffer}"
        stem += f"_fpb{args.frames_per_buffer}"
    print(write_report(out, RESULTS, command, stem))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="barge-in trials per transport")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="duplex session length per transport (half listening)")
    parser.add_argument("--verbose", action="store_true", help="keep pipecat's debug log")
    parser.add_argument("--frames-per-buffer", type=int, default=None,
                        help="our output period in frames (default: the transport's)")
    parser.add_argument("--only", choices=["bargein", "stall", "cpu"], action="append",
                        help="run only these parts (default: all)")
    args = parser.parse_args()
    global FRAMES_PER_BUFFER
    FRAMES_PER_BUFFER = args.frames_per_buffer
    if not args.verbose:
        logger.remove()
        logger.add(lambda m: print(m, end=""), level="INFO")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
