"""``SessionLogProcessor``: the quickstart's session log, line for line, plus a JSONL event log.

Session log (``session_<timestamp>.log``)::

    Agent Session Log:
    Using agent: <agent>
    Project name: <project>
    Session Config: <the session.update event as JSON>
    SessionID: <sess_…>
    User Input: <what the user said, or typed>
    Agent Audio Response: <what the agent said>      (or Agent Text Response: … in text mode)
    2.4 s of your speech was not sent (<why>)        (microphone audio that never left)
    Tool Call: <name>(<arguments as JSON>)            (tools declared with --tools)
    Tool Result: <name>: <output, or {"error": …}>

While an answer is still arriving, its complete sentences so far stand provisionally as the last
line, ``Agent Audio Response (partial): …``, rewritten at each sentence end and replaced by the
quickstart's ``Agent Audio Response: <whole text>`` when the answer is over: a normal session's
log is line for line the quickstart's, and a killed one (SIGKILL, power loss) loses at most the
sentence being spoken.

``events_<timestamp>.jsonl`` gets one timestamped JSON object per protocol event, both directions,
except the audio itself: ``response.audio.delta`` and ``input_audio_buffer.append`` (about 25 a
second each; the service does not even push them, logging them cost more than playing them). Local
records are added: ``client.user_input`` per user turn (``typed`` says typed or spoken) and
``client.reconnecting`` / ``client.reconnected``. Both files are UTF-8, mode 0600, redacted, and
flushed line by line from a writer thread. Every frame is passed on.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InputTextRawFrame,
    LLMTextFrame,
    StartFrame,
    TranscriptionFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.frames import (
    AgentWords,
    AudioNotSentFrame,
    ConnectionLostFrame,
    ReconnectedFrame,
    SessionStartedFrame,
    VoiceLiveEventFrame,
)
from processors.logfiles import LineWriter, TailLineWriter
from processors.logsetup import new_session_key

SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’»)\]]*\s*$")


def session_timestamp() -> str:
    """A session's file-name stamp: the quickstart's timestamp plus milliseconds and a short id,
    e.g. ``2025-07-29_09-43-32-123_3fa9c1``, so sessions started in the same second (in one
    process or several) never share a file; the id also tags the session's technical log lines."""
    return f"{datetime.now().strftime('%Y-%m-%d_%H-%M-%S-%f')[:-3]}_{new_session_key()}"


class SessionLogProcessor(FrameProcessor):
    """Writes what was said to the session log and every protocol event to a JSONL file.

    Args:
        log_dir: folder for ``session_<timestamp>.log`` and ``events_<timestamp>.jsonl``.
        agent: shown as ``Using agent: …`` (omitted when None, e.g. in model mode).
        project: shown as ``Project name: …`` (omitted when None).
        session_config: the ``session.update`` event, logged as ``Session Config: …``.
        timestamp: file-name timestamp (default: now).
        echo: also print user and agent lines on the console.
    """

    def __init__(
        self,
        log_dir: Path | str,
        *,
        agent: str | None = None,
        project: str | None = None,
        session_config: dict[str, Any] | None = None,
        timestamp: str | None = None,
        echo: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        stamp = timestamp or session_timestamp()
        self.log_dir = Path(log_dir)
        self.session_log_path = self.log_dir / f"session_{stamp}.log"
        self.events_path = self.log_dir / f"events_{stamp}.jsonl"
        self._header: list[str] = ["Agent Session Log:"]
        if agent is not None:
            self._header.append(f"Using agent: {agent}")
        if project is not None:
            self._header.append(f"Project name: {project}")
        if session_config is not None:
            self._header.append(f"Session Config: {json.dumps(session_config, ensure_ascii=False)}")
        self._echo = echo
        self._session_log: TailLineWriter | None = None
        self._partial: list[str] = []  # the agent's words of the answer still arriving
        self._partial_shown = 0  # how many characters of them the provisional line shows
        self._events: LineWriter | None = None
        self._session_ids: set[str] = set()

    @property
    def write_errors(self) -> list[str]:
        """Why lines were lost from the session or event log (each reported once on stderr)."""
        return [w.error for w in (self._session_log, self._events) if w is not None and w.error]

    def open_logs(self) -> None:
        """Create both files now (``StartFrame`` does it otherwise); raises ``OSError``."""
        self._open()

    def _open(self) -> None:
        if self._session_log is not None:
            return
        self._session_log = TailLineWriter(self.session_log_path)
        self._events = LineWriter(self.events_path, truncate=True)
        for line in self._header:
            self._session_log.write(line)

    def _close(self) -> None:
        for writer in (self._session_log, self._events):
            if writer is not None:
                writer.close()

    def _line(self, line: str, *, echo: bool = False) -> None:
        self._open()
        assert self._session_log is not None
        self._session_log.write(line)
        if echo and self._echo:
            logger.info(f"\n\t{line}\n")

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Write the session log and JSONL lines a frame carries; pass every frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self._open()
        elif isinstance(frame, VoiceLiveEventFrame):
            self._event(frame)
        elif isinstance(frame, SessionStartedFrame) and frame.session_id not in self._session_ids:
            self._session_ids.add(frame.session_id)
            self._line(f"SessionID: {frame.session_id}")
        elif isinstance(frame, ConnectionLostFrame):
            self._local_record({"type": "client.reconnecting", "reason": frame.reason})
        elif isinstance(frame, ReconnectedFrame):
            self._line(f"Reconnected: {frame.reason}")
            self._local_record(
                {
                    "type": "client.reconnected",
                    "reason": frame.reason,
                    "session_id": frame.session_id,
                }
            )
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            self._user_input(frame.text, typed=False)
        elif isinstance(frame, InputTextRawFrame) and frame.text.strip():
            self._user_input(frame.text, typed=True)
        elif isinstance(frame, AgentWords):
            kind = "Audio" if frame.modality == "audio" else "Text"
            self._agent_final(f"Agent {kind} Response: {frame.text}")
        elif isinstance(frame, (TTSTextFrame, LLMTextFrame)) and frame.text:
            self._agent_words(frame.text, "Audio" if isinstance(frame, TTSTextFrame) else "Text")
        elif isinstance(frame, AudioNotSentFrame):
            self._line(f"{frame.seconds:.1f} s of your speech was not sent ({frame.reason})")
        elif isinstance(frame, FunctionCallInProgressFrame):
            self._line(f"Tool Call: {frame.function_name}({_one_line(frame.arguments)})")
        elif isinstance(frame, FunctionCallResultFrame):
            self._line(f"Tool Result: {frame.function_name}: {_one_line(frame.result)}")
        await self.push_frame(frame, direction)
        if isinstance(frame, (EndFrame, CancelFrame)):
            self._close()

    def _user_input(self, text: str, *, typed: bool) -> None:
        """A user turn, spoken (transcribed) or typed: one session log line, one JSONL record."""
        self._line(f"User Input: {text}", echo=True)
        self._local_record({"type": "client.user_input", "text": text, "typed": typed})

    def _agent_words(self, delta: str, kind: str) -> None:
        """A piece of the answer: at each sentence end, the provisional line shows it so far."""
        self._partial.append(delta)
        if SENTENCE_END.search(delta):
            text = "".join(self._partial).strip()
            if len(text) > self._partial_shown:
                self._partial_shown = len(text)
                self._open()
                assert self._session_log is not None
                self._session_log.set_tail(f"Agent {kind} Response (partial): {text}")

    def _agent_final(self, line: str) -> None:
        """The whole answer: its line replaces the provisional one."""
        self._partial.clear()
        self._partial_shown = 0
        self._open()
        assert self._session_log is not None
        self._session_log.commit_tail(line)
        if self._echo:
            logger.info(f"\n\t{line}\n")

    def _local_record(self, event: dict[str, Any]) -> None:
        """A JSONL record of this client's own (not a protocol event)."""
        self._event(VoiceLiveEventFrame(event=event, direction="local", at=time.time()))

    def _event(self, frame: VoiceLiveEventFrame) -> None:
        event = frame.event
        self._open()
        assert self._events is not None
        record = {
            "at": datetime.fromtimestamp(frame.at).astimezone().isoformat(timespec="milliseconds"),
            "direction": frame.direction,
            "event": event,
        }
        self._events.write(json.dumps(record, ensure_ascii=False, default=str))

    async def cleanup(self) -> None:
        """Close both files (also when the pipeline never ended cleanly)."""
        await super().cleanup()
        self._close()


def _one_line(value: Any) -> str:
    """A tool's arguments or result on one log line (the model's JSON may hold line breaks)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return " ".join(text.split())
