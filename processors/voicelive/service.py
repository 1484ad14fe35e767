"""``VoiceLiveAgentService``: the pipecat processor that talks to a Voice Live agent or model.

It owns one :class:`VoiceLiveConnection`, feeds everything through the sans-I/O
:class:`VoiceLiveSession`, and turns the session's actions into standard pipecat frames:
``TTSAudioRawFrame`` (24 kHz, ``context_id`` = the response item id), ``TTSTextFrame``,
``TranscriptionFrame`` (pushed downstream, uninterruptible), ``UserStarted/StoppedSpeakingFrame``,
an ``InterruptionFrame`` broadcast on ``speech_started`` so the output flushes at once, plus this
project's ``AgentTranscriptFrame`` and ``VoiceLiveEventFrame``. When the output exposes a
``PlaybackBuffer``, the truncation sent after a barge-in is the audio the listener actually heard.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    CancelWorkerFrame,
    EndFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InputAudioRawFrame,
    InputTextRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    StartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.text.base_text_aggregator import TextType

from processors.frames import (
    AgentTranscriptFrame,
    AgentTranscriptUrgentFrame,
    AudioNotSentFrame,
    ConnectionLostFrame,
    ReconnectedFrame,
    SessionStartedFrame,
    VoiceLiveEventFrame,
)
from processors.heard import HeardAudio
from processors.voicelive import actions as act
from processors.voicelive.connection import ConnectionSettings, VoiceLiveConnection
from processors.voicelive.endpoint import Model
from processors.voicelive.errors import ConnectionFailed, MalformedEvent, one_line
from processors.voicelive.inbound import InboundGuard
from processors.voicelive.reconnect import (
    Backoff,
    ConnectRate,
    open_with_retry,
    replays_history,
    resume_target,
    seconds_until_refresh,
)
from processors.voicelive.session_config import SessionConfig
from processors.voicelive.session_state import OUTPUT_RATE, VoiceLiveSession
from processors.voicelive.wire import parse_server_event
from transports.pcm import Chunker, PcmResampler, downmix, rms

FunctionHandler = Callable[[dict[str, Any] | str], Awaitable[Any]]
TOOL_TIMEOUT_S = 10.0  # a tool that has not answered by then gets an error result
RESPONSE_WAIT_S = 10.0  # how long after speech_stopped a response is still expected
MIC_SPEECH_RMS = 500  # a 40 ms chunk this loud (about -36 dBFS) may be the start of a turn
MIC_QUIET_S = 0.5  # a renewal waits until the microphone has been below that for this long
# a connection up this long (or that completed a response) was not flapping
HEALTHY_CONNECTION_S = 30.0
# Less than this is the ordinary start-up (the audio before the session is configured, about
# 0.1-0.3 s) and is not worth a line in the session log.
MIN_REPORTED_UNSENT_S = 0.5
NO_SESSION = "no session to send it to"
ERROR_LINE_CHARS = 300  # a server error is cut to this on the console
# Once the input is over no new speech comes, and a server's VAD ends a turn after its silence
# window (500 ms by default, a few seconds for semantic VAD): a turn still open 5 s later is a
# speech_stopped that will never come, and must not keep a WAV session alive.
TURN_CLOSE_S = 5.0
CLOSE_WAIT_S = 0.5  # a stop waits at most this long for a cancelled task or the peer's close


def _words(
    kind: type[AgentTranscriptFrame] | type[AgentTranscriptUrgentFrame], a: act.AgentTranscript
) -> Frame:
    """The frame carrying an agent transcript action."""
    return kind(
        text=a.text,
        modality=a.modality,
        response_id=a.response_id,
        item_id=a.item_id,
        interrupted=a.interrupted,
    )


class VoiceLiveAgentService(FrameProcessor):
    """Frames in, Voice Live protocol events over one WebSocket, frames out.

    Args:
        settings: where and how to connect (validated beforehand).
        session_config: the ``session.update`` to send on ``session.created``.
        playback: the output's ``PlaybackBuffer`` (``output.playback``), used to truncate the
            agent's item at what was really heard; without it no truncation is sent.
        input_chunk_ms: microphone audio is sent in appends of this duration.
        flush_wait_s: how long to wait for the output to confirm a flush before truncating.
        greeting: speak first, as soon as the session is ready: ``""`` lets the agent or model
            greet in its own words; a text instructs the first response (model mode) or is said
            as is (agent mode). ``None``: wait for the user.
        tool_timeout_s: a tool call that has not returned by then is answered with an error.

    Events: ``on_session_ready(service, session_dict)``, ``on_fatal_error(service, message)``.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        session_config: SessionConfig,
        *,
        playback: HeardAudio | None = None,
        input_chunk_ms: int = 40,
        flush_wait_s: float = 0.25,
        greeting: str | None = None,
        tool_timeout_s: float = TOOL_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.session_config = session_config
        self.playback = playback
        self.session = VoiceLiveSession(session_config.to_wire())
        self.failure: str | None = None
        self._input_rate = session_config.input_sample_rate
        self._input_channels = session_config.input_channels  # 2 with a client echo reference
        self._chunk_bytes = self._input_rate * input_chunk_ms // 1000 * 2 * self._input_channels
        self._warned_mono = False
        self._flush_wait_s = flush_wait_s
        self._chunker = Chunker(self._chunk_bytes)
        self._resampler: PcmResampler | None = None
        self._connection: VoiceLiveConnection | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._connector: asyncio.Task[None] | None = None
        self._closing = False
        self._tts_started: set[str] = set()
        self._functions: dict[str, FunctionHandler] = {}
        self._tool_timeout_s = tool_timeout_s
        self._tool_calls: set[asyncio.Task[None]] = set()
        self._user_speaking = False
        self._awaiting_response_since: float | None = None
        self._speech_started_at = 0.0
        self._input_over_at: float | None = None  # when the input said it has no more speech
        self._last_event_at = time.monotonic()  # when the last server event arrived
        self._backoff = Backoff()
        self._rate = ConnectRate()  # every connect: first, reconnects, renewals, retries
        self._refresher: asyncio.Task[None] | None = None
        self._session_news = asyncio.Event()  # set when a session event may have moved expires_at
        self._reconnect_reason: str | None = None
        self._connected_at = time.time()  # wall clock: compared with the session's expires_at
        self._connected_mono = time.monotonic()  # for how long the connection has lived
        self._completed_on_conn = False  # a response completed on the current connection
        self._created_on_conn = False  # session.created arrived on the current connection
        self._unsent_frames = 0  # microphone frames the connection could not take
        self._inbound = InboundGuard()  # receive budget per loop turn, flood detection
        self._mic_loud_at = 0.0  # when the microphone last sounded like speech (monotonic)
        self._reported_unsent = 0  # dropped + unsent frames already reported to the session log
        self._short_drops = 0  # consecutive connections lost soon after they opened
        self.reconnects = 0
        if greeting is not None:  # deferred by the session until session.updated
            model = isinstance(settings.target, Model)
            self.session.greet(
                instructions=greeting if model else None, text=None if model else greeting
            )
        self._register_event_handler("on_session_ready")
        self._register_event_handler("on_fatal_error")

    # -- public -------------------------------------------------------------------------------

    def register_function(self, name: str, handler: FunctionHandler) -> None:
        """Run ``handler(arguments)`` when the model calls tool ``name``.

        ``arguments`` is the model's JSON text. The result goes back as ``function_call_output``
        (a string as it is, anything else as JSON). A handler that raises, or has not returned
        after ``tool_timeout_s``, is answered with ``{"error": ...}`` and the session goes on.
        Declare the tool itself in ``SessionConfig.tools``.
        """
        self._functions[name] = handler

    @property
    def busy(self) -> bool:
        """True while connecting, while the user speaks, a response is expected or running.

        A response the user interrupted no longer counts; and once the server has said nothing
        for ``RESPONSE_WAIT_S`` nothing is going on (a lost ``speech_stopped`` or
        ``response.done`` must not keep a session up forever).
        """
        if not self.session.ready:
            # Connecting or reconnecting (bounded: it succeeds or gives up): the user's audio has
            # not reached the server yet, so the session is not idle.
            return self.failure is None and not self._closing
        now = time.monotonic()
        if now - self._last_event_at >= RESPONSE_WAIT_S:
            return False
        waiting = (
            self._awaiting_response_since is not None
            and now - self._awaiting_response_since < RESPONSE_WAIT_S
        )
        speaking = self._user_speaking and (
            self._input_over_at is None
            or now - max(self._input_over_at, self._speech_started_at) < TURN_CLOSE_S
        )
        active = self.session.active_response
        responding = active is not None and not self.session.is_interrupted(active)
        return speaking or waiting or responding or bool(self._tool_calls)

    def input_finished(self) -> None:
        """The input has no more speech (a WAV file is over): from now on, a user turn the server
        has not closed within ``TURN_CLOSE_S`` no longer keeps the session busy."""
        self._input_over_at = time.monotonic()

    # -- frames in ----------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Send microphone audio and typed turns; connect on start, disconnect on end/cancel."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self._audio_in(frame)
        elif isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            # Connecting runs beside the frames: a CancelFrame (Ctrl-C) must not queue behind it.
            self._connector = self.create_task(self._connect(), name="voicelive-connect")
        elif isinstance(frame, InputTextRawFrame):
            await self._run(self.session.user_text(frame.text))
            await self.push_frame(frame, direction)  # a typed user turn, for logs and views
        elif isinstance(frame, EndFrame):
            await self._run(self.session.close_transcripts())
            await self._report_unsent_audio(NO_SESSION)
            await self._disconnect(flush_s=1.0)
            await self.push_frame(frame, direction)
        elif isinstance(frame, CancelFrame):
            # The words of an answer cut short were heard: they go out ahead of the cancel.
            for a in self.session.close_transcripts():
                await self.push_frame(_words(AgentTranscriptUrgentFrame, a))
            await self._report_unsent_audio(NO_SESSION)
            await self._disconnect(flush_s=0.0)
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            await self.push_frame(frame, direction)
            # Someone else interrupted (not our own broadcast): stop the agent too.
            await self._run(self.session.local_interrupt(), broadcast=False)
        else:
            await self.push_frame(frame, direction)

    def _audio_in(self, frame: InputAudioRawFrame) -> None:
        pcm = self._session_channels(frame)
        if frame.sample_rate != self._input_rate:  # the transports deliver the session's rate
            if self._resampler is None or self._resampler.in_rate != frame.sample_rate:
                channels = self._input_channels
                self._resampler = PcmResampler(frame.sample_rate, self._input_rate, channels)
            pcm = self._resampler.resample(pcm)
        for chunk in self._chunker.feed(pcm):
            if rms(chunk, self._input_channels) >= MIC_SPEECH_RMS:  # the microphone's channel
                self._mic_loud_at = time.monotonic()
            for action in self.session.audio_in(chunk):
                if isinstance(action, act.Send):
                    conn = self._connection
                    if conn is None or not conn.is_open:  # closing: the next session gets it
                        self.session.audio_unsent(chunk)
                    elif not conn.send(action.event, audio=action.audio):  # a backed-up socket
                        self._unsent_frames += len(chunk) // 2

    def _session_channels(self, frame: InputAudioRawFrame) -> bytes:
        """The frame's audio with the session's channels: mono, or (microphone, reference)."""
        if self._input_channels == 1:
            return downmix(frame.audio, frame.num_channels)
        if frame.num_channels == 2:
            return frame.audio
        samples = np.frombuffer(frame.audio[: len(frame.audio) - len(frame.audio) % 2], "<i2")
        samples = samples[: len(samples) - len(samples) % frame.num_channels]
        frames = samples.reshape(-1, frame.num_channels)
        mic = frames[:, 0]
        if frame.num_channels == 1 and not self._warned_mono:  # no EchoReference before us
            self._warned_mono = True
            logger.warning(
                "client echo reference: the input is mono, channel 1 stays silent "
                "(put processors.echo_reference.EchoReference before the service)"
            )
        ref = np.zeros_like(mic) if frame.num_channels == 1 else frames[:, 1]
        return np.column_stack([mic, ref]).astype("<i2").tobytes()

    async def _report_unsent_audio(self, reason: str) -> None:
        """Tell the session log how much microphone audio never reached the server since the
        last report (dropped while no session was ready, or by a backed-up socket)."""
        # Audio still held for a session that never came counts too (released, it would not).
        total = self.session.audio_dropped_frames + self.session.gap_audio.held_frames
        total += self._unsent_frames
        seconds = (total - self._reported_unsent) / self._input_rate
        if seconds < MIN_REPORTED_UNSENT_S:
            return
        self._reported_unsent = total
        logger.warning(f"{seconds:.1f} s of your speech was not sent ({reason})")
        await self.push_frame(AudioNotSentFrame(seconds=round(seconds, 1), reason=reason))

    # -- connection ---------------------------------------------------------------------------

    def _current_settings(self) -> ConnectionSettings:
        """The settings for the next connect: a current agent resumes its conversation by id."""
        target = resume_target(self.settings.target, self.session.thread_id)
        return (
            self.settings
            if target is self.settings.target
            else dataclasses.replace(self.settings, target=target)
        )

    async def _connect(self) -> None:
        try:
            settings = self._current_settings()
            conn = await open_with_retry(settings, self._backoff, attempts=5, rate=self._rate)
        except ConnectionFailed as exc:
            await self._fatal(str(exc))
            return
        self._use(conn)
        self._refresher = self.create_task(self._refresh_before_expiry(), name="voicelive-refresh")

    def _use(self, conn: VoiceLiveConnection) -> None:
        self._connection = conn
        self._created_on_conn = False
        self._connected_at = time.time()
        self._connected_mono = time.monotonic()
        self._completed_on_conn = False
        self._receiver = self.create_task(self._receive_loop(conn), name="voicelive-receive")

    async def _disconnect(self, *, flush_s: float) -> None:
        """Stop connecting, receiving and renewing, and close the socket with 1000.

        Bounded in every state (connecting, handshake, backoff, renewing): the tasks are cancelled
        together, queued events get ``flush_s`` to leave (an ``EndFrame`` keeps the last appends;
        a cancel drops them) and the peer ``CLOSE_WAIT_S`` to answer the close.
        """
        self._closing = True
        current = asyncio.current_task()
        tasks = [
            t
            for t in (self._connector, self._refresher, self._receiver)
            if t is not None and t is not current
        ]
        tasks += list(self._tool_calls)
        self._connector = self._refresher = self._receiver = None
        await asyncio.gather(*(self.cancel_task(t, timeout=CLOSE_WAIT_S) for t in tasks))
        conn, self._connection = self._connection, None
        if conn is not None:
            await conn.close(1000, flush_s=flush_s)
        try:
            await asyncio.wait_for(self.settings.credentials.close(), CLOSE_WAIT_S)
        except TimeoutError:
            logger.debug("the Entra ID credential did not close in time")

    async def _receive_loop(self, conn: VoiceLiveConnection) -> None:
        ready_by = time.monotonic() + conn.settings.session_timeout
        while True:
            try:
                if self.session.ready:
                    message = await conn.recv()
                else:  # a server that never creates the session must not hold the user forever
                    message = await conn.recv(timeout=ready_by - time.monotonic())
            except TimeoutError:
                if self._closing or conn is not self._connection:
                    return
                waited = conn.settings.session_timeout
                missing = (
                    "did not answer session.update"
                    if self._created_on_conn
                    else "sent no session.created"
                )
                await self._reconnect(
                    f"Voice Live accepted the connection but {missing} within {waited:g} s"
                )
                return
            except ConnectionFailed as exc:
                if self._closing or conn is not self._connection:
                    return
                if exc.retryable:
                    await self._reconnect(str(exc))
                else:
                    await self._fatal(str(exc))
                return
            now = self._last_event_at = time.monotonic()
            guard = self._inbound
            if guard.must_yield(now):
                # Buffered messages come back without suspending: let the microphone's appends,
                # the output and the keyboard run between slices of a flood.
                await asyncio.sleep(0)
            news = guard.observe(now)
            if news is not None:
                loud, line = news  # the session's first flood is a warning; the rest go to the log
                logger.bind(console=loud).log("WARNING" if loud else "INFO", line)
            try:
                event = parse_server_event(message)
            except MalformedEvent as exc:
                logger.warning(f"Skipped malformed server event: {exc}")
                continue
            try:
                actions = self.session.receive(event, now)
                if guard.flooding and not actions:
                    guard.shed += 1  # a flood's inert events are counted, not logged one by one
                # 25 a second; logging them would cost more than playing them
                elif not event.carries_audio:
                    await self.push_frame(
                        VoiceLiveEventFrame(event=event.data, direction="received", at=time.time())
                    )
                await self._run(actions)
            except Exception as exc:  # one bad event must not end the session
                logger.opt(exception=exc).warning(
                    f"Skipped server event {event.type!r}: it could not be handled "
                    f"({exc.__class__.__name__}: {exc})"
                )

    async def _reconnect(self, reason: str) -> None:
        """The connection broke: open a new one and resume the conversation.

        The first reconnect is immediate. Connections that keep dying soon after they open (a
        sick server, a proxy cutting sessions) are retried with backoff and given up after
        ``backoff.attempts`` in a row: Voice Live allows 30 new connections a minute.
        """
        healthy = (
            self._completed_on_conn
            or time.monotonic() - self._connected_mono >= HEALTHY_CONNECTION_S
        )
        self._short_drops = 1 if healthy else self._short_drops + 1
        if self._short_drops > self._backoff.attempts:
            await self._fatal(
                f"{reason}; the connection dropped soon after opening "
                f"{self._short_drops} times in a row, giving up"
            )
            return
        delay = self._backoff.delay(self._short_drops - 1) if self._short_drops > 1 else 0.0
        wait = f" in {delay:.1f} s" if delay else ""
        held = f"{self.session.gap_audio.max_seconds:g} s"
        logger.warning(
            f"{reason}: reconnecting{wait} (microphone audio is kept, the last {held}, "
            "until the session is back)"
        )
        # Before any await: from here on microphone audio is held, not sent into the old socket.
        cut_short = self._lose_connection()
        old, self._connection = self._connection, None
        await self.push_frame(ConnectionLostFrame(reason=reason))
        if old is not None:
            await old.abort()
        await self._run(cut_short)
        self._user_speaking = False
        if delay:
            await asyncio.sleep(delay)
        try:
            conn = await open_with_retry(self._current_settings(), self._backoff, rate=self._rate)
        except ConnectionFailed as exc:
            await self._fatal(f"could not reconnect: {exc}")
            return
        if self._closing:
            await conn.close(1000)
            return
        self.reconnects += 1
        self._reconnect_reason = reason
        self._use(conn)

    async def _refresh_before_expiry(self) -> None:
        """Replace the connection before ``session.expires_at`` (or 60 min), at a quiet moment."""
        while not self._closing:
            self._session_news.clear()
            wait = seconds_until_refresh(self.session.expires_at, self._connected_at)
            # A renewal is optional: it keeps to the connect rate's average spacing as well.
            wait = max(wait, self._rate.wait(time.monotonic(), optional=True))
            if wait > 0:
                try:  # the session's expires_at usually arrives after this task starts
                    await asyncio.wait_for(self._session_news.wait(), timeout=min(wait, 30.0))
                except TimeoutError:
                    pass
                continue
            await self._wait_quiet(45.0)
            await self._switch_connection("the session expires soon")

    async def _wait_quiet(self, at_most_s: float) -> None:
        """Until nobody speaks and no answer is expected or running (at most ``at_most_s``).

        Nobody speaks: the server said so, and the microphone itself has been quiet for
        ``MIC_QUIET_S``: the server's ``speech_started`` comes a few hundred ms into a turn, and a
        switch in that window would leave the turn's start with the old session.
        """
        deadline = time.monotonic() + at_most_s
        while time.monotonic() < deadline and (
            self.busy or time.monotonic() - self._mic_loud_at < MIC_QUIET_S
        ):
            await asyncio.sleep(0.05)

    async def _switch_connection(self, reason: str) -> None:
        """Open the new connection first, then close the old one with 1000."""
        try:
            new = await open_with_retry(self._current_settings(), self._backoff, rate=self._rate)
        except ConnectionFailed as exc:
            logger.warning(
                f"could not renew the connection ahead of expiry ({exc}); keeping the current one"
            )
            self._connected_at = time.time() - 30.0  # try again a little later, not in a tight loop
            return
        # The user may have started speaking while the new connection opened: a turn must not
        # be split between the two sessions, so the switch waits for the next quiet moment.
        await self._wait_quiet(10.0)
        old, old_receiver = self._connection, self._receiver
        # Before any await: the old connection gets nothing more; audio is held for the new one.
        cut_short = self._lose_connection()
        self._connection = None
        if old_receiver is not None:
            await self.cancel_task(old_receiver, timeout=1.0)
        await self._run(cut_short)
        self.reconnects += 1
        self._reconnect_reason = reason
        self._use(new)
        if old is not None:
            await old.close(1000)

    def _lose_connection(self) -> list[act.Action]:
        """The session forgets the connection now (synchronously): audio is held from here on."""
        return self.session.connection_lost(replay_history=replays_history(self.settings.target))

    async def _fatal(self, message: str) -> None:
        if self.failure is not None:
            return
        self.failure = message
        logger.bind(console=False).error(message)  # the script prints it once, as its last word
        await self._report_unsent_audio(NO_SESSION)
        await self._call_event_handler("on_fatal_error", message)
        await self.push_error(message, force_treat_as_permanent=True)
        await self.push_frame(CancelWorkerFrame(reason=message), FrameDirection.UPSTREAM)

    # -- actions ------------------------------------------------------------------------------

    async def _send(self, a: act.Send) -> None:
        if self._connection is None or not self._connection.send(a.event, audio=a.audio):
            return
        if not a.audio:  # 25 appends a second: logging them would cost more than sending them
            await self.push_frame(
                VoiceLiveEventFrame(event=a.event, direction="sent", at=time.time())
            )

    async def _run(self, actions: list[act.Action], *, broadcast: bool = True) -> None:
        for action in actions:
            await self._apply(action, broadcast)

    async def _apply(self, a: act.Action, broadcast: bool) -> None:  # noqa: C901 - a flat dispatch
        if isinstance(a, act.Send):
            await self._send(a)
        elif isinstance(a, act.PlayAudio):
            if a.first and a.response_id not in self._tts_started:
                self._tts_started.add(a.response_id)
                await self.push_frame(TTSStartedFrame(context_id=a.item_id))
            await self.push_frame(TTSAudioRawFrame(a.pcm, OUTPUT_RATE, 1, context_id=a.item_id))
        elif isinstance(a, act.AgentText):
            frame = (
                TTSTextFrame(a.delta, TextType.WORD, context_id=a.item_id)
                if a.modality == "audio"
                else LLMTextFrame(a.delta)
            )
            await self.push_frame(frame)
        elif isinstance(a, act.SpeechStarted):
            logger.info("User started speaking")
            self._user_speaking = True
            self._speech_started_at = time.monotonic()
            await self.broadcast_frame(UserStartedSpeakingFrame)
            await self._interrupt(a.interruption, broadcast=True)
        elif isinstance(a, act.Interruption):
            await self._interrupt(a, broadcast=broadcast)
        elif isinstance(a, act.SpeechStopped):
            self._user_speaking = False
            self._awaiting_response_since = time.monotonic()
            await self.broadcast_frame(UserStoppedSpeakingFrame)
        elif isinstance(a, act.UserTranscript):
            await self._push_user_transcript(a)
        elif isinstance(a, act.AgentTranscript):
            await self.push_frame(_words(AgentTranscriptFrame, a))
        elif isinstance(a, act.ResponseStarted):
            self._awaiting_response_since = None
            await self.push_frame(LLMFullResponseStartFrame())
        elif isinstance(a, act.ResponseFinished):
            await self._response_finished(a)
        elif isinstance(a, act.SessionCreated):
            logger.info(f"Session created: {a.session_id}")
            self._created_on_conn = True
            self._session_news.set()
            if a.session_id:
                await self.push_frame(SessionStartedFrame(session_id=a.session_id))
        elif isinstance(a, act.SessionReady):
            logger.info(f"Session updated: {a.session_id}")
            self._session_news.set()
            gap = (
                "while the connection was replaced"
                if self._reconnect_reason
                else "before the session was ready"
            )
            await self._report_unsent_audio(gap)
            if self._reconnect_reason is not None:
                reason, self._reconnect_reason = self._reconnect_reason, None
                logger.info(f"Reconnected ({reason})")
                await self.push_frame(ReconnectedFrame(reason=reason, session_id=a.session_id))
            await self._call_event_handler("on_session_ready", a.session)
        elif isinstance(a, act.FunctionCall):
            await self._call_function(a)
        elif isinstance(a, act.ServiceError):
            await self._service_error(a)
        elif isinstance(a, act.WordTiming):
            logger.trace(f"word {a.text!r} at {a.offset_ms} ms for {a.duration_ms} ms")
        elif isinstance(a, act.Notice):
            logger.log(a.level.upper(), a.message)

    async def _push_user_transcript(self, a: act.UserTranscript) -> None:
        stamp = datetime.now(UTC).isoformat()
        if a.final:
            frame: Frame = TranscriptionFrame(a.text, "user", stamp, finalized=True)
            frame.interruptible = False
        else:
            frame = InterimTranscriptionFrame(a.text, "user", stamp)
        await self.push_frame(frame)

    async def _response_finished(self, a: act.ResponseFinished) -> None:
        if a.status == "completed":
            self._completed_on_conn = True
        if a.response_id in self._tts_started:
            self._tts_started.discard(a.response_id)
            await self.push_frame(TTSStoppedFrame())
        await self.push_frame(LLMFullResponseEndFrame())
        latency = (
            f", first audio {a.first_audio_latency_ms:.0f} ms after speech end"
            if a.first_audio_latency_ms is not None
            else ""
        )
        logger.info(
            f"Response done: {a.status}{' (' + a.reason + ')' if a.reason else ''}{latency}"
        )
        if a.usage:
            logger.debug(f"Usage: {a.usage}")

    async def _interrupt(self, interruption: act.Interruption, *, broadcast: bool) -> None:
        """Flush local playback now, then truncate the agent's item at what was heard."""
        playback = self.playback
        since = playback.flush_count if playback is not None else 0
        if broadcast:
            await self.broadcast_interruption()
        heard_ms: int | None = None
        if playback is not None and interruption.item_id:
            if not await playback.wait_flushed(since, self._flush_wait_s):
                logger.warning(
                    "output did not confirm the flush in time; truncating at what it reports played"
                )
            heard_ms = playback.played_ms(interruption.item_id)
        await self._run(self.session.truncate_heard(interruption, heard_ms))

    async def _service_error(self, a: act.ServiceError) -> None:
        """One line for the user, cut to ``ERROR_LINE_CHARS``; the whole message goes to the
        technical log (a server once sent a 200 KB message, printed in full, twice)."""
        text = f"Voice Live error {a.code or a.error_type}: {a.message}"
        if a.benign:
            logger.debug(text)
            return
        line = one_line(text, ERROR_LINE_CHARS)
        if len(line) > ERROR_LINE_CHARS:  # it was cut
            logger.bind(console=False).error(text)
            line += " (the whole message is in voicelive.log)"
        if a.fatal:
            await self._fatal(line)
        else:
            logger.error(line)
            await self.push_error(line)

    async def _call_function(self, a: act.FunctionCall) -> None:
        """Run the tool in a task of its own: events keep flowing while it works."""
        task = self.create_task(self._run_tool(a), name=f"voicelive-tool-{a.name}")
        self._tool_calls.add(task)
        task.add_done_callback(self._tool_calls.discard)

    async def _run_tool(self, a: act.FunctionCall) -> None:
        """Call the handler (bounded by ``tool_timeout_s``) and send its output, or an error."""
        logger.info(f"Tool call: {a.name}({a.arguments})")
        call = {"function_name": a.name, "tool_call_id": a.call_id, "arguments": a.arguments}
        await self.push_frame(FunctionCallInProgressFrame(**call))
        output, error = await self._tool_output(a)
        if error is not None:
            logger.warning(f"Tool {a.name!r}: {error}; the model is told so")
            output = json.dumps({"error": error}, ensure_ascii=False)
        else:
            logger.info(f"Tool result: {a.name} -> {output}")
        await self.push_frame(FunctionCallResultFrame(**call, result=output, error=error))
        if self._connection is None:
            logger.warning(f"The result of tool {a.name!r} is dropped: the connection was lost")
            return
        self._awaiting_response_since = time.monotonic()
        await self._run(self.session.function_result(a.call_id, output))

    async def _tool_output(self, a: act.FunctionCall) -> tuple[str, str | None]:
        """(output, None) or ("", what went wrong)."""
        handler = self._functions.get(a.name)
        if handler is None:
            return "", f"there is no tool named {a.name!r}"
        try:
            call = asyncio.ensure_future(handler(a.arguments))
        except Exception as exc:  # a handler that is not a coroutine function, or raised at once
            return "", f"{a.name} failed: {exc.__class__.__name__}: {exc}"
        try:
            done, _ = await asyncio.wait({call}, timeout=self._tool_timeout_s)
        finally:
            if not call.done():  # timed out, or the session is closing
                call.cancel()
        if not done:
            return "", f"{a.name} did not answer within {self._tool_timeout_s:g} s"
        exc = call.exception()
        if exc is not None:
            return "", f"{a.name} failed: {exc.__class__.__name__}: {exc}"
        result = call.result()
        if not isinstance(result, str):
            result = json.dumps(result, ensure_ascii=False, default=str)
        return result, None
