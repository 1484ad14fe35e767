"""The rig's speaker-to-microphone path: what the fake speaker plays reaches the fake microphone
about 40 ms later at -6 dB, and the delay does not drift (``module-loopback`` with
``adjust_time=0``): chirps 1 s apart keep the same sample offset between speaker and microphone
(under heavy load the loopback may underrun once, which shifts it by a block)."""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
from audio_rig.signals import align, chirp, write_wav

RATE = 24000
CHIRPS = 8


class MicCapture:
    """``parec`` from the fake microphone in a thread, with the arrival time of each block."""

    def __init__(self, env: dict[str, str]):
        self._proc = subprocess.Popen(
            [
                "parec",
                "-d",
                "mic",
                "--raw",
                "--format=s16le",
                f"--rate={RATE}",
                "--channels=1",
                "--latency-msec=10",
            ],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        self.blocks: list[tuple[float, bytes]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while block := os.read(self._proc.stdout.fileno(), 960):
            self.blocks.append((time.monotonic(), block))

    def stop(self) -> np.ndarray:
        self._proc.terminate()
        self._proc.wait(timeout=5)
        self._thread.join(timeout=5)
        return np.frombuffer(b"".join(b for _, b in self.blocks), dtype=np.int16)

    def arrival_time(self, index: int) -> float:
        start = 0
        for at, block in self.blocks:
            end = start + len(block) // 2
            if end > index:
                return at - (end - index) / RATE
            start = end
        raise IndexError(index)


def test_the_microphone_hears_the_speaker_late_and_quieter_without_drift(
    pulse, speaker, tmp_path: Path
) -> None:
    period = np.concatenate([np.zeros(RATE // 5, np.int16), chirp(), np.zeros(RATE, np.int16)])
    wav = write_wav(tmp_path / "chirps.wav", np.tile(period, CHIRPS))
    pulse.add_echo_path()
    try:
        mic = MicCapture(pulse.env)
        subprocess.run(
            ["paplay", "-d", "spk", str(wav)],
            env={**os.environ, **pulse.env},
            stdin=subprocess.DEVNULL,
            check=True,
            timeout=60,
        )
        assert speaker.wait_for_samples(len(period) * CHIRPS, 10)
        heard = mic.stop()
    finally:
        pulse.remove_echo_path()
    played = speaker.samples()
    marker = chirp()
    offsets, delays_ms, gains = [], [], []
    for k in range(1, CHIRPS):  # each chirp, found in a window around where it must be
        lo = (k - 1) * len(period)
        at_spk, corr_spk = align(marker, played[lo : lo + 2 * len(period)])
        at_mic, corr_mic = align(marker, heard[lo : lo + 3 * len(period)])
        assert corr_spk > 0.99 and corr_mic > 0.9, (k, corr_spk, corr_mic)
        s, m = lo + at_spk, lo + at_mic
        offsets.append(m - s)
        delays_ms.append((mic.arrival_time(m) - speaker.arrival_time(s)) * 1000)
        seg = heard[m : m + len(marker)].astype(np.float64)
        gains.append(np.linalg.norm(seg) / np.linalg.norm(played[s : s + len(marker)]))
    print(
        f"echo path: delay {np.median(delays_ms):.1f} ms (by arrival times), gain "
        f"{20 * np.log10(np.median(gains)):.1f} dB, sample offsets {sorted(set(offsets))}"
    )
    # no drift: consecutive chirps keep their offset; a loaded machine may make the loopback
    # underrun once, which shifts the path by a block (printed above), never more often
    jumps = [b - a for a, b in itertools.pairwise(offsets) if abs(b - a) > 2]
    assert len(jumps) <= 1, f"the echo path drifted: {offsets}, {delays_ms}"
    assert 0.4 < np.median(gains) < 0.6, gains
    # the arrival times carry the readers' scheduling jitter: the median is what is measured
    assert 15 < np.median(delays_ms) < 90, delays_ms
