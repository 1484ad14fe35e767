"""One Voice Live session on the local server: the client-event dispatcher of a WebSocket
connection. Sends ``session.created``, applies ``session.update``, feeds input audio to a worker
(VAD + recognition off the event loop), creates user/assistant items, starts and cancels
responses, and answers bad input with the real service's error events without closing."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from localserver.audio_input import Committed, InputAudio, VadSpeechStarted, VadSpeechStopped
from localserver.brain import Brain
from localserver.client_events import ClientEventError, check_event, check_item
from localserver.conversation import Conversation, ItemNotFound
from localserver.responder import Pacing, ResponseRunner
from localserver.server_events import (
    error_event,
    new_id,
    normalise_client_item,
    server_event,
    user_audio_item,
    warning_event,
)
from localserver.session_config import (
    SessionUpdateRejected,
    apply_update,
    default_session,
    echo_reference,
    input_channels,
    input_rate,
    vad_settings,
)
from localserver.tools import (
    FunctionCallRunner,
    ToolCall,
    choose_tool,
    function_tools,
    tool_phrases,
)

log = logging.getLogger(__name__)
MAX_APPEND_BYTES = 15 * 1024 * 1024


@dataclass(frozen=True)
class ConnectionInfo:
    """What the connection URL selected: ``mode`` is "model", "agent" or "agent-classic"."""

    mode: str
    model: str
    agent_name: str | None = None
    agent_id: str | None = None
    project: str | None = None
    agent_version: str | None = None
    conversation_id: str | None = None


@dataclass
class SessionOptions:
    """Server-wide behaviour of sessions."""

    pacing: Pacing = field(default_factory=Pacing)
    ttl_s: int = 3600


class ServerSession:
    """The protocol state machine of one connection; ``send`` writes a server event."""

    def __init__(
        self, send: Any, info: ConnectionInfo, brain: Brain, options: SessionOptions
    ) -> None:
        self._send_raw, self.info, self.brain, self.options = send, info, brain, options
        agent = None
        if info.mode != "model":
            agent = {
                "type": "agent",
                "name": info.agent_name or brain.name,
                "description": brain.description,
                "agent_id": info.agent_id or f"{info.agent_name}:{info.agent_version or '1'}",
                "thread_id": info.conversation_id or new_id("thread"),
            }
        self.config = default_session(new_id("sess"), info.model, agent, options.ttl_s)
        self.conversation = Conversation()
        self.conversation_id = new_id("conv")
        self._queue: asyncio.Queue[tuple[str, Any, str | None]] = asyncio.Queue()
        self._input = self._new_input()
        self._runner: ResponseRunner | FunctionCallRunner | None = None
        self._runner_task: asyncio.Task[None] | None = None
        self._pending_item: str | None = None
        self._text_inputs: dict[str, str] = {}
        self.audio_received_ms = 0

    # ---- plumbing -------------------------------------------------------------------------
    async def send(self, event: dict[str, Any]) -> None:
        """Write one server event to the client."""
        await self._send_raw(json.dumps(event))

    async def _error(
        self, code: str | None, message: str, param: str | None, event_id: str | None
    ) -> None:
        await self.send(error_event(code, message, param=param, client_event_id=event_id))

    def _phrases(self) -> list[str] | None:
        """What the recogniser listens for: the session's phrase list (else the brain's known
        questions), plus the questions that ask for a declared tool."""
        transcription = self.config.get("input_audio_transcription") or {}
        phrases = list(transcription.get("phrase_list") or []) or list(self.brain.known_phrases)
        if self.info.mode == "model":
            phrases += [p for p in tool_phrases(function_tools(self.config)) if p not in phrases]
        return phrases or None

    def _new_input(self) -> InputAudio:
        return InputAudio(
            self.config["input_audio_format"],
            input_rate(self.config),
            vad_settings(self.config["turn_detection"]),
            self._phrases(),
            echo_reference(self.config),
        )

    @property
    def response_active(self) -> bool:
        """Whether a response is in progress."""
        return self._runner_task is not None and not self._runner_task.done()

    async def run(self, messages: AsyncIterator[str | bytes]) -> None:
        """Serve the connection until the client goes away."""
        await self.send(server_event("session.created", session=self.config))
        worker = asyncio.create_task(self._audio_worker())
        try:
            async for message in messages:
                await self.handle(message)
        finally:
            await self._shutdown(worker)

    async def _shutdown(self, worker: asyncio.Task[None]) -> None:
        """Stop the response and the audio worker; the worker is never cancelled mid-thread, so
        its recogniser can go back to the pool safely."""
        if self._runner:
            self._runner.cancel("client_cancelled")
        while not self._queue.empty():
            self._queue.get_nowait()
        await self._queue.put(("stop", None, None))
        done, _ = await asyncio.wait({worker}, timeout=10)
        if self._runner_task is not None:
            await asyncio.wait({self._runner_task}, timeout=5)
        for task in (worker, self._runner_task):
            if (
                task is not None
                and task.done()
                and not task.cancelled()
                and task.exception() is not None
            ):
                log.debug("session task ended with %r (client gone)", task.exception())
        if worker in done:
            self._input.close()
        else:
            worker.cancel()

    async def handle(self, message: str | bytes) -> None:
        """Dispatch one client frame; every failure becomes an ``error`` event."""
        try:
            event = json.loads(message)
        except (ValueError, UnicodeDecodeError) as exc:
            await self._error(
                "invalid_json",
                f"The server could not parse the client event as JSON: {exc}.",
                None,
                None,
            )
            return
        event_id = (
            event.get("event_id")
            if isinstance(event, dict) and isinstance(event.get("event_id"), str)
            else None
        )
        try:
            kind = check_event(event)
            await getattr(self, "_on_" + kind.replace(".", "_"))(event, event_id)
        except ClientEventError as exc:
            await self._error(exc.code, exc.message, exc.param, event_id)
        except SessionUpdateRejected as exc:
            await self._error(exc.code, exc.message, exc.param, event_id)

    # ---- session --------------------------------------------------------------------------
    async def _on_session_update(self, event: dict[str, Any], event_id: str | None) -> None:
        old = self.config
        self.config, ignored = apply_update(
            self.config, event["session"], self.info.mode != "model"
        )
        for name in ignored:
            await self.send(
                warning_event(
                    "unsupported_parameter",
                    f"'session.{name}' is not supported in agent mode and was ignored.",
                    f"session.{name}",
                )
            )
        shape = lambda c: (  # noqa: E731
            c["input_audio_format"],
            input_rate(c),
            echo_reference(c),  # "client" exactly when the input is stereo
        )
        if shape(old) != shape(self.config):
            await self._queue.put(("reset", None, None))
        else:
            await self._queue.put(
                ("config", (vad_settings(self.config["turn_detection"]), self._phrases()), None)
            )
        await self.send(server_event("session.updated", session=self.config))

    # ---- input audio ----------------------------------------------------------------------
    async def _on_input_audio_buffer_append(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        audio = event["audio"]
        if len(audio) * 3 // 4 > MAX_APPEND_BYTES:
            raise ClientEventError(
                "string_above_max_length",
                f"Invalid 'audio': string too long. Expected at most "
                f"{MAX_APPEND_BYTES} bytes of audio, but got {len(audio) * 3 // 4}.",
                "audio",
            )
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise ClientEventError(
                "invalid_value", "Invalid 'audio'. Expected base64-encoded audio data.", "audio"
            ) from None
        width = 1 if self.config["input_audio_format"].startswith("g711") else 2
        frame_bytes = width * input_channels(self.config)
        self.audio_received_ms += len(data) * 1000 // (frame_bytes * input_rate(self.config))
        await self._queue.put(("audio", data, event_id))

    async def _on_input_audio_buffer_commit(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        await self._queue.put(("commit", None, event_id))

    async def _on_input_audio_buffer_clear(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        await self._queue.put(("clear", None, event_id))

    async def _audio_worker(self) -> None:
        """Runs the input pipeline in a thread, one queued operation after another."""
        while True:
            kind, payload, event_id = await self._queue.get()
            if kind == "stop":
                return
            if kind == "audio":
                while not self._queue.empty() and self._queue._queue[0][0] == "audio":  # type: ignore[attr-defined]
                    payload += self._queue.get_nowait()[1]
                for signal in await asyncio.to_thread(self._input.process, payload):
                    await self._on_signal(signal)
            elif kind == "commit":
                committed = await asyncio.to_thread(self._input.commit)
                if committed is None:
                    await self._error(
                        "input_audio_buffer_commit_empty",
                        "Error committing input audio buffer: buffer "
                        f"too small. Expected at least 100ms of audio, but buffer only has "
                        f"{self._input.buffered_ms:.2f}ms of audio.",
                        None,
                        event_id,
                    )
                else:
                    await self._commit_user_turn(committed)
            elif kind == "clear":
                await asyncio.to_thread(self._input.clear)
                self._pending_item = None
                await self.send(server_event("input_audio_buffer.cleared"))
            elif kind == "config":
                self._input.configure(payload[0])
                self._input.set_phrases(payload[1])
            # In queue order: the input has taken exactly the audio received before this.
            elif kind == "played" and self._input.played is not None:
                self._input.played.sent(self._input.samples_in, *payload)
            elif kind == "unplayed" and self._input.played is not None:
                self._input.played.stop(self._input.samples_in)
            elif kind == "reset":
                self._input.close()
                self._input = await asyncio.to_thread(self._new_input)

    async def _on_signal(self, signal: VadSpeechStarted | VadSpeechStopped) -> None:
        if isinstance(signal, VadSpeechStarted):
            self._pending_item = new_id("item")
            await self.send(
                server_event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=signal.audio_start_ms,
                    item_id=self._pending_item,
                )
            )
            vad = self._input.vad
            if vad is not None and vad.interrupt_response and self._runner and self.response_active:
                await self._cancel_response("turn_detected")
            return
        item_id = self._pending_item or new_id("item")
        await self.send(
            server_event(
                "input_audio_buffer.speech_stopped",
                audio_end_ms=signal.audio_end_ms,
                item_id=item_id,
            )
        )
        await self._commit_user_turn(
            Committed(signal.audio_end_ms - signal.audio_start_ms, signal.transcript), item_id
        )
        vad = self._input.vad
        if vad is not None and vad.create_response and not self.response_active:
            await self._start_response({}, None)

    async def _commit_user_turn(self, committed: Committed, item_id: str | None = None) -> None:
        item_id = item_id or self._pending_item or new_id("item")
        self._pending_item = None
        _, before = self.conversation.add(user_audio_item(item_id), heard=committed.transcript)
        await self.send(
            server_event("input_audio_buffer.committed", previous_item_id=before, item_id=item_id)
        )
        await self.send(
            server_event(
                "conversation.item.created", previous_item_id=before, item=user_audio_item(item_id)
            )
        )
        if self.config.get("input_audio_transcription"):
            self.conversation.get(item_id).item["content"][0]["transcript"] = committed.transcript
            await self.send(
                server_event(
                    "conversation.item.input_audio_transcription.completed",
                    item_id=item_id,
                    content_index=0,
                    transcript=committed.transcript,
                )
            )

    # ---- conversation items ---------------------------------------------------------------
    async def _on_conversation_item_create(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        item = check_item(event["item"])
        previous = event.get("previous_item_id")
        if previous not in (None, "root"):
            self._get_item(previous, "previous_item_id")
        item_id = item.get("id") or new_id("item")
        echoed = normalise_client_item(item, item_id)
        _, before = self.conversation.add(echoed, previous)
        await self.send(
            server_event("conversation.item.created", previous_item_id=before, item=echoed)
        )

    def _get_item(self, item_id: Any, param: str = "item_id") -> Any:
        try:
            return self.conversation.get(item_id)
        except ItemNotFound:
            raise ClientEventError(
                "item_not_found", f"Item with item_id '{item_id}' not found.", param
            ) from None

    async def _on_conversation_item_retrieve(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        self._get_item(event["item_id"])
        await self.send(
            server_event(
                "conversation.item.retrieved", item=self.conversation.retrieved(event["item_id"])
            )
        )

    async def _on_conversation_item_delete(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        self._get_item(event["item_id"])
        self.conversation.delete(event["item_id"])
        await self.send(server_event("conversation.item.deleted", item_id=event["item_id"]))

    async def _on_conversation_item_truncate(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        self._get_item(event["item_id"])
        try:
            self.conversation.truncate(event["item_id"], int(event["audio_end_ms"]))
        except ValueError as exc:
            raise ClientEventError("invalid_value", str(exc), "audio_end_ms") from None
        await self._queue.put(("unplayed", None, None))  # the client stopped
        await self.send(
            server_event(
                "conversation.item.truncated",
                item_id=event["item_id"],
                content_index=event.get("content_index", 0),
                audio_end_ms=event["audio_end_ms"],
            )
        )

    async def _on_input_text_delta(self, event: dict[str, Any], event_id: str | None) -> None:
        self._text_inputs[event["id"]] = self._text_inputs.get(event["id"], "") + str(
            event["delta"]
        )

    async def _on_input_text_done(self, event: dict[str, Any], event_id: str | None) -> None:
        text = self._text_inputs.pop(event["id"], "")
        item = {
            "id": event["id"],
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        await self._on_conversation_item_create({"item": item}, event_id)

    async def _on_output_audio_buffer_clear(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        await self.send(server_event("output_audio_buffer.cleared"))

    # ---- responses ------------------------------------------------------------------------
    async def _on_response_create(self, event: dict[str, Any], event_id: str | None) -> None:
        if self.response_active and self._runner:
            raise ClientEventError(
                "conversation_already_has_active_response",
                "Conversation already has an active "
                f"response in progress: {self._runner.id}. Wait until the response is finished "
                "before creating a new one.",
                None,
            )
        await self._start_response(event.get("response") or {}, event_id)

    async def _on_response_cancel(self, event: dict[str, Any], event_id: str | None) -> None:
        wanted = event.get("response_id")
        if (
            not self.response_active
            or self._runner is None
            or (wanted and wanted != self._runner.id)
        ):
            raise ClientEventError(
                "response_cancel_not_active", "Cancellation failed: no active response found", None
            )
        await self._cancel_response("client_cancelled")

    async def _cancel_response(self, reason: str) -> None:
        runner, task = self._runner, self._runner_task
        if runner is None or task is None:
            return
        runner.cancel(reason)
        await self._queue.put(("unplayed", None, None))  # the client stops
        await asyncio.wait({task}, timeout=5)

    async def _start_response(self, overrides: dict[str, Any], event_id: str | None) -> None:
        params = {
            "modalities": overrides.get("modalities") or self.config["modalities"],
            "voice": overrides.get("voice") or self.config["voice"],
            "output_audio_format": overrides.get("output_audio_format")
            or self.config["output_audio_format"]
            or "pcm16",
            "temperature": overrides.get("temperature", self.config.get("temperature")),
            "max_output_tokens": overrides.get(
                "max_output_tokens", self.config.get("max_response_output_tokens", "inf")
            ),
            "metadata": overrides.get("metadata"),
        }
        pregenerated = overrides.get("pre_generated_assistant_message")
        call = None if pregenerated else self._tool_asked_for(overrides)
        if call is not None:
            self._runner = FunctionCallRunner(
                self.send,
                self.conversation,
                call,
                params,
                self.conversation_id,
                input_audio_ms=self.audio_received_ms,
            )
            self._runner_task = asyncio.create_task(self._runner.run())
            return
        stream = (
            _fixed_text(pregenerated)
            if pregenerated
            else self.brain.respond(self.conversation.history())
        )
        self._runner = ResponseRunner(
            self.send,
            self.conversation,
            stream,
            params,
            self.conversation_id,
            self.options.pacing,
            word_timestamps="word" in (self.config.get("output_audio_timestamp_types") or []),
            in_conversation=overrides.get("conversation", "auto") != "none",
            input_audio_ms=self.audio_received_ms,
            on_audio=self._sent_audio,
        )
        self._runner_task = asyncio.create_task(self._runner.run())

    def _sent_audio(self, pcm: np.ndarray, rate: int) -> None:
        """A response's audio went out: the server's own echo reference, if it keeps one."""
        if echo_reference(self.config) == "server":
            self._queue.put_nowait(("played", (pcm, rate), None))

    def _tool_asked_for(self, overrides: dict[str, Any]) -> ToolCall | None:
        """In model mode, the declared tool the user's last words ask for (None after a tool's
        output, so the answer is spoken from it)."""
        if self.info.mode != "model":
            return None
        history = self.conversation.history()
        if not history or history[-1].role != "user":
            return None
        chosen = {k: overrides[k] for k in ("tools", "tool_choice") if k in overrides}
        session = {**self.config, **chosen}
        return choose_tool(history[-1].text, function_tools(session))


async def _fixed_text(message: dict[str, Any]) -> AsyncIterator[str]:
    """The text of a ``pre_generated_assistant_message``, as one chunk."""
    texts = [str(p.get("text") or "") for p in message.get("content") or [] if isinstance(p, dict)]
    yield " ".join(t for t in texts if t)
