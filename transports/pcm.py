"""int16 PCM, the one place audio is converted: resampled, downmixed and cut into chunks.

Used by the transports (device rate <-> pipeline rate, WAV files), the service (microphone audio
to the session's rate, in appends of a fixed size) and the recorder.

One :class:`PcmResampler` per audio stream: it keeps the filter state between chunks, so
consecutive 20 ms frames join without clicks (one-shot resampling per frame costs 6x more and has
edge effects). ``flush()`` returns the tail the filter still holds at the end of a stream;
``reset()`` forgets it (after an interruption the old tail must not be prepended to new audio).
:func:`downmix` averages interleaved channels (rounded); :func:`rms` measures a level.
:class:`Chunker` cuts a stream into fixed-size chunks and passes a piece that already is one chunk
through without a copy.
"""

from __future__ import annotations

import numpy as np
import soxr


class PcmResampler:
    """Converts int16 interleaved PCM from ``in_rate`` to ``out_rate``, chunk by chunk."""

    def __init__(self, in_rate: int, out_rate: int, channels: int = 1, quality: str = "HQ"):
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.channels = channels
        self._quality = quality
        self._stream: soxr.ResampleStream | None = None
        self._pending = False  # input was fed since the last flush/reset

    def resample(self, pcm: bytes) -> bytes:
        """Return the converted audio available so far for ``pcm`` (may be a little shorter)."""
        if self.in_rate == self.out_rate:
            return pcm
        return self.resample_samples(np.frombuffer(pcm, dtype=np.int16)).tobytes()

    def resample_samples(self, samples: np.ndarray) -> np.ndarray:
        """:meth:`resample` for an int16 array (interleaved when ``channels`` > 1)."""
        if self.in_rate == self.out_rate:
            return samples
        if self._stream is None:
            self._stream = soxr.ResampleStream(
                self.in_rate, self.out_rate, self.channels, dtype="int16", quality=self._quality
            )
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels)
        self._pending = True
        return self._stream.resample_chunk(samples).reshape(-1)

    def flush(self) -> bytes:
        """Return the tail still inside the filter and start a fresh stream."""
        if self._stream is None or not self._pending:
            return b""
        shape = (0, self.channels) if self.channels > 1 else (0,)
        tail = self._stream.resample_chunk(np.zeros(shape, dtype=np.int16), last=True).tobytes()
        self.reset()
        return tail

    def reset(self) -> None:
        """Forget the filter state (the next chunk starts a new stream)."""
        self._stream = None
        self._pending = False


def resample_all(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """A whole mono int16 signal at ``out_rate`` (one shot, very high quality: for files)."""
    if in_rate == out_rate:
        return samples
    return soxr.resample(samples, in_rate, out_rate, quality="VHQ")


def downmix_samples(samples: np.ndarray, channels: int) -> np.ndarray:
    """Mono int16 from interleaved ``channels``: the mean of each frame, rounded."""
    if channels <= 1:
        return samples
    usable = len(samples) - len(samples) % channels  # a cut-short last frame is dropped
    return samples[:usable].reshape(-1, channels).mean(axis=1).round().astype(np.int16)


def downmix(pcm: bytes, channels: int) -> bytes:
    """:func:`downmix_samples` for raw little-endian int16 bytes; mono passes through as is."""
    if channels <= 1:
        return pcm
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
    return downmix_samples(samples, channels).astype("<i2").tobytes()


def rms(pcm: bytes, channels: int = 1) -> float:
    """Root-mean-square level of int16 PCM's first channel (0 for nothing), in sample units."""
    samples = np.frombuffer(pcm, dtype=np.int16)[::channels].astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0


class Chunker:
    """Cuts a byte stream into chunks of exactly ``size`` bytes.

    A piece that arrives while nothing is pending and is exactly one chunk is returned as it is
    (the common case once the microphone period equals the append size): no copy.
    """

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError("chunk size must be positive")
        self.size = size
        self._pending = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held until the next chunk is full."""
        return len(self._pending)

    def feed(self, data: bytes) -> list[bytes]:
        """The whole chunks available after ``data``; the rest is kept for the next call."""
        if not self._pending and len(data) == self.size:
            return [data]
        self._pending += data
        size, count = self.size, len(self._pending) // self.size
        if not count:
            return []
        chunks = [bytes(self._pending[i * size : (i + 1) * size]) for i in range(count)]
        del self._pending[: count * size]
        return chunks

    def clear(self) -> None:
        """Drop what is pending."""
        self._pending.clear()
