"""``TurnCollector``: what happened in each turn of one conversation, from the pipeline's frames.

A pipecat processor placed after the service (``build_agent_pipeline(processors=[...])``). It
passes every frame on unchanged and records, per turn: the user's words (spoken or typed), the
agent's words, the time from the end of the user's speech to the agent's first audio, how much
audio the answer had, whether it was interrupted, and the usage the server reported in
``response.done``. :meth:`TurnCollector.report` returns it all as a JSON-ready dict.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    InputTextRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.frames import AgentWords, VoiceLiveEventFrame


@dataclass
class Turn:
    """One user turn and the agent's answer to it."""

    user: str = ""
    typed: bool = False
    agent: str = ""
    speech_ended_at: float | None = None  # monotonic
    first_audio_at: float | None = None  # monotonic
    answer_audio_s: float = 0.0
    interrupted: bool = False

    @property
    def latency_ms(self) -> float | None:
        """User speech end (or the typed turn) -> the answer's first audio, in ms."""
        if self.speech_ended_at is None or self.first_audio_at is None:
            return None
        return max(0.0, (self.first_audio_at - self.speech_ended_at) * 1000.0)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("speech_ended_at")
        d.pop("first_audio_at")
        latency = self.latency_ms
        d["latency_ms"] = None if latency is None else round(latency, 1)
        d["answer_duration_s"] = round(d.pop("answer_audio_s"), 3)
        return d


@dataclass
class _Usage:
    totals: dict[str, int] = field(default_factory=dict)

    def add(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for key, value in usage.items():
            if isinstance(value, int) and not isinstance(value, bool):
                self.totals[key] = self.totals.get(key, 0) + value


class TurnCollector(FrameProcessor):
    """Records the turns of one conversation (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.turns: list[Turn] = []
        self.errors: list[str] = []
        self.session_ids: list[str] = []
        self._usage = _Usage()
        self._current: Turn | None = None  # the turn whose answer is awaited or playing
        self._by_item: dict[str, Turn] = {}

    def _turn(self) -> Turn:
        if self._current is None:
            self._current = Turn()
            self.turns.append(self._current)
        return self._current

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        now = time.monotonic()
        if isinstance(frame, UserStartedSpeakingFrame) and direction is FrameDirection.DOWNSTREAM:
            self._current = None
            self._turn()
        elif isinstance(frame, UserStoppedSpeakingFrame) and direction is FrameDirection.DOWNSTREAM:
            self._turn().speech_ended_at = now
        elif isinstance(frame, InputTextRawFrame):  # typed upstream of the service
            self.typed(frame.text)
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            turn = self._latest_without_user() or self._turn()
            turn.user = frame.text
        elif isinstance(frame, TTSAudioRawFrame):
            turn = self._answer_turn(frame.context_id)
            if turn.first_audio_at is None:
                turn.first_audio_at = now
            turn.answer_audio_s += len(frame.audio) / 2 / frame.sample_rate / frame.num_channels
        elif isinstance(frame, AgentWords):
            turn = self._answer_turn(frame.item_id)
            turn.agent = f"{turn.agent} {frame.text}".strip()
            turn.interrupted = turn.interrupted or frame.interrupted
        elif isinstance(frame, ErrorFrame):
            self.errors.append(str(frame.error))
        elif isinstance(frame, VoiceLiveEventFrame) and frame.direction == "received":
            self._event(frame.event)
        await self.push_frame(frame, direction)

    def typed(self, text: str) -> None:
        """A typed user turn was sent now (the service consumes the frame, so the sender says so)."""
        self._current = Turn(user=text, typed=True, speech_ended_at=time.monotonic())
        self.turns.append(self._current)

    def _answer_turn(self, item_id: str | None) -> Turn:
        """The turn an answer item belongs to: the one its first audio or words arrived in
        (an interrupted answer's words may arrive after the next turn began)."""
        if item_id and item_id in self._by_item:
            return self._by_item[item_id]
        turn = self._turn()
        if item_id:
            self._by_item[item_id] = turn
        return turn

    def _latest_without_user(self) -> Turn | None:
        for turn in reversed(self.turns):
            if not turn.user and not turn.typed:
                return turn
        return None

    def _event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "response.done":
            response = event.get("response")
            if isinstance(response, dict):
                self._usage.add(response.get("usage"))
                if response.get("status") == "cancelled" and self._current is not None:
                    self._current.interrupted = True
            # The turn stays open: this system frame may overtake the answer's last data frames.
        elif kind == "session.created":
            session = event.get("session")
            sid = session.get("id") if isinstance(session, dict) else None
            if isinstance(sid, str) and sid not in self.session_ids:
                self.session_ids.append(sid)

    def report(self) -> dict[str, Any]:
        """Turns (answered or not), errors, session ids and usage totals, JSON-ready."""
        turns = [t for t in self.turns if t.user or t.agent or t.first_audio_at is not None]
        return {
            "session_ids": list(self.session_ids),
            "turns": [t.as_dict() for t in turns],
            "errors": list(self.errors),
            "usage": dict(self._usage.totals),
        }
