"""The local server's own record of the audio it sent, laid on the input audio's timeline: the
echo reference for ``server_echo_cancellation`` without a client reference.

The real service assumes the client plays each response's audio as soon as it arrives; so does
this record. A chunk sent while earlier ones are still "playing" follows them; a chunk sent after
they ran out starts where the input stands when it is sent (in input samples received). What the
client's playback buffer and devices really add (tens to hundreds of ms) is unknown here: the
echo canceller finds it as a bulk delay. When a response is cancelled or truncated the client
stops playing, so the record ends there too.
"""

from __future__ import annotations

import numpy as np
import soxr


class PlayedRecord:
    """Sent audio (any rate) -> reference samples at the input's rate and position."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._start = 0  # input sample index of self._samples[0]
        self._samples = np.zeros(0, np.float64)

    @property
    def end(self) -> int:
        """Input sample index where what was sent so far stops playing."""
        return self._start + len(self._samples)

    def sent(self, at: int, pcm: np.ndarray, rate: int) -> None:
        """``pcm`` (int16, at ``rate``) was sent when ``at`` input samples had been received."""
        if rate != self.rate:  # chunk by chunk: a stream would hold back each one's end
            pcm = soxr.resample(pcm.astype(np.float32), rate, self.rate)
        pcm = np.asarray(pcm, np.float64)
        if at > self.end:  # what was sent before has played out: silence until now
            self._samples = np.concatenate([self._samples, np.zeros(at - self.end), pcm])
        else:
            self._samples = np.concatenate([self._samples, pcm])

    def stop(self, at: int) -> None:
        """The client stopped playing at input sample ``at``: nothing after it plays."""
        if at < self.end:
            self._samples = self._samples[: max(at - self._start, 0)]

    def take(self, at: int, n: int) -> np.ndarray:
        """The reference for input samples ``at`` .. ``at + n`` (silence where nothing played);
        what lies before ``at`` is forgotten (the input only moves on)."""
        if at > self._start:
            self._samples = self._samples[at - self._start :]
            self._start = at
        out = np.zeros(n)
        part = self._samples[:n]
        out[: len(part)] = part
        return out
