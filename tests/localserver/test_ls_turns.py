"""Spoken turns on the local server: VAD timings on known audio, threshold and silence duration
honoured, transcription of the known questions and of a session phrase list, manual turns,
barge-in cancelling a response, text-only responses, word timestamps and tool output."""

from __future__ import annotations

import base64

import numpy as np
from ls_client import Client

from localserver.brain import DefaultBrain
from localserver.server import LocalServer

TRANSCRIBE = {"input_audio_transcription": {"model": "azure-speech"}}


async def _session(url: str, **session: object) -> Client:
    client = await Client.open(url)
    await client.expect("session.created")
    if session:
        await client.send({"type": "session.update", "session": session})
        await client.expect("session.updated")
    return client


async def test_vad_timings_match_known_speech_boundaries(server: LocalServer, utterance) -> None:
    question = utterance("What is the capital of France?", lead_ms=1200)
    for prefix in (0, 300):
        client = await _session(
            server.url,
            turn_detection={
                "type": "server_vad",
                "prefix_padding_ms": prefix,
                "silence_duration_ms": 500,
                "create_response": False,
            },
        )
        await client.send_audio(question.pcm)
        started = await client.expect("input_audio_buffer.speech_started")
        stopped = await client.expect("input_audio_buffer.speech_stopped")
        assert abs(started["audio_start_ms"] - (question.start_ms - prefix)) <= 60, (
            started,
            question.start_ms,
        )
        assert abs(stopped["audio_end_ms"] - question.end_ms) <= 80, (stopped, question.end_ms)
        assert started["item_id"] == stopped["item_id"]
        committed = await client.expect("input_audio_buffer.committed")
        created = await client.expect("conversation.item.created")
        assert committed["item_id"] == created["item"]["id"] == started["item_id"]
        assert (
            created["item"]["role"] == "user"
            and created["item"]["content"][0]["type"] == "input_audio"
        )
        await client.close()


async def test_silence_duration_splits_or_joins_turns(server: LocalServer, utterance) -> None:
    a, b = utterance("Stop.", 500, 0), utterance("Stop.", 400, 1000)
    pcm = np.concatenate([a.pcm, b.pcm])  # two words 400 ms apart
    for silence_ms, turns in ((250, 2), (900, 1)):
        client = await _session(
            server.url,
            turn_detection={
                "type": "server_vad",
                "silence_duration_ms": silence_ms,
                "create_response": False,
            },
        )
        await client.send_audio(pcm)
        await client.send_audio(np.zeros(24000, np.int16))
        for _ in range(turns):
            await client.expect("input_audio_buffer.speech_stopped")
        await client.alive("end")
        assert len(client.seen("input_audio_buffer.speech_started")) == turns
        await client.close()


async def test_threshold_decides_on_quiet_speech(server: LocalServer, utterance) -> None:
    quiet = utterance("Tell me a story.", gain=0.02)  # about -45 dBFS speech
    heard = {}
    for threshold in (0.3, 0.95):
        client = await _session(
            server.url,
            turn_detection={
                "type": "azure_semantic_vad",
                "threshold": threshold,
                "create_response": False,
            },
        )
        await client.send_audio(quiet.pcm)
        await client.alive("end")
        heard[threshold] = len(client.seen("input_audio_buffer.speech_started"))
        await client.close()
    assert heard == {0.3: 1, 0.95: 0}


async def test_known_questions_are_transcribed(server: LocalServer, utterance) -> None:
    client = await _session(
        server.url, **TRANSCRIBE, turn_detection={"type": "server_vad", "create_response": False}
    )
    for question in DefaultBrain.known_phrases:
        await client.send_audio(utterance(question, 300, 800).pcm)
        done = await client.expect("conversation.item.input_audio_transcription.completed")
        assert done["transcript"] == question and done["content_index"] == 0
    await client.close()


async def test_phrase_list_narrows_recognition(server: LocalServer, utterance) -> None:
    phrases = ["Turn on the kitchen lights.", "Open the garage door."]
    client = await _session(
        server.url,
        input_audio_transcription={"model": "azure-speech", "phrase_list": phrases},
        turn_detection={"type": "server_vad", "create_response": False},
    )
    for phrase in reversed(phrases):
        await client.send_audio(utterance(phrase, 300, 800).pcm)
        assert (await client.expect("conversation.item.input_audio_transcription.completed"))[
            "transcript"
        ] == phrase
    await client.close()


async def test_audio_turn_gets_spoken_answer(server: LocalServer, utterance) -> None:
    client = await _session(server.url, **TRANSCRIBE, output_audio_timestamp_types=["word"])
    await client.send_audio(utterance("What is the capital of France?").pcm)
    assert (await client.expect("conversation.item.input_audio_transcription.completed"))[
        "transcript"
    ] == "What is the capital of France?"
    done = await client.expect("response.done", timeout=15)
    assert (
        done["response"]["status"] == "completed" and done["response"]["usage"]["output_tokens"] > 0
    )
    rid = done["response"]["id"]
    audio = b"".join(
        base64.b64decode(e["delta"])
        for e in client.seen("response.audio.delta")
        if e["response_id"] == rid
    )
    assert len(audio) > 24000 * 2  # over a second of 24 kHz pcm16
    assert np.abs(np.frombuffer(audio, "<i2")).max() > 3000  # it holds speech, not silence
    words = [e["text"] for e in client.seen("response.audio_timestamp.delta")]
    assert words == ["The", "capital", "of", "France", "is", "Paris"]
    offsets = [e["audio_offset_ms"] for e in client.seen("response.audio_timestamp.delta")]
    assert offsets == sorted(offsets) and offsets[-1] < len(audio) // 48
    assert (
        "".join(e["delta"] for e in client.seen("response.audio_transcript.delta"))
        == "The capital of France is Paris."
    )
    order = [
        e["type"]
        for e in client.events
        if e["type"].startswith("response.") and "delta" not in e["type"]
    ]
    assert order == [
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.audio.done",
        "response.audio_timestamp.done",
        "response.audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    await client.close()


async def test_barge_in_cancels_the_response(realtime_server: LocalServer, utterance) -> None:
    client = await _session(realtime_server.url, **TRANSCRIBE)
    await client.send_audio(utterance("Tell me a story.", 300, 700).pcm)
    created = await client.expect("response.created", timeout=10)
    await client.expect("response.audio.delta", timeout=10)
    await client.send_audio(utterance("Stop.", 300, 700).pcm)
    await client.expect("input_audio_buffer.speech_started")
    done = await client.expect("response.done", timeout=5)
    assert done["response"]["id"] == created["response"]["id"]
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["response"]["output"][0]["status"] == "incomplete"
    index = client.events.index(done)
    second = await client.expect("response.done", timeout=10)
    late = [e for e in client.events[index:] if e.get("response_id") == created["response"]["id"]]
    assert late == []  # nothing of the cancelled response after its response.done
    assert second["response"]["output"][0]["content"][0]["transcript"] == "Okay, I will stop."
    await client.close()


async def test_manual_turns_commit_and_respond(server: LocalServer, utterance) -> None:
    client = await _session(server.url, **TRANSCRIBE, turn_detection=None)
    await client.send_audio(utterance("Hello, how are you?").pcm)
    await client.send({"type": "input_audio_buffer.commit"})
    committed = await client.expect("input_audio_buffer.committed")
    assert (await client.expect("conversation.item.input_audio_transcription.completed"))[
        "transcript"
    ] == "Hello, how are you?"
    assert client.seen("input_audio_buffer.speech_started") == []
    await client.send({"type": "response.create"})
    done = await client.expect("response.done")
    assert (
        done["response"]["output"][0]["content"][0]["transcript"] == "Hello! I am fine, thank you."
    )
    assert committed["item_id"] != done["response"]["output"][0]["id"]
    await client.close()


async def test_text_modality_and_tool_output(server: LocalServer) -> None:
    client = await _session(server.url, modalities=["text"])
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": "call_1",
                "output": "foggy, 12 degrees",
            },
        }
    )
    created = await client.expect("conversation.item.created")
    assert (
        created["item"]["id"].startswith("item_")
        and created["item"]["type"] == "function_call_output"
    )
    await client.send({"type": "response.create"})
    done = await client.expect("response.text.done")
    assert done["text"] == "The tool returned: foggy, 12 degrees"
    assert "".join(e["delta"] for e in client.seen("response.text.delta")) == done["text"]
    part = await client.expect("response.content_part.done")
    assert part["part"] == {"type": "text", "text": ""}
    await client.expect("response.done")
    assert client.seen("response.audio.delta") == []
    await client.close()
