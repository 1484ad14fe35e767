"""Server event parsing (lenient) and client event construction.

A server event is kept as the dict it arrived as: unknown fields and unknown types survive, and
accessors return a default instead of raising when a field is missing or has the wrong type. Only a
message that is not a JSON object with a string ``type`` is rejected, as :class:`MalformedEvent`.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from dataclasses import dataclass
from typing import Any

from processors.voicelive.errors import MalformedEvent

_event_ids = itertools.count(1)


@dataclass(frozen=True)
class ServerEvent:
    """One server event. ``data`` is the whole decoded object, untouched."""

    type: str
    data: dict[str, Any]

    @property
    def carries_audio(self) -> bool:
        """Agent audio (``response.audio.delta``): the one event type logs leave out."""
        return self.type == "response.audio.delta"

    def str(self, key: str, default: str = "") -> str:
        """The string at ``key``, or ``default`` when missing or not a string."""
        value = self.data.get(key)
        return value if isinstance(value, str) else default

    def int(self, key: str, default: int | None = None) -> int | None:
        """The number at ``key`` as an int, or ``default`` when missing, not a number or not
        finite."""
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return default
        try:
            return int(value)
        except (OverflowError, ValueError):  # inf / nan
            return default

    def obj(self, key: str) -> dict[str, Any]:
        """The object at ``key``, or an empty dict when missing or not an object."""
        value = self.data.get(key)
        return value if isinstance(value, dict) else {}


def parse_server_event(message: str | bytes | dict[str, Any]) -> ServerEvent:
    """Decode one server message; raise :class:`MalformedEvent` if it has no usable ``type``."""
    if isinstance(message, dict):
        data: Any = message
    else:
        if isinstance(message, (bytes, bytearray, memoryview)):
            try:
                message = bytes(message).decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedEvent(
                    f"binary message of {len(message)} bytes is not UTF-8 JSON"
                ) from None
        try:
            data = json.loads(message)
        # JSONDecodeError, or an integer over 4300 digits
        except (ValueError, RecursionError) as exc:
            raise MalformedEvent(
                f"not JSON ({exc.__class__.__name__}): {_preview(message)}"
            ) from None
    if not isinstance(data, dict):
        raise MalformedEvent(f"not a JSON object: {_preview(str(data))}")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedEvent(
            f"event without a string 'type': {_preview(json.dumps(data, default=str))}"
        )
    return ServerEvent(type=kind, data=data)


def _preview(text: str, limit: int = 120) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


def decode_audio(b64: Any) -> bytes:
    """Decode a base64 audio payload; raise :class:`MalformedEvent` when it is not valid base64."""
    if not isinstance(b64, str):
        raise MalformedEvent("audio payload is not a string")
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedEvent(f"audio payload is not valid base64 ({len(b64)} characters)") from None


def new_event_id() -> str:
    """A client event id (echoed back in ``error.event_id``)."""
    return f"evt_client_{next(_event_ids)}"


def client_event(kind: str, **fields: Any) -> dict[str, Any]:
    """A client event dict with a fresh ``event_id``."""
    return {"type": kind, **fields, "event_id": new_event_id()}


def session_update(session: dict[str, Any]) -> dict[str, Any]:
    """``session.update`` with this ``session`` object."""
    return client_event("session.update", session=session)


def audio_append(pcm: bytes) -> dict[str, Any]:
    """``input_audio_buffer.append`` carrying ``pcm`` as base64."""
    return client_event("input_audio_buffer.append", audio=base64.b64encode(pcm).decode("ascii"))


_APPEND_KEYS = {"type", "event_id", "audio"}
# nothing to escape
_PLAIN = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-."


def _plain(text: Any) -> bool:
    """``text`` is a str JSON can carry unescaped (the base64 and the ids this module writes)."""
    if not isinstance(text, str) or not text.isascii():
        return False
    return not text.encode("ascii").translate(None, _PLAIN)


def encode_client_event(event: dict[str, Any]) -> str:
    """The JSON text of a client event. An audio append (25 a second, kilobytes of base64) is
    written directly when its fields need no escaping: ``json.dumps`` spent ~60 µs a frame
    scanning the base64 for characters to escape, a sixth of a paced frame's whole cost."""
    if event.get("type") == "input_audio_buffer.append" and event.keys() == _APPEND_KEYS:
        event_id, audio = event["event_id"], event["audio"]
        if _plain(event_id) and _plain(audio):
            return (
                f'{{"type":"input_audio_buffer.append","audio":"{audio}","event_id":"{event_id}"}}'
            )
    return json.dumps(event, ensure_ascii=False)


def truncate(item_id: str, audio_end_ms: int, content_index: int = 0) -> dict[str, Any]:
    """``conversation.item.truncate``: the item was heard up to ``audio_end_ms``."""
    return client_event(
        "conversation.item.truncate",
        item_id=item_id,
        content_index=content_index,
        audio_end_ms=audio_end_ms,
    )


def response_create(**response: Any) -> dict[str, Any]:
    """``response.create``, with ``response`` fields when given."""
    return (
        client_event("response.create", response=response)
        if response
        else client_event("response.create")
    )


def response_cancel(response_id: str | None = None) -> dict[str, Any]:
    """``response.cancel`` (of ``response_id`` when given)."""
    return (
        client_event("response.cancel", response_id=response_id)
        if response_id
        else client_event("response.cancel")
    )


def user_text_item(text: str) -> dict[str, Any]:
    """``conversation.item.create`` of a user text message."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return client_event("conversation.item.create", item=item)


def assistant_text_item(text: str) -> dict[str, Any]:
    """``conversation.item.create`` of an assistant text message."""
    item = {"type": "message", "role": "assistant", "content": [{"type": "text", "text": text}]}
    return client_event("conversation.item.create", item=item)


def system_text_item(text: str) -> dict[str, Any]:
    """Instructions-like context for the model (the summary of a shortened history)."""
    item = {"type": "message", "role": "system", "content": [{"type": "input_text", "text": text}]}
    return client_event("conversation.item.create", item=item)


def function_output_item(call_id: str, output: str) -> dict[str, Any]:
    """``conversation.item.create`` of a tool's output for ``call_id``."""
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return client_event("conversation.item.create", item=item)


# Events that are understood and need no action (logged at debug by the owner).
INFORMATIONAL = frozenset(
    {
        "warning",
        "rate_limits.updated",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "conversation.item.created",
        "conversation.item.done",
        "conversation.item.retrieved",
        "conversation.item.truncated",
        "conversation.item.deleted",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.audio.done",
        "response.audio_timestamp.done",
        "response.function_call_arguments.delta",
        # Known server events this client does not act on yet (logged and passed to the event
        # log only): MCP tools, built-in search, hosted-agent passthrough, citations, avatar and
        # animation output.
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.web_search_call.searching",
        "response.web_search_call.in_progress",
        "response.web_search_call.completed",
        "response.file_search_call.searching",
        "response.file_search_call.in_progress",
        "response.file_search_call.completed",
        "response.invocation.delta",
        "response.audio_transcript.annotation.added",
        "response.animation_viseme.delta",
        "response.animation_viseme.done",
        "response.animation_blendshapes.delta",
        "response.animation_blendshapes.done",
        "response.video.delta",
        "session.avatar.connecting",
        "session.avatar.switch_to_speaking",
        "session.avatar.switch_to_idle",
        "output_audio_buffer.cleared",
    }
)
