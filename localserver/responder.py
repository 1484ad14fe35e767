"""One response of the local server, from ``response.created`` to ``response.done``: the brain's
streamed text is spoken sentence by sentence (eSpeak in a worker thread) and sent as
``response.audio.delta`` with transcript deltas and word timestamps, paced like the real service
(a burst ahead of real-time playback, then ``pace`` x real time); text-only responses send
``response.text.delta``. Cancellation (client ``response.cancel`` or barge-in) stops the deltas and
ends with ``response.done`` status ``cancelled``."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from localserver.codecs import encode
from localserver.conversation import Conversation, Entry
from localserver.server_events import assistant_item, new_id, response_object, server_event, usage
from localserver.session_config import output_rate
from localserver.tts import SpokenWord, synthesize_async

EventSender = Callable[[dict[str, Any]], Awaitable[None]]
_SENTENCE_END = re.compile(r"[.!?;:]\s*$")


@dataclass(frozen=True)
class Pacing:
    """How fast response audio is sent: ``lead_ms`` ahead of a playback clock running at
    ``pace`` x real time (``pace <= 0`` = as fast as possible), in ``chunk_ms`` deltas."""

    lead_ms: int = 1500
    pace: float = 1.0
    chunk_ms: int = 100


class Cancelled(Exception):
    """The response was cancelled."""


class ResponseRunner:
    """Produces one response; :meth:`run` sends every event, :meth:`cancel` stops it."""

    def __init__(
        self,
        send: EventSender,
        conversation: Conversation,
        stream: AsyncIterator[str],
        params: dict[str, Any],
        conversation_id: str,
        pacing: Pacing,
        *,
        word_timestamps: bool,
        in_conversation: bool = True,
        input_audio_ms: int = 0,
        on_audio: Callable[[np.ndarray, int], None] | None = None,
    ) -> None:
        self.id = new_id("resp")
        self._on_audio = on_audio  # told of each chunk of audio sent (int16 samples, rate)
        self._send, self._conversation, self._stream = send, conversation, stream
        self.params, self._conversation_id, self._pacing = params, conversation_id, pacing
        self._word_timestamps, self._in_conversation = word_timestamps, in_conversation
        self._input_audio_ms = input_audio_ms
        self._cancel_reason: str | None = None
        self._cancelled = asyncio.Event()
        self.item_id = new_id("item")
        self.entry = Entry(item=assistant_item(self.item_id, "in_progress", []))
        self._text = ""
        self._sent_words = 0
        self._t0 = 0.0

    @property
    def audio_out(self) -> bool:
        """Whether this response speaks."""
        return "audio" in self.params["modalities"]

    def cancel(self, reason: str) -> None:
        """Stop sending deltas; :meth:`run` ends with a cancelled ``response.done``."""
        if self._cancel_reason is None:
            self._cancel_reason = reason
            self._cancelled.set()

    def _check(self) -> None:
        if self._cancel_reason is not None:
            raise Cancelled()

    async def _wait(self, seconds: float) -> None:
        if seconds > 0:
            try:
                await asyncio.wait_for(self._cancelled.wait(), seconds)
            except TimeoutError:
                pass
        self._check()

    async def _guarded(self, awaitable: Awaitable[Any]) -> Any:
        """Await ``awaitable`` unless the response is cancelled first."""
        task = asyncio.ensure_future(awaitable)
        waiter = asyncio.ensure_future(self._cancelled.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not task.done():
            task.cancel()
            raise Cancelled()
        return task.result()

    def _ref(self) -> dict[str, Any]:
        return {
            "response_id": self.id,
            "item_id": self.item_id,
            "output_index": 0,
            "content_index": 0,
        }

    async def _emit(self, event_type: str, **fields: Any) -> None:
        await self._send(server_event(event_type, **self._ref(), **fields))

    async def _sentences(self) -> AsyncIterator[str]:
        """Group the brain's chunks into sentences (what gets synthesized at once)."""
        pending = ""
        while True:
            try:
                chunk = await self._guarded(anext(self._stream))
            except StopAsyncIteration:
                break
            pending += chunk
            if _SENTENCE_END.search(pending):
                yield pending
                pending = ""
        if pending.strip():
            yield pending

    async def _speak(self, sentence: str) -> None:
        rate = output_rate(self.params["output_audio_format"])
        speech = await self._guarded(synthesize_async(sentence.strip(), rate))
        self._check()
        base_ms = self.entry.audio_ms
        words = [SpokenWord(w.text, w.offset_ms + base_ms, w.duration_ms) for w in speech.words]
        tokens = re.findall(r"\s*\S+", sentence if self._text else sentence.lstrip())
        fmt = self.params["output_audio_format"] or "pcm16"
        self.entry.audio_rate, self.entry.sample_width = rate, 1 if fmt.startswith("g711") else 2
        step = max(1, rate * self._pacing.chunk_ms // 1000)
        next_word = 0
        for start in range(0, len(speech.pcm), step):
            chunk = speech.pcm[start : start + step]
            chunk_end_ms = base_ms + (start + len(chunk)) * 1000 // rate
            while next_word < len(words) and words[next_word].offset_ms < chunk_end_ms:
                await self._say_word(
                    words[next_word], tokens[next_word] if next_word < len(tokens) else ""
                )
                next_word += 1
            await self._pace(base_ms + start * 1000 // rate)
            data = encode(chunk, fmt)
            await self._emit("response.audio.delta", delta=base64.b64encode(data).decode())
            if self._on_audio is not None:
                self._on_audio(chunk, rate)
            self.entry.audio += data
            self.entry.audio_ms = chunk_end_ms
        for i in range(next_word, len(words)):
            await self._say_word(words[i], tokens[i] if i < len(tokens) else "")
        rest = "".join(tokens[len(words) :])
        if rest:
            self._text += rest
            await self._emit("response.audio_transcript.delta", delta=rest)

    async def _say_word(self, word: SpokenWord, token: str) -> None:
        self._check()
        self.entry.words.append(word)
        if self._word_timestamps:
            await self._emit(
                "response.audio_timestamp.delta",
                audio_offset_ms=word.offset_ms,
                audio_duration_ms=word.duration_ms,
                text=word.text,
                timestamp_type="word",
            )
        if token:
            self._text += token
            await self._emit("response.audio_transcript.delta", delta=token)

    async def _pace(self, audio_ms: int) -> None:
        if self._pacing.pace <= 0:
            self._check()
            return
        due = self._t0 + (audio_ms - self._pacing.lead_ms) / 1000.0 / self._pacing.pace
        await self._wait(due - time.monotonic())

    def _content(self) -> list[dict[str, Any]]:
        if self.audio_out:
            return [{"type": "audio", "transcript": self._text}]
        return [{"type": "text", "text": self._text}]

    async def run(self) -> None:
        """Send the whole response (or its cancelled end)."""
        self._t0 = time.monotonic()
        send = self._send
        await send(
            server_event(
                "response.created",
                response=response_object(self.id, self._conversation_id, self.params),
            )
        )
        status, details = "completed", None
        try:
            await self._send(
                server_event(
                    "response.output_item.added",
                    response_id=self.id,
                    output_index=0,
                    item=assistant_item(self.item_id, "in_progress", []),
                )
            )
            if self._in_conversation:
                before = self._conversation.add_entry(self.entry)
                await send(
                    server_event(
                        "conversation.item.created",
                        previous_item_id=before,
                        item=assistant_item(self.item_id, "in_progress", []),
                    )
                )
            part = (
                {"type": "audio", "transcript": ""}
                if self.audio_out
                else {"type": "text", "text": ""}
            )
            await self._emit("response.content_part.added", part=part)
            await self._body()
        except Cancelled:
            status, details = "cancelled", {"type": "cancelled", "reason": self._cancel_reason}
        item_status = "completed" if status == "completed" else "incomplete"
        self.entry.item.update(status=item_status, content=self._content())
        out_item = assistant_item(self.item_id, item_status, self._content())
        if status == "completed":
            await send(
                server_event(
                    "response.output_item.done", response_id=self.id, output_index=0, item=out_item
                )
            )
        audio_tokens = self.entry.audio_ms * 20 // 1000
        text_tokens = max(1, len(self._text) // 4)
        history_tokens = self._conversation.history_tokens()
        done = response_object(
            self.id,
            self._conversation_id,
            self.params,
            status=status,
            status_details=details,
            output=[out_item],
            usage_obj=usage(
                history_tokens, self._input_audio_ms * 10 // 1000, text_tokens, audio_tokens
            ),
        )
        await send(server_event("response.done", response=done))

    async def _body(self) -> None:
        if self.audio_out:
            async for sentence in self._sentences():
                await self._speak(sentence)
            await self._emit("response.audio.done")
            if self._word_timestamps:
                await self._emit("response.audio_timestamp.done")
            await self._emit("response.audio_transcript.done", transcript=self._text)
        else:
            while True:
                try:
                    chunk = await self._guarded(anext(self._stream))
                except StopAsyncIteration:
                    break
                self._text += chunk
                await self._emit("response.text.delta", delta=chunk)
            await self._emit("response.text.done", text=self._text)
        self._check()
        final_part = self._content()[0] if self.audio_out else {"type": "text", "text": ""}
        await self._emit("response.content_part.done", part=final_part)
