"""Validation of client events for the local server: which event types it serves, their allowed
and required fields, and conversation items — raising :class:`ClientEventError` with the real
service's error codes (``invalid_value``, ``unknown_parameter``, ``missing_required_parameter``,
``invalid_type``) so the session can answer with an ``error`` event and carry on."""

from __future__ import annotations

from typing import Any

# event type -> (allowed fields besides type/event_id, required fields)
SUPPORTED: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "session.update": (frozenset({"session"}), frozenset({"session"})),
    "input_audio_buffer.append": (frozenset({"audio"}), frozenset({"audio"})),
    "input_audio_buffer.commit": (frozenset(), frozenset()),
    "input_audio_buffer.clear": (frozenset(), frozenset()),
    "conversation.item.create": (frozenset({"item", "previous_item_id"}), frozenset({"item"})),
    "conversation.item.retrieve": (frozenset({"item_id"}), frozenset({"item_id"})),
    "conversation.item.truncate": (
        frozenset({"item_id", "content_index", "audio_end_ms"}),
        frozenset({"item_id", "audio_end_ms"}),
    ),
    "conversation.item.delete": (frozenset({"item_id"}), frozenset({"item_id"})),
    "response.create": (frozenset({"response", "additional_instructions"}), frozenset()),
    "response.cancel": (frozenset({"response_id"}), frozenset()),
    "input_text.delta": (frozenset({"id", "delta", "content_index"}), frozenset({"id", "delta"})),
    "input_text.done": (frozenset({"id", "content_index"}), frozenset({"id"})),
    "output_audio_buffer.clear": (frozenset(), frozenset()),
}
#: known to the protocol but not served here (avatar, SDK-only turn API, transcription sessions)
UNSUPPORTED = frozenset(
    {
        "session.avatar.connect",
        "input_audio.turn.start",
        "input_audio.turn.append",
        "input_audio.turn.end",
        "input_audio.turn.cancel",
        "input_audio.clear",
        "transcription_session.update",
        "mcp_approval_response",
    }
)
RESPONSE_FIELDS = frozenset(
    {
        "commit",
        "cancel_previous",
        "append_input_items",
        "input_items",
        "modalities",
        "instructions",
        "voice",
        "output_audio_format",
        "tools",
        "tool_choice",
        "temperature",
        "max_output_tokens",
        "max_response_output_tokens",
        "pre_generated_assistant_message",
        "reasoning_effort",
        "metadata",
        "interim_response",
        "invoke_input",
        "conversation",
    }
)
ITEM_TYPES = frozenset(
    {"message", "function_call", "function_call_output", "mcp_approval_response"}
)
ROLES = frozenset({"user", "system", "assistant"})
PART_TYPES = {
    "user": frozenset({"input_text", "input_audio", "input_image"}),
    "system": frozenset({"input_text"}),
    "assistant": frozenset({"text", "output_text"}),
}
_STRING_FIELDS = ("audio", "item_id", "previous_item_id", "response_id", "id", "delta")


class ClientEventError(ValueError):
    """A client event the server rejects (non-fatal)."""

    def __init__(self, code: str, message: str, param: str | None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def _invalid_value(value: Any, param: str, allowed: frozenset[str]) -> ClientEventError:
    return ClientEventError(
        "invalid_value",
        f"Invalid value: {value!r}. Supported values are: "
        f"{', '.join(repr(v) for v in sorted(allowed))}.",
        param,
    )


def check_event(event: Any) -> str:
    """Validate a parsed client event; return its type."""
    if not isinstance(event, dict):
        raise ClientEventError(
            "invalid_type", "Invalid client event: expected a JSON object.", None
        )
    kind = event.get("type")
    if kind is None:
        raise ClientEventError(
            "missing_required_parameter", "Missing required parameter: 'type'.", "type"
        )
    if kind in UNSUPPORTED:
        raise ClientEventError(
            "unsupported_event", f"The event type '{kind}' is not supported by this server.", "type"
        )
    if kind not in SUPPORTED:
        raise _invalid_value(kind, "type", frozenset(SUPPORTED))
    allowed, required = SUPPORTED[kind]
    for key in event:
        if key not in allowed and key not in ("type", "event_id"):
            raise ClientEventError("unknown_parameter", f"Unknown parameter: '{key}'.", key)
    for key in sorted(required):
        if event.get(key) is None:
            raise ClientEventError(
                "missing_required_parameter", f"Missing required parameter: '{key}'.", key
            )
    for key in _STRING_FIELDS:
        if key in event and event[key] is not None and not isinstance(event[key], str):
            raise ClientEventError(
                "invalid_type", f"Invalid type for '{key}': expected a string.", key
            )
    if kind == "conversation.item.truncate" and (
        not isinstance(event["audio_end_ms"], int) or event["audio_end_ms"] < 0
    ):
        raise ClientEventError(
            "invalid_type",
            "Invalid 'audio_end_ms': expected a non-negative integer.",
            "audio_end_ms",
        )
    if kind == "response.create" and event.get("response") is not None:
        response = event["response"]
        if not isinstance(response, dict):
            raise ClientEventError(
                "invalid_type", "Invalid type for 'response': expected an object.", "response"
            )
        for key in response:
            if key not in RESPONSE_FIELDS:
                raise ClientEventError(
                    "unknown_parameter", f"Unknown parameter: 'response.{key}'.", f"response.{key}"
                )
    return kind


def check_item(item: Any) -> dict[str, Any]:
    """Validate the ``item`` of ``conversation.item.create``."""
    if not isinstance(item, dict):
        raise ClientEventError(
            "invalid_type", "Invalid type for 'item': expected an object.", "item"
        )
    kind = item.get("type", "message")
    if kind not in ITEM_TYPES:
        raise _invalid_value(kind, "item.type", ITEM_TYPES)
    item = {**item, "type": kind}
    if kind == "message":
        role = item.get("role")
        if role not in ROLES:
            raise _invalid_value(role, "item.role", ROLES)
        content = item.get("content")
        if not isinstance(content, list):
            raise ClientEventError(
                "missing_required_parameter",
                "Missing required parameter: 'item.content'.",
                "item.content",
            )
        for i, part in enumerate(content):
            ptype = part.get("type") if isinstance(part, dict) else None
            if ptype not in PART_TYPES[role]:
                raise _invalid_value(ptype, f"item.content[{i}].type", PART_TYPES[role])
    elif kind == "function_call_output":
        for key in ("call_id", "output"):
            if not isinstance(item.get(key), str):
                raise ClientEventError(
                    "missing_required_parameter",
                    f"Missing required parameter: 'item.{key}'.",
                    f"item.{key}",
                )
    elif kind == "function_call":
        for key in ("call_id", "name"):
            if not isinstance(item.get(key), str):
                raise ClientEventError(
                    "missing_required_parameter",
                    f"Missing required parameter: 'item.{key}'.",
                    f"item.{key}",
                )
    return item
