"""Instrumented output transports for the barge-in bench: ours and pipecat's stock one.

Both record, on the loop, when an InterruptionFrame and each response's first audio frame
reached the transport. Ours reads hand-off times from its PlaybackBuffer (the callback's reads);
the stock ``LocalAudioOutputTransport`` writes blocking chunks in an executor thread, so each
write is timed (start, return, whether it held agent audio).
"""

from __future__ import annotations

import time

import numpy as np
from pipecat.frames.frames import Frame, InterruptionFrame, OutputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.local.audio import LocalAudioOutputTransport

from transports.pyaudio import PyAudioOutputTransport


class _Marks:
    """Loop-side arrival times of interruptions and of each item's first audio frame."""

    def _init_marks(self) -> None:
        self.interrupted_at: list[float] = []
        self.first_in: dict[str | None, float] = {}

    def _mark(self, frame: Frame) -> None:
        if isinstance(frame, InterruptionFrame):
            self.interrupted_at.append(time.monotonic())
        elif isinstance(frame, OutputAudioRawFrame):
            self.first_in.setdefault(getattr(frame, "context_id", None), time.monotonic())


class OursProbe(_Marks, PyAudioOutputTransport):
    """:class:`PyAudioOutputTransport` with arrival marks."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._init_marks()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        self._mark(frame)
        await super().process_frame(frame, direction)

    def handoffs(self, item: str) -> tuple[float | None, float | None]:
        """(first, last) time a callback handed out audio of ``item``."""
        return self.playback.first_played_at(item), self.playback.last_played_at(item)

    @property
    def underruns(self) -> int:
        return self.playback.stats.underruns + self.device_underflows


class StockProbe(_Marks, LocalAudioOutputTransport):
    """pipecat's ``LocalAudioOutputTransport`` with arrival marks and timed writes."""

    def __init__(self, py_audio, params):
        super().__init__(py_audio, params)
        self._init_marks()
        self.writes: list[tuple[float, float, bool]] = []  # (start, return, agent audio?)

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        self._mark(frame)
        await super().process_frame(frame, direction)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        start = time.monotonic()
        ok = await super().write_audio_frame(frame)
        agent = bool(np.frombuffer(frame.audio, dtype=np.int16).any())
        self.writes.append((start, time.monotonic(), agent))
        return ok

    def handoffs(self, item: str, until: float = float("inf")) -> tuple[float | None, float | None]:
        """(first write start, last write return) of agent audio after ``item`` came in."""
        since = self.first_in.get(item)
        if since is None:
            return None, None
        mine = [(s, e) for s, e, agent in self.writes if agent and since <= s < until]
        if not mine:
            return None, None
        return mine[0][0], mine[-1][1]

    @property
    def underruns(self) -> int:
        return 0  # blocking writes report no underflow; see the speaker-side count
