"""Speaker stream strategies on PulseAudio, bare PortAudio (no pipeline): what each leaves audible.

    python -m bench.transports.stream_settings [--trials 20]

For each strategy a callback stream plays a never-zero tone for 0.4 s, then silence for 0.4 s,
``--trials`` times (each strategy in its own PulseAudio client process, so
``PULSE_LATENCY_MSEC`` applies). Measured at the speaker FIFO: first audio (the tone switched on
-> first sample heard) and stop (switched off -> last sample heard), plus PortAudio's output
underflow count:

* ``running``: the stream runs all the time (10 ms or 5 ms periods; optionally
  ``PULSE_LATENCY_MSEC`` asks PulseAudio for a smaller buffer): what the host holds plays on;
* ``abort+restart``: the stream runs; at the switch-off it is aborted (dropping what PortAudio and
  PulseAudio hold) and started again at once;
* ``stopped when idle`` (what OutputDriver does): started when the tone is switched on, aborted
  when it is switched off.

Writes bench/results/stream_settings.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RATE = 24000
ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = [  # (label, mode, frames per buffer, PULSE_LATENCY_MSEC)
    ("running, 10 ms periods", "running", 240, None),
    ("running, 10 ms periods, PULSE_LATENCY_MSEC=10", "running", 240, "10"),
    ("running, 5 ms periods", "running", 120, None),
    ("running, 5 ms periods, PULSE_LATENCY_MSEC=5", "running", 120, "5"),
    ("abort+restart, 10 ms periods", "abort", 240, None),
    ("stopped when idle (ours), 10 ms periods", "idle", 240, None),
    ("stopped when idle, 20 ms periods", "idle", 480, None),
    ("stopped when idle, 40 ms periods", "idle", 960, None),
]


def client(mode: str, fpb: int, trials: int) -> dict:
    """In a PulseAudio client process: play the trials, return the switch times."""
    import pyaudio

    from transports.streams import abort_stream

    pa = pyaudio.PyAudio()
    state = {"on": False, "underflows": 0}
    tone = (3000 + 2000 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.int16)
    tone_bytes, silence = tone.tobytes(), bytes(2 * fpb)

    def callback(in_data, frames, time_info, status):
        if status & pyaudio.paOutputUnderflow:
            state["underflows"] += 1
        return (
            tone_bytes[: 2 * frames] if state["on"] else silence[: 2 * frames]
        ), pyaudio.paContinue

    stream = pa.open(
        format=pyaudio.paInt16,
        channels=1,
        rate=RATE,
        output=True,
        frames_per_buffer=fpb,
        stream_callback=callback,
        start=mode != "idle",
    )
    time.sleep(0.3)
    switches = []
    for _ in range(trials):
        on_at = time.monotonic()
        state["on"] = True
        if mode == "idle":
            stream.start_stream()
        time.sleep(0.4)
        off_at = time.monotonic()
        state["on"] = False
        if mode in ("abort", "idle"):
            abort_stream(stream)
            if mode == "abort":
                stream.start_stream()
        switches.append((on_at, off_at))
        time.sleep(0.4)
    stream.close()
    pa.terminate()
    return {"switches": switches, "underflows": state["underflows"]}


def measure(rig, label: str, mode: str, fpb: int, latency: str | None, trials: int) -> dict:
    from tests.audio_rig.pulse import SpeakerCapture

    env = {**os.environ, **rig.env, "PYTHONPATH": str(ROOT)}
    env.pop("PULSE_LATENCY_MSEC", None)
    if latency:
        env["PULSE_LATENCY_MSEC"] = latency
    capture = SpeakerCapture(rig.fifo)
    capture.start()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.transports.stream_settings",
            "--client",
            json.dumps([mode, fpb, trials]),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60 + trials,
    )
    capture.wait_for_samples(len(capture.samples()) + RATE // 2, 5)
    capture.stop()
    played = json.loads(result.stdout.splitlines()[-1])
    samples = capture.samples()
    times = np.concatenate(
        [at + np.arange(len(block) // 2) / RATE for at, block in capture.blocks]
    )[: len(samples)]
    first, stop = [], []
    for on_at, off_at in played["switches"]:
        heard = np.flatnonzero((times >= on_at) & (times < off_at + 0.35) & (samples != 0))
        if len(heard):
            first.append((times[heard[0]] - on_at) * 1000)
            stop.append((times[heard[-1]] - off_at) * 1000)
    return {"label": label, "first": first, "stop": stop, "underflows": played["underflows"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-write", action="store_true", help="print only; write nothing in bench/results/"
    )
    args = parser.parse_args()
    if args.client:
        mode, fpb, trials = json.loads(args.client)
        print(json.dumps(client(mode, fpb, trials)))
        return
    from tests.audio_rig.pulse import PulseRig

    rows = []
    with PulseRig() as rig:
        for label, mode, fpb, latency in STRATEGIES:
            rows.append(measure(rig, label, mode, fpb, latency, args.trials))
    lines = [
        "# Speaker stream strategies on PulseAudio (bare PortAudio, no pipeline)",
        "",
        f"Command: `python -m bench.transports.stream_settings --trials {args.trials}`; "
        "times at the speaker FIFO, p50 / max (fewer than 100 samples: no p99).",
        "",
        "| strategy | first audio (ms) | stop after switch-off (ms) | underflows |",
        "|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            f"{np.percentile(v, 50):.1f} / max {max(v):.1f} (n={len(v)})" if v else "n/a"
            for v in (row["first"], row["stop"])
        ]
        lines.append(f"| {row['label']} | {cells[0]} | {cells[1]} | {row['underflows']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        (ROOT / "bench" / "results" / "stream_settings.md").write_text(text)


if __name__ == "__main__":
    main()
