"""``TechnicalLogProcessor``: the technical log ``voicelive.log``, as the quickstart kept it.

While the pipeline runs it attaches a loguru sink that writes everything (this project's modules,
pipecat, and websockets' protocol debug lines with the request URL and headers) in the
quickstart's ``time:logger:LEVEL:message`` format, redacted, mode 0600. It also logs each protocol
event and the pipeline frames that matter (barge-ins, transcripts, errors). Frames pass unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    InterruptionFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup

from processors.frames import AgentWords, VoiceLiveEventFrame
from processors.logfiles import LineWriter
from processors.logsetup import add_technical_log, remove_technical_log

_log = logger.bind(origin="voicelive.events")


class TechnicalLogProcessor(FrameProcessor):
    """Keeps ``voicelive.log`` (or ``path``) for the lifetime of the pipeline."""

    def __init__(self, path: Path | str, *, level: str = "DEBUG", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self._level = level
        self._sink: tuple[int, LineWriter] | None = None
        self._writer: LineWriter | None = None  # kept after cleanup, for write_error

    def attach(self) -> None:
        """Start writing the log now (idempotent); ``setup`` calls it, callers may call it earlier."""
        if self._sink is None:
            self._sink = add_technical_log(self.path, level=self._level)
            self._writer = self._sink[1]

    @property
    def write_error(self) -> str | None:
        """Why lines were lost from the log (reported once on stderr), or None; also after the end."""
        return self._writer.error if self._writer is not None else None

    async def setup(self, setup: FrameProcessorSetup) -> None:
        await super().setup(setup)
        self.attach()

    async def cleanup(self) -> None:
        await super().cleanup()
        if self._sink is not None:
            remove_technical_log(*self._sink)
            self._sink = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, VoiceLiveEventFrame):
            if frame.event_type == "error":
                # Whole, and for this file only: the service puts one cut line on the console.
                _log.bind(console=False).warning(f"{frame.direction} error event: {frame.event.get('error')}")
            else:  # audio deltas and appends never reach here: the service does not push them
                _log.debug(f"{'Received' if frame.direction == 'received' else 'Sent'} event: {frame.event_type}")
        elif isinstance(frame, InterruptionFrame):
            _log.debug("Interruption: flushing playback")
        elif isinstance(frame, (UserStartedSpeakingFrame, UserStoppedSpeakingFrame)):
            _log.debug(frame.name)
        elif isinstance(frame, TranscriptionFrame):
            _log.debug(f"User transcript ({len(frame.text)} chars)")
        elif isinstance(frame, AgentWords):
            _log.debug(f"Agent transcript ({len(frame.text)} chars{', interrupted' if frame.interrupted else ''})")
        elif isinstance(frame, ErrorFrame):
            # A processor's failure (``.failure``) is printed once by the script as its last word.
            failure = getattr(frame.processor, "failure", None)
            final = frame.error is not None and failure == frame.error
            _log.bind(console=not final).error(f"Error frame: {frame.error}")
        await self.push_frame(frame, direction)
