"""``SessionReportProcessor``: a per-session report built from the frames the service pushes.

Put it anywhere after ``VoiceLiveAgentService`` (before the output, so that it also sees the
output's ``BotStartedSpeakingFrame`` coming back upstream). It passes every frame on and keeps:

* the session ids (``session.created``), reconnects (``ReconnectedFrame``), errors (``error``
  events) and the usage totals of every ``response.done``;
* one entry per turn: a spoken turn starts at ``input_audio_buffer.speech_started`` (its words
  come from the transcription of the same item), a typed turn at an ``InputTextRawFrame``, and a
  response no user turn asked for (a greeting) is a turn of its own. Each turn records when the
  user's speech started and ended, the agent's words, the first-audio latency (user speech end,
  or the typed line, -> the first agent audio the output played; the first audio received when
  the output reports nothing), the answer's duration, whether it was interrupted and how many
  milliseconds of it were heard (the ``conversation.item.truncate`` sent).

:meth:`SessionReportProcessor.report` returns it as a JSON-ready dict, :func:`write_report`
writes it (blocking: run it in a thread), :func:`summary_line` sums it up in one line. The batch
runner uses the same processor for its per-conversation report.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    Frame,
    InputTextRawFrame,
    StartFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.frames import AgentWords, ReconnectedFrame, VoiceLiveEventFrame
from processors.redaction import REDACTOR

REPORT_VERSION = 1


@dataclass
class _Turn:
    input: str  # spoken, typed or none (the agent spoke unprompted: a greeting)
    user_item_id: str | None = None
    user_text: str | None = None
    speech_started_s: float | None = None
    speech_ended_s: float | None = None
    asked_at: float | None = None  # monotonic: speech end, or when the line was typed
    response_ids: list[str] = field(default_factory=list)
    agent_text: list[str] = field(default_factory=list)
    first_audio_received_at: float | None = None
    first_audio_played_at: float | None = None
    audio_frames: int = 0
    audio_rate: int = 24000
    item_ids: list[str] = field(default_factory=list)
    interrupted: bool = False
    heard_ms: int | None = None
    status: str | None = None


class SessionReportProcessor(FrameProcessor):
    """Builds the session report from the frames passing through (see the module docstring).

    Args:
        agent: the agent's label (agent mode), or None.
        model: the model (model mode), or None.
    """

    def __init__(
        self, *, agent: str | None = None, model: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.agent = agent
        self.model = model
        self.session_ids: list[str] = []
        self.reconnects: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.usage: dict[str, Any] = {}
        self.turns: list[_Turn] = []
        self._t0 = time.monotonic()
        self._started_wall = time.time()
        self._by_response: dict[str, _Turn] = {}
        self._by_user_item: dict[str, _Turn] = {}
        self._by_agent_item: dict[str, _Turn] = {}
        self._current: _Turn | None = None  # the turn whose response is running or expected

    # -- frames -------------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Note what ``frame`` tells about the session; pass it on."""
        await super().process_frame(frame, direction)
        now = time.monotonic()
        if isinstance(frame, StartFrame):
            self._t0, self._started_wall = now, time.time()
        elif isinstance(frame, VoiceLiveEventFrame):
            self._event(frame, now)
        elif isinstance(frame, ReconnectedFrame):
            self.reconnects.append({"at_s": self._rel(now), "reason": frame.reason})
        elif isinstance(frame, TTSAudioRawFrame):
            turn = self._current
            if turn is not None and turn.response_ids:
                turn.first_audio_received_at = turn.first_audio_received_at or now
                turn.audio_frames += len(frame.audio) // (2 * max(1, frame.num_channels))
                turn.audio_rate = frame.sample_rate
                if frame.context_id and frame.context_id not in turn.item_ids:
                    turn.item_ids.append(frame.context_id)
                    self._by_agent_item[frame.context_id] = turn
        elif isinstance(frame, BotStartedSpeakingFrame):
            turn = self._current
            if turn is not None and turn.first_audio_received_at and not turn.first_audio_played_at:
                turn.first_audio_played_at = now
        elif isinstance(frame, InputTextRawFrame) and frame.text.strip():
            turn = self._new_turn("typed")
            turn.user_text, turn.asked_at = frame.text.strip(), now
        elif isinstance(frame, AgentWords):
            turn = self._by_response.get(frame.response_id) or self._by_agent_item.get(
                frame.item_id
            )
            if turn is not None:
                turn.agent_text.append(frame.text)
                turn.interrupted = turn.interrupted or frame.interrupted
        await self.push_frame(frame, direction)

    def _event(self, frame: VoiceLiveEventFrame, now: float) -> None:  # noqa: C901 - flat dispatch
        event, kind = frame.event, frame.event_type
        if frame.direction == "sent":
            if kind == "conversation.item.truncate":
                turn = self._by_agent_item.get(str(event.get("item_id")))
                if turn is not None and isinstance(event.get("audio_end_ms"), int):
                    turn.interrupted, turn.heard_ms = True, event["audio_end_ms"]
            return
        if frame.direction == "local":
            return
        if kind == "session.created":
            session_id = (event.get("session") or {}).get("id")
            if isinstance(session_id, str) and session_id not in self.session_ids:
                self.session_ids.append(session_id)
        elif kind == "input_audio_buffer.speech_started":
            turn = self._new_turn("spoken")
            turn.speech_started_s = self._rel(now)
            turn.user_item_id = (
                event.get("item_id") if isinstance(event.get("item_id"), str) else None
            )
            if turn.user_item_id:
                self._by_user_item[turn.user_item_id] = turn
        elif kind == "input_audio_buffer.speech_stopped":
            turn = self._by_user_item.get(str(event.get("item_id"))) or self._current
            if turn is not None and turn.input == "spoken" and turn.speech_ended_s is None:
                turn.speech_ended_s, turn.asked_at = self._rel(now), now
        elif kind == "conversation.item.input_audio_transcription.completed":
            turn = self._by_user_item.get(str(event.get("item_id")))
            text = event.get("transcript")
            if turn is not None and isinstance(text, str) and text.strip():
                turn.user_text = text.strip()
        elif kind == "response.created":
            self._response_created(event, now)
        elif kind == "response.done":
            self._response_done(event)
        elif kind == "error":
            err = event.get("error") if isinstance(event.get("error"), dict) else {}
            self.errors.append(
                {"at_s": self._rel(now), "code": err.get("code"), "message": err.get("message")}
            )

    def _response_created(self, event: dict[str, Any], now: float) -> None:
        response_id = (event.get("response") or {}).get("id")
        if not isinstance(response_id, str):
            return
        turn = self._current
        # A response belongs to the turn waiting for one; a follow-up after a tool call (no
        # audio or words yet) stays in its turn; anything else is the agent speaking unprompted.
        if turn is None or (turn.response_ids and (turn.audio_frames or turn.agent_text)):
            turn = self._new_turn("none")
            turn.asked_at = now
        turn.response_ids.append(response_id)
        self._by_response[response_id] = turn

    def _response_done(self, event: dict[str, Any]) -> None:
        response = event.get("response") if isinstance(event.get("response"), dict) else {}
        turn = self._by_response.get(str(response.get("id")))
        status = response.get("status")
        if turn is not None and isinstance(status, str):
            turn.status = status
            turn.interrupted = turn.interrupted or status == "cancelled"
        if isinstance(response.get("usage"), dict):
            _add_usage(self.usage, response["usage"])

    def _new_turn(self, kind: str) -> _Turn:
        turn = _Turn(kind)
        self.turns.append(turn)
        self._current = turn
        return turn

    def _rel(self, now: float) -> float:
        return round(now - self._t0, 3)

    # -- the report ---------------------------------------------------------------------------

    def report(self, *, failure: str | None = None) -> dict[str, Any]:
        """The report so far, as a JSON-ready dict."""
        turns = [self._turn_dict(i, t) for i, t in enumerate(self.turns, 1)]
        latencies = [
            t["first_audio_latency_ms"] for t in turns if t["first_audio_latency_ms"] is not None
        ]
        return {
            "version": REPORT_VERSION,
            "started_at": datetime.fromtimestamp(self._started_wall)
            .astimezone()
            .isoformat(timespec="milliseconds"),
            "duration_s": self._rel(time.monotonic()),
            "session_ids": list(self.session_ids),
            "agent": self.agent,
            "model": self.model,
            "turns": turns,
            "summary": {
                "turns": len(turns),
                "spoken": sum(t["input"] == "spoken" for t in turns),
                "typed": sum(t["input"] == "typed" for t in turns),
                "latency_p50_ms": _percentile(latencies, 50),
                "latency_p95_ms": _percentile(latencies, 95),
                "barge_ins": sum(t["interrupted"] for t in turns),
                "reconnects": len(self.reconnects),
                "errors": len(self.errors),
            },
            "reconnects": list(self.reconnects),
            "errors": list(self.errors),
            "usage": self.usage,
            "failure": failure,
        }

    def last_latency_ms(self) -> float | None:
        """The first-audio latency of the latest turn that has one (for a live view)."""
        for turn in reversed(self.turns):
            latency = _latency_ms(turn)
            if latency is not None:
                return latency
        return None

    def _turn_dict(self, index: int, t: _Turn) -> dict[str, Any]:
        first = t.first_audio_played_at or t.first_audio_received_at
        latency = _latency_ms(t)
        duration = round(t.audio_frames * 1000 / t.audio_rate) if t.audio_frames else 0
        heard = t.heard_ms if t.heard_ms is not None else duration
        return {
            "index": index,
            "input": t.input,
            "user_text": t.user_text,
            "speech_started_s": t.speech_started_s,
            "speech_ended_s": t.speech_ended_s,
            "agent_text": " ".join(t.agent_text) or None,
            "response_ids": list(t.response_ids),
            "status": t.status,
            "first_audio_latency_ms": latency,
            "first_audio_at_s": self._rel(first) if first is not None else None,
            "answer_duration_ms": duration,
            "interrupted": t.interrupted,
            "heard_ms": min(heard, duration),
        }


def _latency_ms(t: _Turn) -> float | None:
    """User speech end (or the typed line) -> first agent audio played (else received)."""
    first = t.first_audio_played_at or t.first_audio_received_at
    if first is None or t.asked_at is None or first < t.asked_at:
        return None
    return round((first - t.asked_at) * 1000.0)


def _add_usage(total: dict[str, Any], usage: dict[str, Any]) -> None:
    """Add the numbers of ``usage`` (nested dicts included) into ``total``."""
    for key, value in usage.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            total[key] = total.get(key, 0) + value
        elif isinstance(value, dict):
            _add_usage(total.setdefault(key, {}), value)


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def summary_line(report: dict[str, Any]) -> str:
    """One line: turns, latency p50/p95, barge-ins, reconnects."""
    s = report["summary"]
    latency = "no agent audio"
    if s["latency_p50_ms"] is not None:
        latency = f"first audio p50 {s['latency_p50_ms']:.0f} ms, p95 {s['latency_p95_ms']:.0f} ms"
    kinds = f"{s['spoken']} spoken, {s['typed']} typed"

    def count(n: int, what: str) -> str:
        return f"{n} {what}" + ("" if n == 1 else "s")

    return (
        f"{count(s['turns'], 'turn')} ({kinds}) · {latency} · "
        f"{count(s['barge_ins'], 'barge-in')} · "
        f"{count(s['reconnects'], 'reconnect')}"
    )


def write_report(path: Path | str, report: dict[str, Any]) -> None:
    """Write ``report`` as JSON (mode 0600, redacted, replaced atomically); raises ``OSError``."""
    report = REDACTOR.redact_obj(report)  # a server's error message may echo a credential
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=2)
        f.write("\n")
    os.replace(tmp, target)


def report_path(session_log: Path) -> Path:
    """``report_<id>.json`` beside ``session_<id>.log``."""
    return session_log.with_name(f"report_{session_log.stem.removeprefix('session_')}.json")


async def save_report(
    processor: SessionReportProcessor | None, path: Path, failure: str | None = None
) -> str:
    """Write the report (in a thread) and return the line to print: the summary, or why not."""
    if processor is None:
        return "No session report."
    report = processor.report(failure=failure)
    try:
        await asyncio.to_thread(write_report, path, report)
    except OSError as exc:
        why = exc.strerror or exc
        return f"Session: {summary_line(report)} (the report could not be written: {why})"
    return f"Session: {summary_line(report)} -> {path}"
