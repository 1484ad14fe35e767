"""What the operator's live view shows, kept up to date by two small processors.

:class:`ConsoleState` holds the state of the conversation (connecting, listening, user speaking,
thinking, agent speaking, reconnecting), the words being spoken, the session's expiry, and the
raw audio blocks for the level meters. It is fed by:

* :class:`MicLevelTap` (between the input transport and the service): appends each microphone
  block to a bounded deque, nothing else;
* :class:`ConsoleFeed` (after the service, before the output): follows the standard frames and
  the protocol events, and hands each finished line of the conversation to ``on_line``;
* :meth:`ConsoleState.speaker_tap` on the output's ``PlaybackBuffer``: appends each block the
  device takes (device thread: a deque append only).

Levels are computed when the view asks (:meth:`ConsoleState.levels`, about ten times a second,
from the view's own timer), over the blocks gathered since, never per frame.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InputTextRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.frames import (
    AgentWords,
    ConnectionLostFrame,
    ReconnectedFrame,
    VoiceLiveEventFrame,
)
from processors.heard import HeardAudio

SILENCE_DB = -90.0
THINKING_GIVE_UP_S = 10.0  # no answer this long after the user stopped: back to listening


@dataclass(frozen=True)
class Line:
    """One finished line of the conversation. ``cut_at`` is where an interrupted answer stopped
    being heard (a character index into ``text``); ``heard_ms`` how much of it was heard."""

    who: str  # user, agent or note
    text: str
    typed: bool = False
    cut_at: int | None = None
    heard_ms: int | None = None


def dbfs(blocks: list[bytes]) -> float:
    """RMS level of int16 PCM blocks in dBFS (``SILENCE_DB`` for nothing or digital silence)."""
    if not blocks:
        return SILENCE_DB
    samples = np.frombuffer(b"".join(blocks), dtype=np.int16).astype(np.float32)
    if not samples.size:
        return SILENCE_DB
    rms = float(np.sqrt(np.mean(samples * samples)))
    return max(SILENCE_DB, 20 * math.log10(rms / 32768.0)) if rms > 0 else SILENCE_DB


class ConsoleState:
    """The live view's model (see the module docstring)."""

    def __init__(self) -> None:
        self.started_at = time.monotonic()
        self.phase = "connecting"
        self.phase_since = self.started_at
        self.expires_at: float | None = None  # epoch seconds
        self.partial_user = ""
        self.partial_agent = ""
        self.mic_blocks: deque[bytes] = deque(maxlen=200)
        self.speaker_blocks: deque[bytes] = deque(maxlen=200)
        self.on_line: Callable[[Line], None] | None = None
        self.playback: HeardAudio | None = None  # the output's playback: what a cut answer reached
        self._word_timings: dict[str, list[tuple[str, int]]] = {}  # item -> (word, audio offset ms)
        self._item_audio: dict[str, int] = {}  # item -> frames received
        self._item_rate = 24000
        self._heard: dict[str, int] = {}  # item -> ms heard (from the truncate sent)

    def speaker_tap(self, block: bytes, now: float) -> None:
        """For ``PlaybackBuffer.add_tap``: runs on the device thread, only appends."""
        self.speaker_blocks.append(block)

    @property
    def state(self) -> str:
        """What the session is doing now (``thinking`` gives up after ``THINKING_GIVE_UP_S``)."""
        if self.phase == "thinking" and time.monotonic() - self.phase_since > THINKING_GIVE_UP_S:
            return "listening"
        return self.phase

    def set_phase(self, phase: str) -> None:
        """Enter ``phase`` (and note since when)."""
        if phase != self.phase:
            self.phase, self.phase_since = phase, time.monotonic()

    def levels(self) -> tuple[float, float]:
        """(microphone, speaker) dBFS over the blocks gathered since the last call."""
        mic = [self.mic_blocks.popleft() for _ in range(len(self.mic_blocks))]
        spk = [self.speaker_blocks.popleft() for _ in range(len(self.speaker_blocks))]
        return dbfs(mic), dbfs(spk)

    def seconds_left(self) -> float | None:
        """Seconds before the session expires, if the server said when."""
        return None if self.expires_at is None else self.expires_at - time.time()

    # -- called by ConsoleFeed ------------------------------------------------------------------

    def emit(self, line: Line) -> None:
        """Hand a finished line of the conversation to the view."""
        if self.on_line is not None:
            self.on_line(line)

    def agent_words(self, words: AgentWords) -> None:
        """The agent's words for one item are complete (cut short, if interrupted)."""
        self.partial_agent = ""
        if not words.interrupted:
            self.emit(Line("agent", words.text))
            return
        heard = self._heard_ms(words.item_id)
        self.emit(Line("agent", words.text, cut_at=self._cut_index(words, heard), heard_ms=heard))

    def _heard_ms(self, item_id: str) -> int | None:
        if self.playback is not None:
            return self.playback.played_ms(item_id)
        return self._heard.get(item_id)

    def _cut_index(self, words: AgentWords, heard_ms: int | None) -> int | None:
        """Where the listener stopped hearing: by word timestamps, else by audio proportion."""
        if heard_ms is None:
            return None
        timings = self._word_timings.get(words.item_id)
        if timings:
            position = 0
            for word, at in timings:
                found = words.text.find(word, position) if at < heard_ms else -1
                if at >= heard_ms:
                    break
                if found >= 0:
                    position = found + len(word)
                    while position < len(words.text) and not words.text[position].isspace():
                        position += 1  # the punctuation that goes with the word
            return position
        total_ms = self._item_audio.get(words.item_id, 0) * 1000 // self._item_rate
        if total_ms <= 0:
            return 0
        index = int(len(words.text) * min(1.0, heard_ms / total_ms))
        space = words.text.rfind(" ", 0, index + 1)
        return space if space > 0 else index

    def connection_lost(self, frame: ConnectionLostFrame) -> None:
        """Show the reconnecting phase and a note with the reason the connection was lost."""
        self.set_phase("reconnecting")
        self.emit(Line("note", f"connection lost ({frame.reason}): reconnecting"))

    def reconnected(self) -> None:
        """Note that the connection is back."""
        self.emit(Line("note", "reconnected"))

    def event(self, frame: VoiceLiveEventFrame) -> None:
        """Follow a protocol event: session, expiry, word timings, truncation, reconnects."""
        event, kind = frame.event, frame.event_type
        if frame.direction == "sent":
            if kind == "conversation.item.truncate" and isinstance(event.get("audio_end_ms"), int):
                self._heard[str(event.get("item_id"))] = event["audio_end_ms"]
            return
        if kind in ("session.created", "session.updated"):
            session = event.get("session") if isinstance(event.get("session"), dict) else {}
            if isinstance(session.get("expires_at"), (int, float)):
                self.expires_at = float(session["expires_at"])
            if kind == "session.updated" and self.phase in ("connecting", "reconnecting"):
                self.set_phase("listening")
        elif kind == "response.audio_timestamp.delta":
            offset, word = event.get("audio_offset_ms"), str(event.get("text") or "").strip()
            if word and isinstance(offset, int):
                self._word_timings.setdefault(str(event.get("item_id")), []).append((word, offset))
        elif kind == "response.done" and self.phase == "thinking":
            status = (event.get("response") or {}).get("status")
            if status != "in_progress":
                self.set_phase("listening")

    def audio(self, frame: TTSAudioRawFrame) -> None:
        """Count an answer's audio (to place the cut when there are no word timings)."""
        item = frame.context_id or ""
        self._item_rate = frame.sample_rate
        self._item_audio[item] = self._item_audio.get(item, 0) + len(frame.audio) // 2


class MicLevelTap(FrameProcessor):
    """Keeps each microphone block for the level meter; passes everything on."""

    def __init__(self, state: ConsoleState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state = state

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Keep a microphone block; pass the frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and frame.num_channels == 1:
            self._state.mic_blocks.append(frame.audio)
        await self.push_frame(frame, direction)


class ConsoleFeed(FrameProcessor):
    """Follows the conversation for the live view; passes everything on."""

    def __init__(self, state: ConsoleState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state = state

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:  # noqa: C901
        """Update the state from one frame; pass the frame on."""
        await super().process_frame(frame, direction)
        s = self._state
        if isinstance(frame, VoiceLiveEventFrame):
            s.event(frame)
        elif isinstance(frame, ConnectionLostFrame):
            s.connection_lost(frame)
        elif isinstance(frame, ReconnectedFrame):
            s.reconnected()
        elif isinstance(frame, TTSAudioRawFrame):
            s.audio(frame)
        elif isinstance(frame, TTSTextFrame):
            s.partial_agent += frame.text
        elif isinstance(frame, AgentWords):
            s.agent_words(frame)
        elif isinstance(frame, UserStartedSpeakingFrame):
            s.set_phase("user speaking")
        elif isinstance(frame, UserStoppedSpeakingFrame):
            s.set_phase("thinking")
        elif isinstance(frame, InterimTranscriptionFrame):
            s.partial_user += frame.text
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            s.partial_user = ""
            s.emit(Line("user", frame.text.strip()))
        elif isinstance(frame, InputTextRawFrame) and frame.text.strip():
            s.set_phase("thinking")
            s.emit(Line("user", frame.text.strip(), typed=True))
        elif isinstance(frame, BotStartedSpeakingFrame):
            s.set_phase("agent speaking")
        elif isinstance(frame, BotStoppedSpeakingFrame) and s.phase == "agent speaking":
            s.set_phase("listening")
        await self.push_frame(frame, direction)
