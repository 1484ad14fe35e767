"""Shapes of the local server's protocol objects: ids with the real service's prefixes, server
events, conversation items, response objects, usage and error payloads — matched to the recorded
Voice Live traffic (see the protocol reference, traces A/D/E)."""

from __future__ import annotations

import secrets
import string
from typing import Any

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 22) -> str:
    """A random id such as ``event_6gpV3JbHBhOTWzkacfZKJN`` (prefix without the underscore)."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def server_event(event_type: str, **fields: Any) -> dict[str, Any]:
    """A server event envelope with a fresh ``event_…`` id."""
    return {"event_id": new_id("event"), "type": event_type, **fields}


def error_event(
    code: str | None,
    message: str,
    *,
    param: str | None = None,
    client_event_id: str | None = None,
    error_type: str = "invalid_request_error",
) -> dict[str, Any]:
    """An ``error`` event; ``client_event_id`` echoes the offending client event's ``event_id``."""
    return server_event(
        "error",
        error={
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    )


def warning_event(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """A non-fatal ``warning`` event."""
    return server_event("warning", warning={"code": code, "message": message, "param": param})


def user_audio_item(item_id: str, transcript: str | None = None) -> dict[str, Any]:
    """A committed user audio message item."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def assistant_item(item_id: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    """An assistant message item (``content`` empty while in progress)."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def usage(
    input_text_tokens: int, input_audio_tokens: int, out_text: int, out_audio: int
) -> dict[str, Any]:
    """A ``usage`` object in the real trace shape (token counts are estimates)."""
    total_in = input_text_tokens + input_audio_tokens
    return {
        "total_tokens": total_in + out_text + out_audio,
        "input_tokens": total_in,
        "output_tokens": out_text + out_audio,
        "input_token_details": {
            "cached_tokens": 0,
            "text_tokens": input_text_tokens,
            "audio_tokens": input_audio_tokens,
            "image_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {
            "text_tokens": out_text,
            "audio_tokens": out_audio,
            "reasoning_tokens": 0,
        },
    }


def response_object(
    response_id: str,
    conversation_id: str,
    params: dict[str, Any],
    *,
    status: str = "in_progress",
    status_details: dict[str, Any] | None = None,
    output: list[dict[str, Any]] | None = None,
    usage_obj: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``realtime.response`` object for ``response.created`` / ``response.done``."""
    return {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": status_details,
        "output": output or [],
        "usage": usage_obj,
        "conversation_id": conversation_id,
        "modalities": params["modalities"],
        "voice": params["voice"],
        "output_audio_format": params["output_audio_format"],
        "temperature": params.get("temperature"),
        "max_output_tokens": params.get("max_output_tokens", "inf"),
        "metadata": params.get("metadata"),
    }


def normalise_client_item(item: dict[str, Any], item_id: str) -> dict[str, Any]:
    """The server's echo of a client-created item: ids, ``object``, ``status``; assistant
    ``output_text`` parts re-typed to ``text`` (trace E)."""
    out: dict[str, Any] = {"id": item_id, "object": "realtime.item", **item}
    out["id"] = item_id
    kind = item.get("type")
    if kind == "message":
        out["status"] = "completed"
        parts = []
        for part in item.get("content") or []:
            part = dict(part)
            if item.get("role") == "assistant" and part.get("type") == "output_text":
                part["type"] = "text"
            parts.append(part)
        out["content"] = parts
    elif kind == "function_call":
        out.setdefault("status", "completed")
    return out


def item_text(item: dict[str, Any]) -> str:
    """The plain text a conversation item carries (text parts, transcripts, tool output)."""
    if item.get("type") == "function_call_output":
        return str(item.get("output") or "")
    if item.get("type") == "function_call":
        return f"{item.get('name')}({item.get('arguments')})"
    texts = []
    for part in item.get("content") or []:
        text = part.get("text") if part.get("text") is not None else part.get("transcript")
        if text:
            texts.append(str(text))
    return " ".join(texts)
