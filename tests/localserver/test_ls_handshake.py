"""Local server handshake: the three connection modes, session.created/updated shapes, the HTTP
refusals at the upgrade (404, 400, 401) and agent selection of the brain."""

from __future__ import annotations

import time

import pytest
from ls_client import Client, ws_url
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from localserver.server import LocalServer

AGENT_QUERY = {
    "api-version": "2026-07-15",
    "agent-name": "support-bot",
    "agent-project-name": "proj",
    "agent-version": "3",
    "conversation-id": "thread_abc123",
}
CLASSIC_QUERY = {
    "api-version": "2026-07-15",
    "agent-id": "asst_42",
    "agent-project-name": "proj",
    "agent-access-token": "tok",
}


async def test_model_mode_session_created_and_update_merge(server: LocalServer) -> None:
    client = await Client.open(server.url)
    created = await client.expect("session.created")
    session = created["session"]
    assert created["event_id"].startswith("event_") and session["id"].startswith("sess_")
    assert session["object"] == "realtime.session" and session["model"] == "gpt-realtime"
    assert session["expires_at"] > time.time() + 3000
    assert session["input_audio_transcription"] is None and "agent" not in session
    assert session["turn_detection"]["type"] == "server_vad"
    assert session["turn_detection"]["idle_timeout_ms"] is None

    await client.send(
        {
            "type": "session.update",
            "session": {
                "instructions": "Answer in two or three words.",
                "turn_detection": {"type": "server_vad", "create_response": True},
                "input_audio_transcription": {"model": "whisper-1"},
            },
        }
    )
    updated = (await client.expect("session.updated"))["session"]
    assert updated["instructions"] == "Answer in two or three words."
    assert (
        updated["turn_detection"]["prefix_padding_ms"] == 400
        and updated["turn_detection"]["silence_duration_ms"] == 500
    )
    assert updated["input_audio_transcription"] == {
        "model": "whisper-1",
        "language": None,
        "prompt": None,
        "custom_speech": None,
        "phrase_list": None,
    }
    unchanged = {
        k: v
        for k, v in session.items()
        if k not in ("instructions", "turn_detection", "input_audio_transcription")
    }
    assert {k: updated[k] for k in unchanged} == unchanged

    await client.send(
        {"type": "session.update", "session": {"turn_detection": None, "modalities": ["text"]}}
    )
    updated = (await client.expect("session.updated"))["session"]
    assert updated["turn_detection"] is None and updated["modalities"] == ["text"]
    assert updated["instructions"] == "Answer in two or three words."
    await client.close()


async def test_agent_mode_session_has_agent_and_transcription(server: LocalServer) -> None:
    client = await Client.open(server.url, AGENT_QUERY)
    session = (await client.expect("session.created"))["session"]
    agent = session["agent"]
    assert (
        agent["type"] == "agent"
        and agent["name"] == "support-bot"
        and agent["thread_id"] == "thread_abc123"
    )
    assert agent["agent_id"] == "support-bot:3" and agent["description"]
    assert session["input_audio_transcription"]["model"] == "azure-speech"
    await client.close()


async def test_classic_agent_mode(server: LocalServer) -> None:
    client = await Client.open(server.url, CLASSIC_QUERY)
    agent = (await client.expect("session.created"))["session"]["agent"]
    assert agent["agent_id"] == "asst_42" and agent["thread_id"].startswith("thread_")
    await client.close()


async def test_agent_name_selects_brain(server: LocalServer) -> None:
    client = await Client.open(server.url, {**AGENT_QUERY, "agent-name": "echo"})
    assert (await client.expect("session.created"))["session"]["agent"][
        "description"
    ] == "Repeats what the user said."
    await client.send({"type": "session.update", "session": {"modalities": ["text"]}})
    await client.ask("Purple elephants")
    assert (await client.expect("response.text.done"))["text"] == "Purple elephants"
    await client.close()


@pytest.mark.parametrize(
    "path,query,status",
    [
        ("/openai/realtime", None, 404),
        ("/voice-live/realtime", {"model": "gpt-realtime"}, 400),
        ("/voice-live/realtime", {"api-version": "2026-07-15"}, 400),
        ("/voice-live/realtime", {**CLASSIC_QUERY, "agent-access-token": ""}, 400),
    ],
)
async def test_bad_upgrades_are_refused(
    server: LocalServer, path: str, query: dict | None, status: int
) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(ws_url(server.url, query, path), additional_headers={"api-key": "k"})
    assert info.value.response.status_code == status


async def test_api_key_enforced_when_configured() -> None:
    async with LocalServer(api_key="secret") as srv:
        for headers, query in [
            ({}, {}),
            ({"api-key": "wrong"}, {}),
            ({"Authorization": "Bearer nope"}, {}),
        ]:
            with pytest.raises(InvalidStatus) as info:
                await connect(
                    ws_url(srv.url, {"api-version": "1", "model": "m", **query}),
                    additional_headers=headers,
                )
            assert info.value.response.status_code == 401
        for headers, query in [
            ({"api-key": "secret"}, {}),
            ({"Authorization": "Bearer secret"}, {}),
            ({}, {"api-key": "secret"}),
        ]:
            ws = await connect(
                ws_url(srv.url, {"api-version": "1", "model": "m", **query}),
                additional_headers=headers,
            )
            client = Client(ws)
            await client.expect("session.created")
            await client.close()


async def test_any_key_accepted_by_default_but_one_is_required(server: LocalServer) -> None:
    ws = await connect(ws_url(server.url), additional_headers={"Authorization": "Bearer anything"})
    await Client(ws).expect("session.created")
    await ws.close()
    with pytest.raises(InvalidStatus) as info:
        await connect(ws_url(server.url))
    assert info.value.response.status_code == 401
