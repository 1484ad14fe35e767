"""``EchoReference``: the microphone plus what the speaker played, as stereo input frames.

For ``--echo-reference client`` (``SessionConfig.echo_cancellation = EchoCancellation.client()``)
the service sends stereo pcm16: channel 0 the microphone, channel 1 the samples the speaker played
at the moment those microphone samples were captured, so the echo canceller knows exactly what
it has to remove. This processor sits between the input transport and the service. A tap on the
output's :class:`PlaybackBuffer` stamps every block the device (or the WAV speaker's clock) takes
with when it plays it: PortAudio's DAC time for the block, moved onto ``time.monotonic()``, where
the device gives one, else the moment it was taken. Each mono microphone frame, stamped with its
ADC capture time the same way (else when it arrives), is paired with the played samples of the
same span of time (silence where nothing played) and pushed on as one stereo
``InputAudioRawFrame`` at the microphone's rate: the echo path the server sees is then the
acoustic one, not the playback and capture buffers as well.

The tap runs on the device thread and only appends to a deque; the pairing runs in
``process_frame``. Alignment is as good as the two timestamps: PortAudio's DAC and ADC times
where the device gives them, else the device read on the speaker side and the frame's arrival on
the microphone side (a WAV input is paced like a device).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from typing import Any

import numpy as np
import soxr
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from transports.streams import CAPTURED_AT

KEEP_S = 3.0  # played audio kept for pairing


RESTART_S = 0.5  # a stamp this much later than the clock says: the stream stopped and restarted
FOLLOW_STAMPS = 9  # the clock looks at this many stamps to see that the stream moved
FOLLOW_S = 0.004  # their median this far from what the count says: the stream moved


def _first_channel(pcm: bytes, channels: int) -> np.ndarray:
    """The first channel of interleaved int16 ``pcm`` (whole frames only)."""
    return np.frombuffer(pcm[: len(pcm) - len(pcm) % (2 * channels)], dtype="<i2")[::channels]


class _Clock:
    """Sample index <-> monotonic time for a stream of contiguous samples, anchored at its first
    block. Both streams run at their nominal rate (a device's clock, or a WAV transport paced in
    real time), so counting samples is nearly exact, and single stamps are taken as jitter; but a
    device that runs dry or overruns (an output underrun plays silence between two blocks; an
    input overflow loses some) moves the rest of its stream in time, and its clock drifts from
    ours. So when the median of the last ``FOLLOW_STAMPS`` stamps is more than ``FOLLOW_S`` off
    the count, the clock moves by it (seen on the PulseAudio rig: the speaker's DAC times 10, then
    30, then up to 140 ms later than its count after underruns; read against the count, the
    reference ran that far ahead of what played, and an 18 s answer now and then interrupted
    itself through the server's echo canceller). A stamp ``RESTART_S`` late (the stream stopped
    and restarted) moves it at once. Only device times are followed: arrival times (a microphone
    frame without one) come in bursts, and following them put a step in the reference now and
    then (``follow=False``)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.anchor: tuple[float, int] | None = None
        self._offsets: deque[float] = deque(maxlen=FOLLOW_STAMPS)

    def stamp(self, t: float, index: int, follow: bool = True) -> None:
        """The sample ``index`` was taken at ``t`` (or a little before); ``follow``: ``t`` is a
        device time, which the clock follows when the stream moved."""
        if self.anchor is None:
            self.anchor = (t, index)
            return
        offset = t - self.time(index)
        if offset > RESTART_S:
            self.anchor = (t, index)
            self._offsets.clear()
            return
        if not follow:
            return
        self._offsets.append(offset)
        if len(self._offsets) == FOLLOW_STAMPS:
            moved = statistics.median(self._offsets)
            if abs(moved) > FOLLOW_S:
                self.anchor = (self.anchor[0] + moved, self.anchor[1])
                self._offsets.clear()

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
        self._playback = playback
        self._read_offset = 0  # the playback's frames_read when the tap began counting
        if playback is not None:
            self._read_offset = playback.frames_read
            playback.add_tap(self._tap)

    def _tap(self, block: bytes, now: float) -> None:
        """Device side: keep the block and when it was taken; nothing else."""
        samples = _first_channel(block, self._out_channels)
        keep = int(KEEP_S * self._rate)
        with self._lock:
            self._speaker.stamp(now, self._played_end)
            self._played = np.concatenate([self._played[-keep:], samples])
            self._played_end += len(samples)

    def played_from(self, t: float, n: int, rate: int) -> np.ndarray:
        """``n`` samples at ``rate`` of what was played from monotonic time ``t`` on (zeros for
        what was not played, or is no longer kept). The end of a microphone frame is often
        ahead of the device's last read (the reads come in bursts, late under load): that part
        is what the device takes next, still queued in the playback buffer, not silence."""
        out = np.zeros(n, np.int16)
        want = max(1, round(n * self._rate / rate))
        # Peek before the copy: with the audio process, peeking first hands the taps what the
        # child played since its last event, so the copy has it (peeked after, that stretch was
        # in neither). Twice the span, for a frame that begins past the device's last read.
        upcoming = self._playback.peek(2 * want) if self._playback is not None else (0, b"")
        with self._lock:
            if self._speaker.anchor is None:
                return out
            first = self._speaker.index(t)
            span = np.zeros(want, np.int16)
            start = self._played_end - len(self._played)
            lo, hi = max(first, start), min(first + want, self._played_end)
            if lo < hi:
                span[lo - first : hi - first] = self._played[lo - start : hi - start]
            played_end = self._played_end
        if first + want > played_end:
            self._fill_upcoming(span, first, played_end, *upcoming)
        if self._rate != rate:
            span = soxr.resample(span, self._rate, rate).astype(np.int16)
        out[: min(n, len(span))] = span[:n]
        return out

    def _fill_upcoming(
        self, span: np.ndarray, first: int, played_end: int, read: int, queued: bytes
    ) -> None:
        """Fill the part of ``span`` (speaker samples from index ``first``) past what the taps
        had been given (``played_end``) with what was queued for the device after its ``read``
        frames. (The device may have read more between the peek and the copy: what it played
        is then in the copy, and stays, even if the queue was cleared in between.)"""
        upcoming = _first_channel(queued, self._out_channels)
        at = read - self._read_offset  # speaker index of upcoming[0]
        lo, hi = max(first, at, played_end), min(first + len(span), at + len(upcoming))
        if lo < hi:
            span[lo - first : hi - first] = upcoming[lo - at : hi - at]

    def stereo(
        self, frame: InputAudioRawFrame, captured_at: float, from_device: bool = True
    ) -> InputAudioRawFrame:
        """``frame`` (mono), whose first sample was captured at ``captured_at`` (monotonic; the
        device's ADC time, or if not ``from_device`` when the frame arrived), with what was
        played while it was captured as channel 1."""
        mic = _first_channel(frame.audio, 1)
        if self._mic is None or self._mic.rate != frame.sample_rate:
            self._mic, self._mic_index = _Clock(frame.sample_rate), 0
        self._mic.stamp(captured_at, self._mic_index, follow=from_device)
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
            captured = frame.metadata.get(CAPTURED_AT)  # the device's ADC time, if it gave one
            from_device = captured is not None
            if not from_device:  # it arrives as its last sample is captured
                captured = time.monotonic() - len(frame.audio) / (2 * frame.sample_rate)
            frame = self.stereo(frame, captured, from_device)
        await self.push_frame(frame, direction)
