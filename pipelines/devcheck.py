"""``--check-devices``: is the microphone heard, does the speaker play? Before talking to an agent.

Records ``RECORD_S`` seconds from the chosen microphone, showing its level as it goes (one line
redrawn in place with ``rich`` on a terminal; nothing until the verdict otherwise), plays the
recording back on the chosen speaker, and says in one line whether the microphone heard
anything (its peak in dBFS). The PortAudio callbacks only append to, or copy from, a buffer.
"""

from __future__ import annotations

import math
import sys
import threading
import time

import numpy as np
import pyaudio
import soxr
from rich.console import Console
from rich.live import Live
from rich.text import Text

from processors.console import error, say
from processors.console_state import SILENCE_DB, dbfs
from transports.errors import TransportError
from transports.streams import Device

RECORD_S = 3.0
HEARD_DB = -50.0  # a peak above this: the microphone picks up something
PLAYBACK_MARGIN_S = 1.0


def peak_dbfs(samples: np.ndarray) -> float:
    """Peak level of int16 samples in dBFS (``SILENCE_DB`` for silence)."""
    peak = int(np.max(np.abs(samples.astype(np.int32)))) if samples.size else 0
    return max(SILENCE_DB, 20 * math.log10(peak / 32768.0)) if peak else SILENCE_DB


def _record(mic: Device, seconds: float, console: Console | None) -> np.ndarray:
    blocks: list[bytes] = []

    def callback(in_data, frame_count, time_info, status):  # PortAudio thread: append only
        blocks.append(in_data)
        return None, pyaudio.paContinue

    mic.open(callback, start=True)
    try:
        live = (
            Live(console=console, auto_refresh=False, transient=True)
            if console is not None
            else None
        )
        if live is not None:
            live.start()
        try:
            deadline, seen = time.monotonic() + seconds, 0
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(0.1, left))
                if live is not None:
                    fresh, seen = blocks[seen:], len(blocks)
                    level = dbfs(fresh)
                    cells = 0 if level <= -60 else math.ceil(20 * (level + 60) / 60)
                    live.update(
                        Text.assemble(
                            f"Recording from {mic.info.name}: ",
                            ("▮" * cells, "green"),
                            ("▯" * (20 - cells), "dim"),
                            f" {level:5.0f} dBFS  {left:3.1f} s",
                        ),
                        refresh=True,
                    )
        finally:
            if live is not None:
                live.stop()
    finally:
        mic.close()
    return np.frombuffer(b"".join(blocks), dtype=np.int16)


def _play(speaker: Device, samples: np.ndarray) -> None:
    data = samples.astype("<i2").tobytes()
    position = 0
    done = threading.Event()

    def callback(in_data, frame_count, time_info, status):  # PortAudio thread: copy only
        nonlocal position
        need = frame_count * 2
        chunk = data[position : position + need]
        position += need
        if len(chunk) < need:
            done.set()
            return chunk + bytes(need - len(chunk)), pyaudio.paContinue
        return chunk, pyaudio.paContinue

    speaker.open(callback, start=True)
    try:
        done.wait(len(samples) / speaker.rate + PLAYBACK_MARGIN_S)
        time.sleep(min(0.5, speaker.latency + 0.05))  # let the host play out what it holds
    finally:
        speaker.close()


def check_devices(input_device: str | None, output_device: str | None) -> int:
    """Run the check; print the verdict; 0 when the microphone heard something, 1 when not."""
    console = Console(highlight=False) if sys.stdout.isatty() else None
    try:
        mic = Device(input_device, "input", 24000, None)
        say(f"Recording {RECORD_S:.0f} s from '{mic.info.name}' (say something) ...")
        samples = _record(mic, RECORD_S, console)
        speaker = Device(output_device, "output", mic.rate, None)
        if speaker.rate != mic.rate:
            samples = soxr.resample(samples, mic.rate, speaker.rate).astype(np.int16)
        say(f"Playing it back on '{speaker.info.name}' ...")
        _play(speaker, samples)
    except TransportError as exc:
        error(str(exc))
        return 2
    peak = peak_dbfs(samples)
    shown = "-∞" if peak <= SILENCE_DB else f"{peak:.1f}"
    if peak > HEARD_DB:
        say(
            f"Microphone OK: it heard something (peak {shown} dBFS), "
            "and that was played back on the speaker."
        )
        return 0
    say(
        f"The microphone heard nothing (peak {shown} dBFS): "
        f"check that '{mic.info.name}' is not muted, "
        "or choose another with --input-device (see --list-devices)."
    )
    return 1
