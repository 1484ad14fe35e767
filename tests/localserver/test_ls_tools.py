"""The local server calls declared tools in model mode: the user's words pick the tool, the
function call goes out with the real service's events (as in the recorded tool round), the
server waits for the output and answers from it; the recogniser hears the tools' questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ls_client import Client

from localserver.server import LocalServer
from localserver.speak import speak_to_wav
from localserver.tools import choose_tool, tool_phrases
from tests.support.audio import read_wav
from tests.support.traces import TRACE_DIR, load_trace

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TIME = {
    "type": "function",
    "name": "get_current_time",
    "description": "The time.",
    "parameters": {"type": "object", "properties": {}, "required": []},
}
DICE = {
    "type": "function",
    "name": "roll_dice",
    "parameters": {
        "type": "object",
        "properties": {"sides": {"type": "integer"}, "how": {"enum": ["gently", "hard"]}},
        "required": ["sides", "how"],
    },
}


async def _model_session(
    url: str, query: dict[str, str] | None = None, **session: object
) -> Client:
    client = await Client.open(url, query)
    await client.expect("session.created")
    await client.send({"type": "session.update", "session": session})
    await client.expect("session.updated")
    return client


def _after(events: list[dict], first: str) -> list[dict]:
    start = next(k for k, e in enumerate(events) if e["type"] == first)
    return events[start:]


async def test_a_function_call_has_the_recorded_event_sequence(server: LocalServer) -> None:
    client = await _model_session(server.url, modalities=["text"], tools=[TIME, WEATHER])
    await client.ask("What is the weather in London?")
    done = await client.expect("response.done")
    ours = _after(client.events, "response.created")
    recorded = [
        i.data
        for i in load_trace(TRACE_DIR / "test_tool_call_round.yaml")
        if i.direction == "received"
    ]
    recorded = recorded[
        : next(k for k, e in enumerate(recorded) if e["type"] == "response.done") + 1
    ]

    def shape(events: list[dict]) -> list[str]:  # runs of argument deltas count once
        kinds = [e["type"] for e in events]
        return [k for n, k in enumerate(kinds) if not (n and k == kinds[n - 1])]

    assert shape(ours) == shape(_after(recorded, "response.created"))
    call = next(e for e in ours if e["type"] == "response.function_call_arguments.done")
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "London"}
    deltas = [e for e in ours if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(e["delta"] for e in deltas) == call["arguments"]
    for event in [*deltas, call]:
        assert set(event) >= {"response_id", "item_id", "output_index", "call_id"}
        assert (event["response_id"], event["call_id"]) == (done["response"]["id"], call["call_id"])
    added = next(e for e in ours if e["type"] == "response.output_item.added")["item"]
    assert (
        added | {"status": "completed", "arguments": call["arguments"]}
        == done["response"]["output"][0]
    )
    assert (
        added["type"] == "function_call"
        and added["status"] == "in_progress"
        and added["arguments"] == ""
    )
    assert done["response"]["status"] == "completed"

    # The server waits for the output, then answers from it.
    assert client.seen("response.text.delta") == []
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": '{"sky": "foggy", "degrees": 12}',
            },
        }
    )
    created = await client.expect("conversation.item.created")
    assert created["previous_item_id"] == call["item_id"]
    await client.send({"type": "response.create"})
    text = await client.expect("response.text.done")
    assert text["text"] == "The tool returned: sky foggy, degrees 12"
    await client.close()


async def test_no_call_without_a_matching_tool_or_with_tool_choice_none(
    server: LocalServer,
) -> None:
    for session, question in (
        ({"tools": [WEATHER]}, "What time is it?"),
        ({"tools": [TIME], "tool_choice": "none"}, "What time is it?"),
        ({"tools": [WEATHER]}, "What is the weather?"),
    ):  # no city: cannot call
        client = await _model_session(server.url, modalities=["text"], **session)
        await client.ask(question)
        done = await client.expect("response.done")
        assert done["response"]["output"][0]["type"] == "message", (session, question)
        assert client.seen("response.function_call_arguments.done") == []
        await client.close()


async def test_agents_do_not_call_client_tools(server: LocalServer) -> None:
    query = {"api-version": "2026-07-15", "agent-name": "a", "agent-project-name": "p"}
    client = await _model_session(server.url, query, modalities=["text"], tools=[TIME])
    await client.ask("What time is it?")
    done = await client.expect("response.done")
    assert done["response"]["output"][0]["type"] == "message"
    await client.close()


async def test_the_recogniser_hears_the_questions_of_declared_tools(
    server: LocalServer, utterance
) -> None:
    """A phrase list without the question: it is heard only once a tool that answers it exists."""
    question = utterance("What is the weather in Paris?")
    heard = []
    for tools in ([], [WEATHER]):
        client = await _model_session(
            server.url,
            input_audio_transcription={
                "model": "azure-speech",
                "phrase_list": ["Hello, how are you?", "Thank you, goodbye."],
            },
            tools=tools,
            turn_detection={"type": "server_vad", "create_response": bool(tools)},
        )
        await client.send_audio(question.pcm)
        heard.append(
            (await client.expect("conversation.item.input_audio_transcription.completed"))[
                "transcript"
            ]
        )
        if tools:
            call = await client.expect("response.function_call_arguments.done")
            assert json.loads(call["arguments"]) == {"city": "Paris"}
        await client.close()
    assert heard[0] != "What is the weather in Paris?"
    assert heard[1] == "What is the weather in Paris?"


async def test_a_question_padded_with_digital_silence_is_heard_whole(
    server: LocalServer, tmp_path: Path
) -> None:
    """``python -m localserver.speak`` pads with exact zeros; pocketsphinx then heard only "What
    is the weather in" (its cepstral mean goes astray) and no tool could be called."""
    speak_to_wav("What is the weather in Paris?", tmp_path / "q.wav", pad_ms=500)
    pcm, _ = read_wav(tmp_path / "q.wav")
    client = await _model_session(
        server.url,
        input_audio_transcription={"model": "azure-speech"},
        tools=[WEATHER],
        turn_detection={
            "type": "azure_semantic_vad",
            "threshold": 0.3,
            "prefix_padding_ms": 200,
            "silence_duration_ms": 200,
        },
    )
    await client.send_audio(pcm)
    heard = await client.expect("conversation.item.input_audio_transcription.completed")
    assert heard["transcript"] == "What is the weather in Paris?"
    call = await client.expect("response.function_call_arguments.done")
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    await client.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What time is it?", ("get_current_time", {})),
        ("What is the weather in New York?", ("get_weather", {"city": "New York"})),
        ("Roll a twelve sided dice, hard", ("roll_dice", {"sides": 12, "how": "hard"})),
        ("Roll a dice", None),  # sides and how are required and were not said
        ("Tell me a story.", None),
    ],
)
def test_the_users_words_pick_the_tool_and_its_arguments(text: str, expected: tuple | None) -> None:
    call = choose_tool(text, [TIME, WEATHER, DICE])
    assert (None if call is None else (call.name, call.arguments)) == expected


def test_tool_phrases_are_the_known_questions_that_call_a_declared_tool() -> None:
    assert tool_phrases([TIME]) == ["What time is it?"]
    assert tool_phrases([WEATHER]) == [
        "What is the weather in London?",
        "What is the weather in Paris?",
        "What is the weather in Seattle?",
    ]
    assert tool_phrases([]) == []
