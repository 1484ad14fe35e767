"""Test signals and WAV helpers (int16 mono numpy arrays)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def tone(
    freq: float = 440.0, seconds: float = 1.0, rate: int = 24000, amp: float = 0.4, offset: int = 0
) -> np.ndarray:
    """A sine (``offset`` shifts it so that no sample is zero, which makes gaps countable)."""
    t = np.arange(int(seconds * rate)) / rate
    return (offset + amp * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def chirp(seconds: float = 0.05, rate: int = 24000) -> np.ndarray:
    """A broadband marker that aligns unambiguously."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * (300 * t + (6000 - 300) / (2 * seconds) * t * t)
    return (0.5 * 32767 * np.sin(phase)).astype(np.int16)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = 24000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype=np.int16).tobytes())
    return Path(path)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return data, w.getframerate()


def align(ref: np.ndarray, got: np.ndarray) -> tuple[int, float]:
    """(lag, normalised correlation) of ``ref`` inside the longer ``got``."""
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    nfft = 1 << (len(got) + len(ref) - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(got64, nfft) * np.conj(np.fft.rfft(ref64, nfft)), nfft)
    lag = int(np.argmax(corr[: len(got)]))
    seg = got64[lag : lag + len(ref)]
    seg = np.pad(seg, (0, len(ref) - len(seg)))
    denom = np.linalg.norm(ref64) * np.linalg.norm(seg) or 1.0
    return lag, float(np.dot(ref64, seg) / denom)
