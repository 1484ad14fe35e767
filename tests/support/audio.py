"""Helpers to make WAV inputs and to find known audio in a recorded WAV, sample-exactly."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 24000


def write_wav(path: Path, pcm: bytes, rate: int = RATE, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), w.getframerate()


def find(haystack: np.ndarray, needle: bytes, probe: int = 480) -> int:
    """Sample index where ``needle`` starts in ``haystack`` (its first ``probe`` samples), or -1."""
    ref = np.frombuffer(needle, dtype=np.int16)[:probe]
    data = haystack.tobytes()
    pos = data.find(ref.tobytes())
    while pos != -1 and pos % 2:
        pos = data.find(ref.tobytes(), pos + 1)
    return -1 if pos == -1 else pos // 2


def matching_run(haystack: np.ndarray, start: int, needle: bytes) -> int:
    """How many samples of ``needle`` appear in order at ``start`` before the first mismatch."""
    ref = np.frombuffer(needle, dtype=np.int16)
    got = haystack[start : start + len(ref)]
    diff = np.nonzero(got != ref[: len(got)])[0]
    return int(diff[0]) if len(diff) else len(got)


def contains_any_chunk(
    haystack: np.ndarray, pcm: bytes, chunk_samples: int = 2400, probe: int = 240
) -> bool:
    """Whether the start of any ``chunk_samples`` chunk of ``pcm`` appears in ``haystack``."""
    ref = np.frombuffer(pcm, dtype=np.int16)
    for offset in range(0, len(ref), chunk_samples):
        if find(haystack, ref[offset : offset + probe].tobytes(), probe) != -1:
            return True
    return False


def last_heard(
    haystack: np.ndarray, pcm: bytes, chunk_samples: int = 2400, probe: int = 240
) -> tuple[int, int]:
    """Where the last audible sample of ``pcm`` sits in ``haystack``, and how many of its samples
    were heard, following it chunk by chunk (a device may insert silence between chunks that
    arrived just in time). Returns (-1, 0) when none of it was heard."""
    ref = np.frombuffer(pcm, dtype=np.int16)
    end, heard = -1, 0
    for offset in range(0, len(ref), chunk_samples):
        piece = ref[offset : offset + chunk_samples]
        at = find(haystack, piece[:probe].tobytes(), min(probe, len(piece)))
        if at < 0:
            continue
        run = matching_run(haystack, at, piece.tobytes())
        heard += run
        end = max(end, at + run - 1)
    return end, heard
