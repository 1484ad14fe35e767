"""The Voice Live session as a sans-I/O state machine.

Feed it what happens — :meth:`VoiceLiveSession.receive` for each server message (with the clock
passed in), :meth:`audio_in` for microphone audio, :meth:`user_text` for typed text,
:meth:`truncate_heard` once local playback has been flushed — and it returns the actions to carry
out (:mod:`processors.voicelive.actions`): events to send, audio to play, transcripts, errors.
It never raises on server input: a malformed or unexpected event becomes a :class:`Notice`.

Rules it keeps (tested over the recorded traces): audio is only sent after ``session.updated``
(microphone audio of the gap before it is held, the last 10 s, and sent then, each sample once);
deltas of an interrupted response are never returned for playback; a truncate never exceeds the
audio received for the item and is skipped when nothing went unheard; ``response.cancel`` is only
sent while a response is active; ``response.create`` is deferred while one is running, and a
greeting's (:meth:`VoiceLiveSession.greet`) is sent right after ``session.updated``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processors.voicelive import wire as ev
from processors.voicelive.actions import (
    Action,
    AgentText,
    AgentTranscript,
    FunctionCall,
    Interruption,
    Notice,
    PlayAudio,
    ResponseFinished,
    ResponseStarted,
    Send,
    ServiceError,
    SessionCreated,
    SessionReady,
    SpeechStarted,
    SpeechStopped,
    UserTranscript,
    WordTiming,
)
from processors.voicelive.errors import MalformedEvent
from processors.voicelive.gap_audio import GapAudio
from processors.voicelive.history import History
from processors.voicelive.wire import INFORMATIONAL

OUTPUT_RATE = 24000
RECENT_RESPONSES = 32  # per-response records kept; older ones' late events are simply dropped
BENIGN_ERROR_CODES = frozenset(
    {
        "response_cancel_not_active",
        "conversation_already_has_active_response",
        "item_already_truncated",
    }
)
# session_expired is not fatal: the server closes the socket next, and the client reconnects.
FATAL_ERROR_CODES = frozenset({"invalid_api_key", "unauthorized", "forbidden"})


@dataclass
class _Response:
    response_id: str
    active: bool = True
    first_audio_at: float | None = None
    audio_items: list[str] = field(default_factory=list)


@dataclass
class _Transcript:
    response_id: str
    modality: str
    parts: list[str] = field(default_factory=list)
    done: bool = False


class VoiceLiveSession:
    """State of one conversation with Voice Live, across reconnects."""

    def __init__(self, session: dict[str, Any]) -> None:
        self.session_request = session
        self.session_id: str | None = None
        self.effective: dict[str, Any] = {}
        self.ready = False
        self.expires_at: int | None = None
        self.thread_id: str | None = None
        self.history = History()
        rate = session.get("input_audio_sampling_rate")
        echo = session.get("input_audio_echo_cancellation")
        channels = echo.get("channels") if isinstance(echo, dict) else None
        self.gap_audio = GapAudio(
            rate if isinstance(rate, int) and rate > 0 else 24000,
            channels=channels if channels == 2 else 1,
        )
        self._update_event_id: str | None = None
        self._responses: dict[str, _Response] = {}
        self._active: str | None = None
        self._interrupted: set[str] = set()
        self._audio_frames: dict[str, int] = {}
        self._truncated: set[str] = set()
        self._transcripts: dict[str, _Transcript] = {}
        self._last_audio: tuple[str, str] | None = None
        self._pending_create = False
        self._pending_params: dict[str, Any] = {}
        self._last_create_id: str | None = None
        self._queued_until_ready: list[dict[str, Any]] = []
        self._speech_stopped_at: float | None = None
        self._replay_pending = False

    # -- state --------------------------------------------------------------------------------

    @property
    def active_response(self) -> str | None:
        """The id of the response the server is producing now, ``None`` between responses."""
        return self._active

    @property
    def interrupts_on_server(self) -> bool:
        """Whether the server cancels the running response on ``speech_started`` itself (the one
        place this rule lives: it reads the effective session, or the requested one before it)."""
        td = self.effective.get("turn_detection", self.session_request.get("turn_detection"))
        if not isinstance(td, dict):
            return False
        return td.get("interrupt_response") is not False

    def audio_received_frames(self, item_id: str) -> int:
        """Audio frames (24 kHz samples) received so far for the agent's item ``item_id``."""
        return self._audio_frames.get(item_id, 0)

    def is_interrupted(self, response_id: str) -> bool:
        """Whether ``response_id`` was interrupted (the user spoke over it, or the app cut it)."""
        return response_id in self._interrupted

    @property
    def audio_dropped_frames(self) -> int:
        """Microphone frames never sent: the gap outlasted the held audio's bound."""
        return self.gap_audio.dropped_frames

    def connection_lost(self, *, replay_history: bool = False) -> list[Action]:
        """Forget per-connection state; the conversation (history, transcripts) is kept.

        Returns the agent's words cut short by the drop (they were heard, so they are logged
        and replayed). With ``replay_history`` the transcript so far (bounded: see
        :class:`History`) is sent again as conversation items once the next connection's
        session is ready (for modes without server-side resume). From now until then,
        microphone audio is held (see :class:`GapAudio`). The next session's ``expires_at``
        is its own: a session that announces none does not inherit the old one's.
        """
        cut_short = self.close_transcripts()
        self.ready = False
        self.expires_at = None
        self._active = None
        self._update_event_id = None
        self._queued_until_ready.clear()  # already in the history, which is replayed or resumed
        self._replay_pending = replay_history and bool(self.history)
        for resp in self._responses.values():
            resp.active = False
        return cut_short

    def close_transcripts(self, response_id: str | None = None) -> list[Action]:
        """The agent's words still open (of ``response_id``, or all), as cut-short transcripts."""
        actions: list[Action] = []
        for item_id, record in self._transcripts.items():
            if (
                (response_id is None or record.response_id == response_id)
                and not record.done
                and "".join(record.parts)
            ):
                record.done = True
                text = "".join(record.parts)
                self.history.append("assistant", text)
                actions.append(
                    AgentTranscript(text, record.response_id, item_id, record.modality, True)
                )
        return actions

    def _history_items(self) -> list[Action]:
        return [Send(item) for item in self.history.replay()]

    def _release_gap_audio(self) -> list[Action]:
        held_s = self.gap_audio.held_frames / self.gap_audio.rate
        sends: list[Action] = [
            Send(ev.audio_append(pcm), audio=True) for pcm in self.gap_audio.release()
        ]
        if sends:
            note = f"sent {held_s:.2f} s of microphone audio held until the session was ready"
            sends.append(Notice("info", note))
        return sends

    # -- inputs from the application ----------------------------------------------------------

    def audio_in(self, pcm: bytes) -> list[Action]:
        """Microphone audio at the session's input rate; held (the last 10 s) until ready."""
        if not self.ready:
            self.gap_audio.hold(pcm)
            return []
        return [Send(ev.audio_append(pcm), audio=True)]

    def audio_unsent(self, pcm: bytes) -> None:
        """Audio :meth:`audio_in` returned that the owner could not send (its connection is
        closing): held, and sent to the next session once it is ready."""
        self.gap_audio.hold(pcm)

    def user_text(self, text: str) -> list[Action]:
        """A typed user message followed by a response request (queued until ready)."""
        item = ev.user_text_item(text)
        self.history.append("user", text)
        if not self.ready:
            self._queued_until_ready.append(item)
            self._pending_create = True
            return []
        return [Send(item), *self.request_response()]

    def request_response(self, **params: Any) -> list[Action]:
        """``response.create`` (with ``params`` as its ``response``) now, or once the session is
        ready and no response is running; a deferred request keeps its params."""
        if self._active is not None or not self.ready:
            self._pending_create = True
            self._pending_params = params or self._pending_params
            return []
        params, self._pending_params = params or self._pending_params, {}
        create = ev.response_create(**params)
        self._last_create_id = create["event_id"]
        return [Send(create)]

    def greet(self, instructions: str | None = None, text: str | None = None) -> list[Action]:
        """The agent speaks first: ``response.create`` as soon as ``session.updated`` arrives
        (at once if it already has). ``instructions`` direct that response (model mode);
        ``text`` is said as is (``pre_generated_assistant_message``, agent mode)."""
        params: dict[str, Any] = {}
        if instructions:
            params["instructions"] = instructions
        if text:
            content = [{"type": "text", "text": text}]
            message = {"type": "message", "role": "assistant", "content": content}
            params["pre_generated_assistant_message"] = message
        return self.request_response(**params)

    def function_result(self, call_id: str, output: str) -> list[Action]:
        """A tool's output, then a new response once the current one is done."""
        return [Send(ev.function_output_item(call_id, output)), *self.request_response()]

    def local_interrupt(self) -> list[Action]:
        """The application interrupted playback itself (not the server's VAD)."""
        actions: list[Action] = []
        if self._active is not None:
            actions.append(Send(ev.response_cancel(self._active)))
        actions.append(self._interrupt_current())
        return actions

    def truncate_heard(self, interruption: Interruption, heard_ms: int | None) -> list[Action]:
        """After playback was flushed: tell the server how much of the item the listener heard
        (``heard_ms``, as the output counted it; None when nothing counts it)."""
        item_id, response_id = interruption.item_id, interruption.response_id
        if not item_id or heard_ms is None or item_id in self._truncated:
            return []
        received_ms = self._audio_frames.get(item_id, 0) * 1000 // OUTPUT_RATE
        heard = max(0, min(heard_ms, received_ms))
        resp = self._responses.get(response_id or "")
        if heard >= received_ms and (resp is None or not resp.active):
            return []
        self._truncated.add(item_id)
        return [Send(ev.truncate(item_id, heard))]

    # -- server events ------------------------------------------------------------------------

    def receive(
        self, message: str | bytes | dict[str, Any] | ev.ServerEvent, now: float
    ) -> list[Action]:
        """Handle one server message (raw, decoded, or already parsed); never raises."""
        if isinstance(message, ev.ServerEvent):
            event = message
        else:
            try:
                event = ev.parse_server_event(message)
            except MalformedEvent as exc:
                return [Notice("warning", f"skipped malformed server event: {exc}")]
        handler = _HANDLERS.get(event.type)
        if handler is None:
            if event.type in INFORMATIONAL:
                return []
            return [Notice("debug", f"unknown server event type {event.type!r} ignored")]
        try:
            return handler(self, event, now)
        except MalformedEvent as exc:
            return [Notice("warning", f"skipped {event.type}: {exc}")]
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
            return [Notice("warning", f"skipped {event.type} with unexpected field types: {exc}")]

    def _on_session_created(self, event: ev.ServerEvent, now: float) -> list[Action]:
        session = event.obj("session")
        self.session_id = (
            session.get("id") if isinstance(session.get("id"), str) else self.session_id
        )
        self._note_session(session)
        update = ev.session_update(self.session_request)
        self._update_event_id = update["event_id"]
        return [SessionCreated(self.session_id or "", session), Send(update)]

    def _on_session_updated(self, event: ev.ServerEvent, now: float) -> list[Action]:
        if not isinstance(event.data.get("session"), dict):
            return [Notice("warning", "session.updated without a session object skipped")]
        session = event.obj("session")
        self.effective = session
        self._note_session(session)
        first = not self.ready
        self.ready = True
        actions: list[Action] = [SessionReady(self.session_id or "", session)]
        if first and self._replay_pending:
            self._replay_pending = False
            actions.extend(self._history_items())
        if first:
            actions.extend(self._release_gap_audio())
        if first and self._queued_until_ready:
            actions.extend(Send(item) for item in self._queued_until_ready)
            self._queued_until_ready.clear()
        if first and self._pending_create and self._active is None:
            self._pending_create = False
            actions.extend(self.request_response())
        return actions

    def _note_session(self, session: dict[str, Any]) -> None:
        expires = ev.ServerEvent("session", session).int("expires_at")
        if expires is not None:
            self.expires_at = expires
        agent = session.get("agent")
        if isinstance(agent, dict) and isinstance(agent.get("thread_id"), str):
            self.thread_id = agent["thread_id"]

    def _on_speech_started(self, event: ev.ServerEvent, now: float) -> list[Action]:
        interruption = self._interrupt_current()
        actions: list[Action] = []
        if self._active is not None and not self.interrupts_on_server:
            actions.append(Send(ev.response_cancel(self._active)))
        actions.append(
            SpeechStarted(event.int("audio_start_ms"), event.str("item_id"), interruption)
        )
        return actions

    def _interrupt_current(self) -> Interruption:
        """Mark the active response and the one whose audio is playing as interrupted."""
        response_id, item_id = self._last_audio if self._last_audio else (None, None)
        if self._active is not None:
            self._interrupted.add(self._active)
            if response_id != self._active:
                resp = self._responses.get(self._active)
                if resp and resp.audio_items:
                    response_id, item_id = self._active, resp.audio_items[-1]
        if response_id is not None:
            self._interrupted.add(response_id)
        return Interruption(response_id, item_id)

    def _on_speech_stopped(self, event: ev.ServerEvent, now: float) -> list[Action]:
        self._speech_stopped_at = now
        return [SpeechStopped(event.int("audio_end_ms"), event.str("item_id"))]

    def _on_transcription_delta(self, event: ev.ServerEvent, now: float) -> list[Action]:
        delta = event.str("delta")
        return [UserTranscript(delta, event.str("item_id"), final=False)] if delta else []

    def _on_transcription_completed(self, event: ev.ServerEvent, now: float) -> list[Action]:
        text = event.str("transcript").strip()
        if not text:
            return [Notice("debug", "empty user transcription")]
        self.history.append("user", text)
        language = (
            event.data.get("language") if isinstance(event.data.get("language"), str) else None
        )
        return [UserTranscript(text, event.str("item_id"), final=True, language=language)]

    def _on_transcription_failed(self, event: ev.ServerEvent, now: float) -> list[Action]:
        err = event.obj("error")
        text = f"user transcription failed: {err.get('code') or ''} {err.get('message') or ''}"
        return [Notice("warning", text.strip())]

    def _on_response_created(self, event: ev.ServerEvent, now: float) -> list[Action]:
        response_id = event.obj("response").get("id")
        if not isinstance(response_id, str):
            return [Notice("warning", "response.created without a response id")]
        self._responses[response_id] = _Response(response_id)
        self._active = response_id
        return [ResponseStarted(response_id)]

    def _response_of(self, event: ev.ServerEvent) -> str:
        return event.str("response_id") or (self._active or "")

    def _on_audio_delta(self, event: ev.ServerEvent, now: float) -> list[Action]:
        response_id, item_id = self._response_of(event), event.str("item_id")
        pcm = ev.decode_audio(event.data.get("delta"))
        if len(pcm) % 2:
            pcm = pcm[:-1]
        if not pcm or response_id in self._interrupted:
            return []
        resp = self._responses.setdefault(
            response_id, _Response(response_id, active=self._active == response_id)
        )
        first = resp.first_audio_at is None
        if first:
            resp.first_audio_at = now
        if item_id not in resp.audio_items:
            resp.audio_items.append(item_id)
        self._audio_frames[item_id] = self._audio_frames.get(item_id, 0) + len(pcm) // 2
        self._last_audio = (response_id, item_id)
        return [PlayAudio(pcm, response_id, item_id, first)]

    def _on_text_delta(
        self, event: ev.ServerEvent, now: float, modality: str = "text"
    ) -> list[Action]:
        response_id, item_id, delta = (
            self._response_of(event),
            event.str("item_id"),
            event.str("delta"),
        )
        record = self._transcripts.setdefault(item_id, _Transcript(response_id, modality))
        record.parts.append(delta)
        if not delta or response_id in self._interrupted:
            return []
        return [AgentText(delta, response_id, item_id, modality)]

    def _on_transcript_delta(self, event: ev.ServerEvent, now: float) -> list[Action]:
        return self._on_text_delta(event, now, modality="audio")

    def _on_text_done(
        self, event: ev.ServerEvent, now: float, key: str = "text", modality: str = "text"
    ) -> list[Action]:
        response_id, item_id = self._response_of(event), event.str("item_id")
        record = self._transcripts.setdefault(item_id, _Transcript(response_id, modality))
        if record.done:
            return []
        text = event.str(key) or "".join(record.parts)
        if not text:
            return [Notice("warning", f"{event.type} without any text skipped")]
        record.done = True
        self.history.append("assistant", text)
        return [
            AgentTranscript(text, response_id, item_id, modality, response_id in self._interrupted)
        ]

    def _on_transcript_done(self, event: ev.ServerEvent, now: float) -> list[Action]:
        return self._on_text_done(event, now, key="transcript", modality="audio")

    def _on_timestamp(self, event: ev.ServerEvent, now: float) -> list[Action]:
        return [
            WordTiming(
                event.str("item_id"),
                event.str("text"),
                event.int("audio_offset_ms", 0) or 0,
                event.int("audio_duration_ms", 0) or 0,
            )
        ]

    def _on_function_call_done(self, event: ev.ServerEvent, now: float) -> list[Action]:
        return [
            FunctionCall(
                event.str("name"),
                event.str("call_id"),
                event.str("arguments"),
                event.str("item_id"),
            )
        ]

    def _on_response_done(self, event: ev.ServerEvent, now: float) -> list[Action]:
        response = event.obj("response")
        response_id = (
            response.get("id") if isinstance(response.get("id"), str) else (self._active or "")
        )
        status = response.get("status") if isinstance(response.get("status"), str) else "unknown"
        details = (
            response.get("status_details")
            if isinstance(response.get("status_details"), dict)
            else {}
        )
        reason = details.get("reason") if isinstance(details.get("reason"), str) else None
        usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
        # Words the server never closed with a .done (cut short) still belong in the transcript.
        actions: list[Action] = self.close_transcripts(response_id)
        resp = self._responses.get(response_id)
        latency = None
        if resp is not None:
            resp.active = False
            if (
                resp.first_audio_at is not None
                and self._speech_stopped_at is not None
                and resp.first_audio_at >= self._speech_stopped_at
            ):
                latency = (resp.first_audio_at - self._speech_stopped_at) * 1000.0
        if self._active == response_id or resp is None:
            self._active = None
        actions.append(ResponseFinished(response_id, status, reason, usage, latency))
        if self._pending_create and self._active is None:
            self._pending_create = False
            actions.extend(self.request_response())
        self._forget_old_responses()
        return actions

    def _forget_old_responses(self) -> None:
        """Keep the records of the latest ``RECENT_RESPONSES`` responses only, so an hour-long
        session holds (and scans) no more than a minute-long one."""
        for table in (self._responses, self._audio_frames, self._transcripts):
            while len(table) > RECENT_RESPONSES:
                del table[next(iter(table))]  # dicts keep insertion order: the oldest first
        if len(self._interrupted) > 2 * RECENT_RESPONSES:
            self._interrupted &= set(self._responses) | {self._active or ""}
        if len(self._truncated) > 2 * RECENT_RESPONSES:
            self._truncated &= set(self._audio_frames)

    def _on_error(self, event: ev.ServerEvent, now: float) -> list[Action]:
        err = event.obj("error")
        code = str(err.get("code") or "")
        message = str(err.get("message") or "no message")
        error_type = str(err.get("type") or "error")
        benign = code in BENIGN_ERROR_CODES
        if (
            code == "conversation_already_has_active_response"
            and err.get("event_id") == self._last_create_id
        ):
            self._pending_create = True
        rejected_config = (
            not self.ready
            and self._update_event_id is not None
            and err.get("event_id") == self._update_event_id
        )
        fatal = code in FATAL_ERROR_CODES or rejected_config
        if rejected_config:
            message = f"session.update rejected: {message}"
        return [ServiceError(code, message, error_type, benign, fatal)]


_HANDLERS = {
    "session.created": VoiceLiveSession._on_session_created,
    "session.updated": VoiceLiveSession._on_session_updated,
    "input_audio_buffer.speech_started": VoiceLiveSession._on_speech_started,
    "input_audio_buffer.speech_stopped": VoiceLiveSession._on_speech_stopped,
    "conversation.item.input_audio_transcription.delta": VoiceLiveSession._on_transcription_delta,
    "conversation.item.input_audio_transcription.completed": (
        VoiceLiveSession._on_transcription_completed
    ),
    "conversation.item.input_audio_transcription.failed": VoiceLiveSession._on_transcription_failed,
    "response.created": VoiceLiveSession._on_response_created,
    "response.audio.delta": VoiceLiveSession._on_audio_delta,
    "response.audio_transcript.delta": VoiceLiveSession._on_transcript_delta,
    "response.audio_transcript.done": VoiceLiveSession._on_transcript_done,
    "response.text.delta": VoiceLiveSession._on_text_delta,
    "response.text.done": VoiceLiveSession._on_text_done,
    "response.audio_timestamp.delta": VoiceLiveSession._on_timestamp,
    "response.function_call_arguments.done": VoiceLiveSession._on_function_call_done,
    "response.done": VoiceLiveSession._on_response_done,
    "error": VoiceLiveSession._on_error,
}
