"""The --record writer places each side's blocks on one timeline by their timestamps."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import numpy as np

from processors.recorder import LEFT, RATE, RIGHT, StereoRecording


def block(value: int, seconds: float, rate: int = RATE) -> bytes:
    return np.full(int(seconds * rate), value, dtype="<i2").tobytes()


def runs(channel: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, value) of each run of equal non-zero samples."""
    edges = np.flatnonzero(np.diff(channel.astype(np.int32))) + 1
    bounds = [0, *edges.tolist(), len(channel)]
    return [(a, b, int(channel[a])) for a, b in zip(bounds, bounds[1:], strict=False) if channel[a]]


def test_a_microphone_block_that_comes_late_still_lands_at_its_time(tmp_path: Path) -> None:
    """A block that reaches the recorder 0.8 s after it was captured (a stalled loop) is placed at
    its capture time, not after the silence already written (the writer kept only 0.5 s back)."""
    rec = StereoRecording(tmp_path / "conv.wav")
    rec.open()
    t0 = rec._t0
    time.sleep(max(0.0, t0 + 0.9 - time.monotonic()))
    rec.add(LEFT, t0 + 0.100, block(1000, 0.2))
    rec.close()
    with wave.open(str(tmp_path / "conv.wav"), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert runs(data[:, 0]) == [(2400, 7200, 1000)]


def test_blocks_land_at_their_time_jitter_is_joined_and_gaps_are_silent(tmp_path: Path) -> None:
    rec = StereoRecording(tmp_path / "conv.wav")
    rec.open()
    t0 = rec._t0
    rec.add(LEFT, t0 + 0.100, block(1000, 1.0))
    rec.add(LEFT, t0 + 1.130, block(1001, 0.5))  # 30 ms late (a busy loop): follows on seamlessly
    rec.add(RIGHT, t0 + 0.500, block(2000, 0.2))
    rec.add(RIGHT, t0 + 0.705, block(2001, 0.1))  # 5 ms jitter: joined
    rec.add(RIGHT, t0 + 2.000, block(2002, 0.1, 48000), 48000)  # the speaker restarted: a gap
    rec.close()
    assert rec.error is None
    with wave.open(str(tmp_path / "conv.wav"), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert runs(data[:, 0]) == [(2400, 26400, 1000), (26400, 38400, 1001)]
    assert runs(data[:, 1])[:2] == [(12000, 16800, 2000), (16800, 19200, 2001)]
    heard = np.flatnonzero(np.abs(data[19200:, 1].astype(np.int32)) > 100) + 19200  # from 48 kHz
    assert abs(heard[0] - 48000) <= 48 and abs((heard[-1] - heard[0]) - 2400) <= 48, (
        heard[0],
        heard[-1],
    )
