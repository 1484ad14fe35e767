"""Conformance of the local server with the official ``azure-ai-voicelive`` SDK as the client:
a text turn and an audio turn complete, every event received deserialises to its typed model
(never the ServerEvent base) with all required fields, and every client event of the protocol
examples that the server serves is accepted without an error."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from azure.ai.voicelive.aio import VoiceLiveConnection, connect
from azure.ai.voicelive.models import (
    AudioInputTranscriptionOptions,
    InputTextContentPart,
    Modality,
    RequestSession,
    ServerEvent,
    ServerVad,
    UserMessageItem,
)
from azure.core.credentials import AzureKeyCredential

from localserver.client_events import SUPPORTED
from localserver.server import LocalServer
from tests.support.sdk_check import validate_event
from tests.support.traces import load_examples


async def _until(
    conn: VoiceLiveConnection, event_type: str, seen: list[Any], timeout: float = 15
) -> Any:
    """Receive typed events until ``event_type``; every one is checked against the SDK models."""

    async def loop() -> Any:
        while True:
            event = await conn.recv()
            assert type(event) is not ServerEvent, f"untyped event {event.get('type')}"
            validate_event(dict(event.as_dict()))
            seen.append(event)
            if event.type == event_type:
                return event

    return await asyncio.wait_for(loop(), timeout)


def _connect(server: LocalServer, **kwargs: Any):
    return connect(endpoint=server.url, credential=AzureKeyCredential("local-key"), **kwargs)


async def test_sdk_text_turn(server: LocalServer) -> None:
    seen: list[Any] = []
    async with _connect(server, model="gpt-realtime") as conn:
        await _until(conn, "session.created", seen)
        await conn.session.update(
            session=RequestSession(modalities=[Modality.TEXT, Modality.AUDIO])
        )
        await _until(conn, "session.updated", seen)
        await conn.conversation.item.create(
            item=UserMessageItem(
                content=[InputTextContentPart(text="What is the capital of France?")]
            )
        )
        await conn.response.create()
        done = await _until(conn, "response.done", seen)
    assert done.response.status == "completed"
    assert done.response.output[0].content[0].transcript == "The capital of France is Paris."
    audio = b"".join(e.delta for e in seen if e.type == "response.audio.delta")
    assert isinstance(audio, bytes) and len(audio) > 24000


async def test_sdk_audio_turn_in_agent_mode(server: LocalServer, utterance) -> None:
    seen: list[Any] = []
    pcm = utterance("What is the capital of France?").pcm.tobytes()
    async with _connect(server, agent_name="local-agent", project_name="demo") as conn:
        created = await _until(conn, "session.created", seen)
        assert created.session.agent.name == "local-agent"
        await conn.session.update(
            session=RequestSession(
                turn_detection=ServerVad(
                    threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500
                ),
                input_audio_transcription=AudioInputTranscriptionOptions(model="azure-speech"),
                output_audio_timestamp_types=["word"],
            )
        )
        await _until(conn, "session.updated", seen)
        for i in range(0, len(pcm), 4800):
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + 4800]).decode())
        done = await _until(conn, "response.done", seen)
    types = [e.type for e in seen]
    for expected in (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.audio.delta",
        "response.audio_timestamp.delta",
        "response.audio_transcript.done",
    ):
        assert expected in types, expected
    transcript = next(
        e for e in seen if e.type == "conversation.item.input_audio_transcription.completed"
    )
    assert transcript.transcript == "What is the capital of France?"
    assert done.response.output[0].content[0].transcript == "The capital of France is Paris."


def _client_examples() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in load_examples().items() if k in SUPPORTED}


async def test_every_supported_client_example_is_accepted(realtime_server: LocalServer) -> None:
    """The examples reference items by id; those ids are mapped onto items this session has."""
    examples = _client_examples()
    assert len(examples) >= 12
    seen: list[Any] = []
    async with _connect(realtime_server, model="gpt-realtime") as conn:
        await _until(conn, "session.created", seen)
        await conn.session.update(
            session=RequestSession(modalities=[Modality.TEXT, Modality.AUDIO])
        )
        await conn.conversation.item.create(
            item=UserMessageItem(
                content=[InputTextContentPart(text="Please describe the weather in London today.")]
            )
        )
        user = await _until(conn, "conversation.item.created", seen)
        await conn.response.create()
        assistant = (await _until(conn, "response.done", seen, timeout=30)).response.output[0]
        ids = {"item_4Hn8Rt2Wq0Ue": assistant.id, "item_9Ks3Df1Gh7Jl": user.item.id}
        for n, (kind, example) in enumerate(examples.items()):
            event = json.loads(
                json.dumps(example),
                object_hook=lambda d: {
                    k: ids.get(v, v) if isinstance(v, str) else v for k, v in d.items()
                },
            )
            event["event_id"] = f"example_{n}"
            if kind == "input_audio_buffer.commit":
                # 500 ms
                await conn.input_audio_buffer.append(audio=base64.b64encode(bytes(24000)).decode())
            validate_event(event, "client")
            await conn.send(event)
            await conn.send({"type": "input_audio_buffer.clear", "event_id": f"probe_{n}"})
            for _ in range(2 if kind == "input_audio_buffer.clear" else 1):
                await _until(conn, "input_audio_buffer.cleared", seen)
            errors = [e for e in seen if e.type == "error"]
            assert errors == [], (kind, [e.error.as_dict() for e in errors])
