"""Input WAVs of every integer PCM width read as the same 16-bit samples."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from transports.wavfile import read_wav_mono


def write(path: Path, width: int, samples: np.ndarray, rate: int = 24000) -> Path:
    if width == 1:
        raw = ((samples >> 8) + 128).astype(np.uint8).tobytes()
    elif width == 3:
        raw = (samples.astype("<i4") << 8).view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raw = (samples.astype("<i4") << (8 * (width - 2))).astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)
    return path


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_integer_widths_read_as_int16(tmp_path: Path, width: int) -> None:
    samples = np.random.default_rng(width).integers(-32768, 32767, 2400).astype(np.int16)
    got = np.frombuffer(
        read_wav_mono(write(tmp_path / "in.wav", width, samples), 24000), dtype="<i2"
    )
    expected = (samples >> 8) << 8 if width == 1 else samples  # 8-bit keeps the top byte only
    assert np.array_equal(got, expected)
