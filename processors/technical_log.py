"""``TechnicalLogProcessor``: the technical log ``voicelive.log``, as the quickstart kept it.

While the pipeline runs it attaches a loguru sink (see ``processors.logsetup.add_technical_log``)
that writes this session's lines (this project's modules, pipecat, websockets) in the
quickstart's ``time:logger:LEVEL:message`` format, redacted, mode 0600, appended to the file and
rotated. What it costs per frame is chosen by the level:

* ``INFO`` (default): connections, session events, errors, and one summary line per response
  (``Response resp_… completed: 25 audio frames (2.40 s), 12 transcript deltas, first audio
  180 ms after response.created, 2.61 s in all``) — nothing per audio frame;
* ``DEBUG`` (the script's ``--verbose``): a line per protocol event, barge-in and transcript;
* ``frames=True`` (the script's ``--debug``): also websockets' handshake and per-frame lines.

``session`` tags this session's lines: run the pipeline inside ``logger.contextualize(session=
processor.session)`` (``AgentPipeline.run`` does) so that, with several sessions in one process,
each ``voicelive.log`` gets only its own session's lines. Frames pass unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor, FrameProcessorSetup

from processors.frames import AgentWords, VoiceLiveEventFrame
from processors.logfiles import LineWriter
from processors.logsetup import (
    TechnicalLogHandle,
    add_technical_log,
    new_session_key,
    remove_technical_log,
)

_log = logger.bind(origin="voicelive.events")
_TEXT_DELTAS = frozenset({"response.audio_transcript.delta", "response.text.delta"})


@dataclass
class _Response:
    """What one response delivered, for its summary line."""

    created_at: float
    done: dict[str, Any] | None = None  # the response.done event, once it came
    done_at: float = 0.0
    audio_frames: int = 0
    audio_s: float = 0.0
    text_deltas: int = 0
    first_audio_at: float | None = None


class TechnicalLogProcessor(FrameProcessor):
    """Keeps ``voicelive.log`` (or ``path``) for the lifetime of the pipeline.

    Args:
        path: the log file (appended to; rotated at ``TECH_LOG_MAX_BYTES``).
        level: ``INFO`` or ``DEBUG`` (see the module docstring).
        frames: also log websockets' handshake and frame lines.
        session: the key tagging this session's lines (default: a new one).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        level: str = "INFO",
        frames: bool = False,
        session: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = Path(path)
        self.session = session or new_session_key()
        self._level = level
        self._frames = frames
        self._handle: TechnicalLogHandle | None = None
        self._writer: LineWriter | None = None  # kept after cleanup, for write_error
        self._responses: dict[str, _Response] = {}
        self._current: _Response | None = None

    @property
    def write_error(self) -> str | None:
        """Why lines were lost from the log (reported once on stderr), or None; also after the
        end."""
        return self._writer.error if self._writer is not None else None

    def attach(self) -> None:
        """Start writing the log now (idempotent); ``setup`` calls it, callers may do so earlier."""
        if self._handle is None:
            self._handle = add_technical_log(
                self.path, level=self._level, session=self.session, frames=self._frames
            )
            self._writer = self._handle.writer

    async def setup(self, setup: FrameProcessorSetup) -> None:
        """Attach the log sink before the first frame."""
        await super().setup(setup)
        self.attach()

    async def cleanup(self) -> None:
        """Detach the log sink and close the file."""
        await super().cleanup()
        if self._handle is not None:
            remove_technical_log(self._handle)
            self._handle = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Log the frames that matter (events, barge-ins, transcripts, errors); pass every frame
        on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            response = self._current
            if response is not None:
                response.audio_frames += 1
                response.audio_s += len(frame.audio) / (2 * frame.num_channels * frame.sample_rate)
                if response.first_audio_at is None:
                    response.first_audio_at = time.monotonic()
        elif isinstance(frame, VoiceLiveEventFrame):
            self._event(frame)
        elif isinstance(frame, (TTSStoppedFrame, EndFrame, CancelFrame)):
            self._summaries()  # in order after the response's audio (response.done overtakes it)
        elif isinstance(frame, InterruptionFrame):
            _log.debug("Interruption: flushing playback")
        elif isinstance(frame, (UserStartedSpeakingFrame, UserStoppedSpeakingFrame)):
            _log.debug(frame.name)
        elif isinstance(frame, TranscriptionFrame):
            _log.debug(f"User transcript ({len(frame.text)} chars)")
        elif isinstance(frame, AgentWords):
            cut = ", interrupted" if frame.interrupted else ""
            _log.debug(f"Agent transcript ({len(frame.text)} chars{cut})")
        elif isinstance(frame, ErrorFrame):
            # A processor's failure (``.failure``) is printed once by the script as its last word.
            failure = getattr(frame.processor, "failure", None)
            final = frame.error is not None and failure == frame.error
            _log.bind(console=not final).error(f"Error frame: {frame.error}")
        await self.push_frame(frame, direction)

    def _event(self, frame: VoiceLiveEventFrame) -> None:
        kind = frame.event_type
        if kind == "error":
            # Whole, and for this file only: the service puts one cut line on the console.
            text = f"{frame.direction} error event: {frame.event.get('error')}"
            _log.bind(console=False).warning(text)
            return
        # audio deltas and appends never reach here: the service does not push them
        _log.debug(f"{'Received' if frame.direction == 'received' else 'Sent'} event: {kind}")
        if frame.direction != "received":
            return
        if kind in _TEXT_DELTAS:
            if self._current is not None:
                self._current.text_deltas += 1
        elif kind == "response.created":
            self._summaries()
            self._current = self._responses[_response_id(frame.event)] = _Response(time.monotonic())
        elif kind == "response.done":
            info = self._responses.get(_response_id(frame.event))
            if info is None:
                self._summary(_response_id(frame.event), frame.event, None)
            else:
                info.done, info.done_at = frame.event, time.monotonic()

    def _summaries(self) -> None:
        """Log the finished responses: their audio frames have passed by now."""
        for response_id, info in list(self._responses.items()):
            if info.done is not None:
                del self._responses[response_id]
                if info is self._current:
                    self._current = None
                self._summary(response_id, info.done, info)

    def _summary(self, response_id: str, event: dict[str, Any], info: _Response | None) -> None:
        """One INFO line per response: what it delivered and how long it took."""
        body = event.get("response") if isinstance(event.get("response"), dict) else {}
        status = body.get("status") or "done"
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        total = usage.get("total_tokens")
        tokens = f", {total} tokens" if isinstance(total, int) else ""
        if info is None:
            _log.info(f"Response {response_id} {status}{tokens}")
            return
        first = ""
        if info.first_audio_at is not None:
            delay_ms = (info.first_audio_at - info.created_at) * 1000
            first = f", first audio {delay_ms:.0f} ms after response.created"
        took = info.done_at - info.created_at
        _log.info(
            f"Response {response_id} {status}: {info.audio_frames} audio frames "
            f"({info.audio_s:.2f} s), {info.text_deltas} transcript deltas{first}, "
            f"{took:.2f} s in all{tokens}"
        )


def _response_id(event: dict[str, Any]) -> str:
    response = event.get("response")
    rid = response.get("id") if isinstance(response, dict) else None
    return rid if isinstance(rid, str) else "?"
