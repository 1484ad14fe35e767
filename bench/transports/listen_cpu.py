"""Where the listening CPU goes: per-thread CPU and wake-ups of one microphone set-up.

    python -m bench.transports.listen_cpu [--seconds 15] [--reps 3] CONFIG [CONFIG ...]

Starts a private PulseAudio (tests/audio_rig/pulse.py), then runs each CONFIG in a fresh child
process, ``--reps`` times, interleaved. The child opens the microphone, waits 2 s, then measures
for ``--seconds``: CPU time of every thread from /proc/self/task/*/schedstat (nanoseconds, not
tick samples) and its wake-ups (voluntary context switches). CONFIG is ``kind[:key=value,...]``:

* ``bare`` — a PyAudio callback input stream alone; the callback returns at once;
* ``loop`` — the same, the callback hands each buffer to an asyncio loop (call_soon_threadsafe);
* ``ours`` — PyAudioInputTransport + PyAudioOutputTransport (idle) in a lean pipecat pipeline,
  as ``bench.transports.bargein`` measures listening;
* ``ourspush`` — ours, plus a processor after the input that only forwards frames;
* ``stock`` — pipecat's LocalAudioTransport input + output (idle), same pipeline.

Keys: ``fpb`` (mic frames per buffer, default 960 = 40 ms); ``bare``/``loop``: ``lat`` (the
suggestedLatency in seconds, passed to Pa_OpenStream through ctypes; PyAudio always passes the
device's defaultLowInputLatency), ``tstate=1`` (keep the callback thread's Python thread state);
``ours``: ``task=pipecat`` (pipecat's audio task, a wait_for per frame), ``pin=0`` (a thread
state per callback, as before), ``passthrough=0`` (frames made and queued, never pushed),
``drop=1`` (the loop gets each buffer and drops it); any: ``env`` (NAME=VALUE for the child,
``;``-separated). ``--keepalive-ms`` restarts the rig's mic keep-alive with another latency: it
sets how often the mic's null sink renders, hence libpulse's wake-ups in the client.

Example (the figures in bench/results/transports.md's notes):
    python -m bench.transports.listen_cpu --seconds 15 --reps 5 bare ours ours:task=pipecat,pin=0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RATE = 24000
WARMUP_S = 2.0


# ---------------------------------------------------------------- measuring (child side)

def thread_stats() -> dict[str, tuple[float, int]]:
    """{name/tid: (cpu ns, voluntary switches)} for every thread of this process."""
    stats: dict[str, tuple[float, int]] = {}
    for tid in os.listdir("/proc/self/task"):
        base = f"/proc/self/task/{tid}"
        try:
            name = Path(f"{base}/comm").read_text().strip()
            if int(tid) == os.getpid():
                name = "main"
            ns = int(Path(f"{base}/schedstat").read_text().split()[0])
            switches = 0
            for line in Path(f"{base}/status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    switches = int(line.split()[1])
        except OSError:
            continue
        stats[f"{name}/{tid}"] = (ns, switches)
    return stats


def diff(before: dict, after: dict, seconds: float) -> dict:
    threads = {}
    for key, (ns, sw) in after.items():
        ns0, sw0 = before.get(key, (0, 0))
        threads[key] = {"cpu_pct": 100 * (ns - ns0) / 1e9 / seconds,
                        "wakeups_per_s": (sw - sw0) / seconds}
    total_ns = sum(a[0] for a in after.values()) - sum(b[0] for b in before.values()
                                                       if True)
    return {"cpu_pct": sum(t["cpu_pct"] for t in threads.values()),
            "process_cpu_pct": 100 * total_ns / 1e9 / seconds, "threads": threads}


async def measure(seconds: float) -> dict:
    await asyncio.sleep(WARMUP_S)
    b, t0 = thread_stats(), time.monotonic()
    r0 = time.process_time()
    await asyncio.sleep(seconds)
    a, t1 = thread_stats(), time.monotonic()
    r1 = time.process_time()
    out = diff(b, a, t1 - t0)
    out["process_time_pct"] = 100 * (r1 - r0) / (t1 - t0)
    return out


def open_with_latency(pa, fpb: int, latency: float, callback):
    """Pa_OpenStream with an explicit suggestedLatency (PyAudio always passes defaultLow)."""
    import ctypes
    lib = ctypes.CDLL("libportaudio.so.2")

    class Params(ctypes.Structure):
        _fields_ = [("device", ctypes.c_int), ("channelCount", ctypes.c_int),
                    ("sampleFormat", ctypes.c_ulong), ("suggestedLatency", ctypes.c_double),
                    ("hostApiSpecificStreamInfo", ctypes.c_void_p)]

    CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong,
                          ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p)

    def cb(inp, out, frames, info, flags, user):
        callback(ctypes.string_at(inp, frames * 2), frames, None, flags)
        return 0

    keep = CB(cb)
    lib.Pa_Initialize()
    params = Params(lib.Pa_GetDefaultInputDevice(), 1, 0x8, latency, None)  # paInt16
    stream = ctypes.c_void_p()
    err = lib.Pa_OpenStream(ctypes.byref(stream), ctypes.byref(params), None,
                            ctypes.c_double(RATE), ctypes.c_ulong(fpb), ctypes.c_ulong(0),
                            keep, None)
    if err:
        raise OSError(f"Pa_OpenStream: {err}")
    lib.Pa_GetStreamInfo.restype = ctypes.POINTER(ctypes.c_double * 4)
    info = lib.Pa_GetStreamInfo(stream).contents
    lib.Pa_StartStream(stream)
    return (lib, stream, keep), info[1]


async def child(kind: str, opts: dict, seconds: float) -> dict:
    fpb = int(opts.get("fpb", RATE * 40 // 1000))
    extra: dict = {"config": f"{kind}:{opts}"}
    if kind in ("bare", "loop"):
        import pyaudio
        from transports.devices import quiet_stderr
        loop = asyncio.get_running_loop()
        counter = [0]

        def noop(data):
            counter[0] += 1

        pinned = [not opts.get("tstate")]

        def callback(in_data, frame_count, time_info, status):
            if not pinned[0]:
                import ctypes
                ctypes.pythonapi.PyGILState_Ensure()  # never released: the tstate stays
                pinned[0] = True
            if kind == "loop":
                loop.call_soon_threadsafe(noop, in_data)
            else:
                counter[0] += 1
            return None, pyaudio.paContinue

        with quiet_stderr():
            pa = pyaudio.PyAudio()
            if "lat" in opts:
                keep, latency = open_with_latency(pa, fpb, float(opts["lat"]), callback)
            else:
                stream = pa.open(format=pyaudio.paInt16, channels=1, rate=RATE, input=True,
                                 frames_per_buffer=fpb, stream_callback=callback)
                latency = stream.get_input_latency()
        extra["input_latency_ms"] = latency * 1000
        extra["default_low_input_latency_ms"] = \
            pa.get_default_input_device_info()["defaultLowInputLatency"] * 1000
        result = await measure(seconds)
        extra["callbacks_per_s"] = counter[0] / (seconds + WARMUP_S)
        return {**result, **extra}

    from pipecat.frames.frames import Frame
    from pipecat.processors.frame_processor import FrameProcessor
    from tests.audio_rig.harness import PipelineHarness
    if kind in ("ours", "ourspush"):
        from transports.pyaudio import PyAudioInputTransport, PyAudioOutputTransport
        if opts.get("task") == "pipecat":  # pipecat's handler (a wait_for per frame)
            from pipecat.transports.base_input import BaseInputTransport
            PyAudioInputTransport._audio_task_handler = BaseInputTransport._audio_task_handler
        if opts.get("pin") == "0":  # a thread state built and freed per callback
            import transports.pyaudio as ours_module
            ours_module._CallbackThreadState.on_callback = lambda self: None
        if opts.get("drop"):
            PyAudioInputTransport._on_audio = lambda self, data: None
        params = None
        if opts.get("passthrough") == "0":  # frames made and queued, never pushed
            from pipecat.transports.base_transport import TransportParams
            params = TransportParams(audio_in_passthrough=False)
        mic = PyAudioInputTransport(frames_per_buffer=fpb, params=params)
        procs = [mic, PyAudioOutputTransport()]
        if kind == "ourspush":
            class Forward(FrameProcessor):
                async def process_frame(self, frame: Frame, direction):
                    await super().process_frame(frame, direction)
                    await self.push_frame(frame, direction)
            procs.insert(1, Forward())
    elif kind == "stock":
        from pipecat.transports.local.audio import LocalAudioTransport, LocalAudioTransportParams
        stock = LocalAudioTransport(LocalAudioTransportParams(
            audio_in_enabled=True, audio_in_sample_rate=RATE, audio_out_enabled=True,
            audio_out_sample_rate=RATE, audio_out_end_silence_secs=0))
        procs = [stock.input(), stock.output()]
    else:
        raise SystemExit(f"unknown kind {kind}")
    async with PipelineHarness(procs) as harness:
        result = await measure(seconds)
        await harness.end()
    if kind in ("ours", "ourspush"):
        extra["input_latency_ms"] = mic._device.latency * 1000 if mic._device.stream else None
    return {**result, **extra}


# ---------------------------------------------------------------- driving (parent side)

def parse(config: str) -> tuple[str, dict]:
    kind, _, rest = config.partition(":")
    opts = dict(kv.split("=", 1) for kv in rest.split(",") if kv) if rest else {}
    return kind, opts


def run_child(config: str, seconds: float) -> dict:
    kind, opts = parse(config)
    env = dict(os.environ)
    for assignment in filter(None, opts.pop("env", "").split(";")):
        name, _, value = assignment.partition("=")
        env[name] = value
    cmd = [sys.executable, "-m", "bench.transports.listen_cpu", "--child", config,
           "--seconds", str(seconds)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{config} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def summarize(config: str, runs: list[dict]) -> str:
    cpus = sorted(r["cpu_pct"] for r in runs)
    threads: dict[str, list[tuple[float, float]]] = {}
    for r in runs:
        for key, t in r["threads"].items():
            name = key.rsplit("/", 1)[0]
            threads.setdefault(name, []).append((t["cpu_pct"], t["wakeups_per_s"]))
    parts = []
    for name, vals in sorted(threads.items(), key=lambda kv: -sum(v[0] for v in kv[1])):
        cpu = sum(v[0] for v in vals) / len(runs)
        wake = sum(v[1] for v in vals) / len(runs)
        if cpu >= 0.05 or wake >= 1:
            parts.append(f"{name} {cpu:.2f}% {wake:.0f}/s")
    lat = runs[0].get("input_latency_ms")
    lat_s = f" lat {lat:.1f} ms" if lat is not None else ""
    cbs = runs[0].get("callbacks_per_s")
    cb_s = f" cb {cbs:.1f}/s" if cbs else ""
    return (f"{config:45s} cpu {', '.join(f'{c:.2f}' for c in cpus)} "
            f"(median {cpus[len(cpus) // 2]:.2f}){lat_s}{cb_s}\n    " + " | ".join(parts))


def replace_keepalive(rig, latency_ms: int) -> None:
    """The rig's keep-alive (``pacat --latency-msec=10`` into the mic's null sink) sets how
    often the null sink renders, hence how often the mic's data is posted to clients."""
    rig._keepalive.terminate()
    rig._keepalive.wait(5)
    with open("/dev/zero", "rb") as zeros:
        rig._keepalive = subprocess.Popen(
            ["pacat", "--playback", "-d", "micsink", f"--latency-msec={latency_ms}", "--raw",
             "--format=s16le", f"--rate={rig.rate}", "--channels=1",
             "--client-name=mic-keepalive"],
            env={**os.environ, **rig.env}, stdin=zeros, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
    time.sleep(2.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", default=["bare", "ours", "stock"])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--keepalive-ms", type=int, default=None,
                        help="restart the rig's mic keep-alive with this latency (rig: 10)")
    parser.add_argument("--json", help="also write every run to this file")
    args = parser.parse_args()
    if args.child:
        from loguru import logger
        logger.remove()
        kind, opts = parse(args.child)
        opts.pop("env", None)
        print(json.dumps(asyncio.run(child(kind, opts, args.seconds))), flush=True)
        return
    from tests.audio_rig.pulse import PulseRig
    results: dict[str, list[dict]] = {c: [] for c in args.configs}
    with PulseRig() as rig:
        if args.keepalive_ms:
            replace_keepalive(rig, args.keepalive_ms)
        for _ in range(args.reps):
            for config in args.configs:
                results[config].append(run_child(config, args.seconds))
    for config, runs in results.items():
        print(summarize(config, runs))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
