"""Streaming int16 PCM rate conversion for the transports (a thin wrapper over soxr.ResampleStream).

One :class:`PcmResampler` per audio stream: it keeps the filter state between chunks, so
consecutive 20 ms frames join without clicks (one-shot resampling per frame costs 6x more and has
edge effects). ``flush()`` returns the tail the filter still holds at the end of a stream;
``reset()`` forgets it (after an interruption the old tail must not be prepended to new audio).
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
        if self._stream is None:
            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, self.channels,
                                               dtype="int16", quality=self._quality)
        samples = np.frombuffer(pcm, dtype=np.int16)
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels)
        self._pending = True
        return self._stream.resample_chunk(samples).tobytes()

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
