"""Processors for the multiprocess tests, importable so that ``in_own_process`` can build them in
a child: each passes every frame on, and some misbehave on purpose after a number of audio frames.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger
from pipecat.frames.frames import (
    DataFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
    TextFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class Passthrough(FrameProcessor):
    """Pushes every frame on, unchanged."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class PidRecorder(Passthrough):
    """Writes the pid of the process it runs in, and what it saw, to ``path`` at the end."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = Path(path)
        self.audio_frames = 0
        self.interruptions = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, StartFrame):
            self.path.write_text(f"pid={os.getpid()}\n", encoding="utf-8")
            logger.info(f"PidRecorder started in pid {os.getpid()}")  # an INFO line from the child
        if isinstance(frame, OutputAudioRawFrame):
            self.audio_frames += 1
        if isinstance(frame, InterruptionFrame):
            self.interruptions += 1
            with self.path.open("a", encoding="utf-8") as f:
                f.write(f"interruption after {self.audio_frames} audio frames\n")
        await super().process_frame(frame, direction)


class Misbehaving(Passthrough):
    """After ``after`` agent audio frames: ``exit`` (os._exit(3)), ``segv`` (SIGSEGV), ``hang``
    (blocks its event loop for good), ``unpicklable`` (pushes a frame holding a lock)."""

    def __init__(self, how: str, after: int = 5) -> None:
        super().__init__()
        self.how, self.after, self.seen = how, after, 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, TTSAudioRawFrame):
            self.seen += 1
            if self.seen == self.after:
                if self.how == "exit":
                    os._exit(3)
                if self.how == "segv":
                    os.kill(os.getpid(), signal.SIGSEGV)
                if self.how == "hang":
                    time.sleep(3600)  # noqa: ASYNC251 - blocking the loop is the point
                if self.how == "unpicklable":
                    await self.push_frame(LockedFrame())
        await super().process_frame(frame, direction)


@dataclass
class LockedFrame(DataFrame):
    """A frame that cannot cross a process boundary (it holds a lock)."""

    lock: object = field(default_factory=threading.Lock)


def failing_factory(message: str) -> FrameProcessor:
    raise ValueError(message)


class SlowText(FrameProcessor):
    """Takes ``delay`` seconds over each ``TextFrame`` (awaiting: its loop stays free); a text
    starting with ``reply:`` is also answered upstream with ``replied:<rest>``."""

    def __init__(self, delay: float = 0.05) -> None:
        super().__init__()
        self.delay = delay

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            await asyncio.sleep(self.delay)
            if frame.text.startswith("reply:"):
                await self.push_frame(
                    TextFrame(f"replied:{frame.text[6:]}"), FrameDirection.UPSTREAM
                )
        await self.push_frame(frame, direction)
