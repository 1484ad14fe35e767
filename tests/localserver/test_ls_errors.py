"""Bad client input on the local server: each gets the real service's error event (code, param,
echoed event_id) and the session carries on."""

from __future__ import annotations

import base64

import pytest
from ls_client import Client

from localserver.server import LocalServer

BAD_EVENTS = [
    ("{not json", "invalid_json", None),
    ({"type": "no.such.event", "event_id": "e1"}, "invalid_value", "type"),
    ({"event_id": "e2"}, "missing_required_parameter", "type"),
    (
        {"type": "session.update", "event_id": "e3", "session": {"type": "realtime"}},
        "unknown_parameter",
        "session.type",
    ),
    (
        {
            "type": "session.update",
            "event_id": "e4",
            "session": {"turn_detection": {"type": "server_vad", "bogus": 1}},
        },
        "unknown_parameter",
        "session.turn_detection.bogus",
    ),
    (
        {
            "type": "session.update",
            "event_id": "e5",
            "session": {"turn_detection": {"type": "magic_vad"}},
        },
        "invalid_value",
        "session.turn_detection.type",
    ),
    ({"type": "response.create", "event_id": "e6", "extra": True}, "unknown_parameter", "extra"),
    (
        {"type": "input_audio_buffer.append", "event_id": "e7", "audio": "%%%not base64%%%"},
        "invalid_value",
        "audio",
    ),
    (
        {"type": "input_audio_buffer.append", "event_id": "e8"},
        "missing_required_parameter",
        "audio",
    ),
    ({"type": "response.cancel", "event_id": "e9"}, "response_cancel_not_active", None),
    (
        {"type": "input_audio_buffer.commit", "event_id": "e10"},
        "input_audio_buffer_commit_empty",
        None,
    ),
    (
        {"type": "conversation.item.delete", "event_id": "e11", "item_id": "item_nope"},
        "item_not_found",
        "item_id",
    ),
    (
        {
            "type": "conversation.item.create",
            "event_id": "e12",
            "item": {"type": "message", "role": "robot", "content": []},
        },
        "invalid_value",
        "item.role",
    ),
    (
        {
            "type": "conversation.item.create",
            "event_id": "e13",
            "previous_item_id": "item_nope",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        },
        "item_not_found",
        "previous_item_id",
    ),
]


@pytest.mark.parametrize("event,code,param", BAD_EVENTS, ids=[c for _, c, _ in BAD_EVENTS])
async def test_bad_input_gets_error_and_session_goes_on(
    server: LocalServer, event: object, code: str, param: str | None
) -> None:
    client = await Client.open(server.url)
    await client.expect("session.created")
    await client.send(event) if isinstance(event, dict) else await client.ws.send(event)
    error = await client.expect("error")
    assert error["event_id"].startswith("event_")
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["code"] == code and error["error"]["param"] == param
    assert error["error"]["event_id"] == (
        event.get("event_id") if isinstance(event, dict) else None
    )
    if code == "response_cancel_not_active":
        assert error["error"]["message"] == "Cancellation failed: no active response found"
    await client.alive("after-error")
    await client.close()


async def test_oversized_append_is_refused_and_session_goes_on(server: LocalServer) -> None:
    client = await Client.open(server.url)
    await client.expect("session.created")
    audio = base64.b64encode(bytes(15 * 1024 * 1024 + 4)).decode()
    await client.send({"type": "input_audio_buffer.append", "event_id": "big", "audio": audio})
    error = (await client.expect("error", timeout=20))["error"]
    assert (error["code"], error["param"], error["event_id"]) == (
        "string_above_max_length",
        "audio",
        "big",
    )
    await client.alive("after-big")
    await client.close()


async def test_second_response_create_while_active(realtime_server: LocalServer) -> None:
    client = await Client.open(realtime_server.url)
    await client.expect("session.created")
    await client.ask("Tell me a story.")
    created = await client.expect("response.created")
    await client.send({"type": "response.create", "event_id": "again"})
    error = (await client.expect("error"))["error"]
    assert (
        error["code"] == "conversation_already_has_active_response" and error["event_id"] == "again"
    )
    assert created["response"]["id"] in error["message"]
    await client.send({"type": "response.cancel", "event_id": "stop-it"})
    done = await client.expect("response.done")
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    await client.close()


async def test_truncate_beyond_audio_length_and_truncate_ok(server: LocalServer) -> None:
    client = await Client.open(server.url)
    await client.expect("session.created")
    await client.ask("What is the capital of France?")
    done = await client.expect("response.done")
    item = done["response"]["output"][0]
    assert item["content"][0]["transcript"] == "The capital of France is Paris."
    await client.send(
        {
            "type": "conversation.item.truncate",
            "event_id": "t1",
            "item_id": item["id"],
            "content_index": 0,
            "audio_end_ms": 60_000,
        }
    )
    error = (await client.expect("error"))["error"]
    assert (error["code"], error["param"], error["event_id"]) == (
        "invalid_value",
        "audio_end_ms",
        "t1",
    )
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item["id"],
            "content_index": 0,
            "audio_end_ms": 700,
        }
    )
    truncated = await client.expect("conversation.item.truncated")
    assert (truncated["item_id"], truncated["audio_end_ms"]) == (item["id"], 700)
    await client.send({"type": "conversation.item.retrieve", "item_id": item["id"]})
    retrieved = (await client.expect("conversation.item.retrieved"))["item"]
    heard = retrieved["content"][0]["transcript"]
    assert (
        heard
        and "The capital of France is Paris.".startswith(heard)
        and heard != "The capital of France is Paris."
    )
    assert len(base64.b64decode(retrieved["content"][0]["audio"])) == 700 * 48
    await client.send({"type": "conversation.item.delete", "item_id": item["id"]})
    assert (await client.expect("conversation.item.deleted"))["item_id"] == item["id"]
    await client.close()
