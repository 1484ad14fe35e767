"""``EchoReference``: the microphone plus what the speaker played, as stereo input frames.

For ``--echo-reference client`` (``SessionConfig.echo_cancellation = EchoCancellation.client()``)
the service sends stereo pcm16: channel 0 the microphone, channel 1 the samples the speaker played
at the moment those microphone samples were captured, so the echo canceller knows exactly what
it has to remove. This processor sits between the input transport and the service. A tap on the
output's :class:`PlaybackBuffer` stamps every block the device (or the WAV speaker's clock) takes
with ``time.monotonic()``; each mono microphone frame, stamped when it arrives, is paired with the
played samples of the same span of time (silence where nothing played) and pushed on as one
stereo ``InputAudioRawFrame`` at the microphone's rate.

The tap runs on the device thread and only appends to a deque; the pairing runs in
``process_frame``. Alignment is as good as the two timestamps: the device read on the speaker
side, the frame's arrival on the microphone side (a WAV input is paced like a device).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import soxr
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

KEEP_S = 3.0  # played audio kept for pairing


RESTART_S = 0.5  # a stamp this much later than the clock says: the stream stopped and restarted


class _Clock:
    """Sample index <-> monotonic time for a stream of contiguous samples, anchored at its first
    block. Both streams run at their nominal rate (a device's clock, or a WAV transport paced in
    real time), so counting samples is exact and stamps only fix where the count started: later
    stamps are only jitter, except one ``RESTART_S`` late (the stream stopped and restarted). The
    reference is thus continuous; its offset is the two first stamps' latency (constant, within
    what an echo canceller's filter covers)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.anchor: tuple[float, int] | None = None

    def stamp(self, t: float, index: int) -> None:
        """The sample ``index`` was taken at ``t`` (or a little before)."""
        if self.anchor is None or t - self.time(index) > RESTART_S:
            self.anchor = (t, index)

    def time(self, index: int) -> float:
        """When sample ``index`` was taken."""
        assert self.anchor is not None
        return self.anchor[0] + (index - self.anchor[1]) / self.rate

    def index(self, t: float) -> int:
        """The sample taken at ``t``."""
        assert self.anchor is not None
        return self.anchor[1] + round((t - self.anchor[0]) * self.rate)


class EchoReference(FrameProcessor):
    """Turns mono microphone frames into (microphone, played) stereo frames.

    Args:
        playback: the output's playback buffer (``output.playback``): ``add_tap`` and
            ``sample_rate``. Without one, channel 1 is silence.
    """

    def __init__(self, playback: Any | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._rate = int(getattr(playback, "sample_rate", 24000)) if playback is not None else 24000
        self._out_channels = int(getattr(playback, "channels", 1)) if playback is not None else 1
        self._played = np.zeros(0, np.int16)  # the latest played samples, contiguous
        self._played_end = 0  # absolute index just past the last played sample
        self._speaker = _Clock(self._rate)
        self._mic: _Clock | None = None
        self._mic_index = 0
        if playback is not None:
            playback.add_tap(self._tap)

    def _tap(self, block: bytes, now: float) -> None:
        """Device side: keep the block and when it was taken; nothing else."""
        samples = np.frombuffer(block[: len(block) - len(block) % 2], dtype="<i2")
        if self._out_channels > 1:
            samples = samples[:: self._out_channels]
        keep = int(KEEP_S * self._rate)
        with self._lock:
            self._speaker.stamp(now, self._played_end)
            self._played = np.concatenate([self._played[-keep:], samples])
            self._played_end += len(samples)

    def played_from(self, t: float, n: int, rate: int) -> np.ndarray:
        """``n`` samples at ``rate`` of what was played from monotonic time ``t`` on (zeros for
        what was not played, or is no longer kept)."""
        out = np.zeros(n, np.int16)
        with self._lock:
            if self._speaker.anchor is None:
                return out
            want = max(1, round(n * self._rate / rate))
            first = self._speaker.index(t)
            start = self._played_end - len(self._played)
            lo, hi = max(first, start), min(first + want, self._played_end)
            piece = self._played[lo - start : hi - start].copy() if lo < hi else None
        if piece is None:
            return out
        at = lo - first
        if self._rate != rate:
            piece = soxr.resample(piece, self._rate, rate).astype(np.int16)
            at = round(at * rate / self._rate)
        end = min(n, at + len(piece))
        out[at:end] = piece[: end - at]
        return out

    def stereo(self, frame: InputAudioRawFrame, arrived: float) -> InputAudioRawFrame:
        """``frame`` (mono) with what was played while it was captured as channel 1."""
        mic = np.frombuffer(frame.audio[: len(frame.audio) - len(frame.audio) % 2], dtype="<i2")
        if self._mic is None or self._mic.rate != frame.sample_rate:
            self._mic, self._mic_index = _Clock(frame.sample_rate), 0
        self._mic.stamp(arrived - len(mic) / frame.sample_rate, self._mic_index)
        ref = self.played_from(self._mic.time(self._mic_index), len(mic), frame.sample_rate)
        self._mic_index += len(mic)
        both = np.empty(2 * len(mic), np.int16)
        both[0::2], both[1::2] = mic, ref
        rate = frame.sample_rate
        return InputAudioRawFrame(audio=both.tobytes(), sample_rate=rate, num_channels=2)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Mono microphone frames go on as stereo; everything else as it is."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and frame.num_channels == 1:
            frame = self.stereo(frame, time.monotonic())
        await self.push_frame(frame, direction)
