"""The sans-I/O session driven by every recorded Voice Live session and every example event."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from processors.voicelive import actions as act
from processors.voicelive import wire as ev
from processors.voicelive.session_state import VoiceLiveSession
from processors.voicelive.wire import INFORMATIONAL
from tests.support.traces import CLIENT_EVENT_TYPES, load_examples, load_trace, trace_paths

TRACES = trace_paths()


def test_traces_are_present() -> None:
    assert len(TRACES) >= 3


def replay(
    path: Path,
) -> tuple[VoiceLiveSession, list[tuple[dict[str, Any], list[act.Action]]], list]:
    trace = load_trace(path)
    sent_update = next(
        i.data for i in trace if i.direction == "sent" and i.data["type"] == "session.update"
    )
    session = VoiceLiveSession(sent_update["session"])
    steps = []
    for k, inter in enumerate(trace):
        if inter.direction == "received":
            steps.append((inter.data, session.receive(json.dumps(inter.data), now=float(k))))
    return session, steps, trace


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.stem)
def test_trace_handshake_and_no_warnings(path: Path) -> None:
    session, steps, _ = replay(path)
    first_event, first_actions = steps[0]
    assert first_event["type"] == "session.created"
    sends = [a for a in first_actions if isinstance(a, act.Send)]
    assert [s.event["type"] for s in sends] == ["session.update"]
    assert session.ready and session.session_id == first_event["session"]["id"]
    assert session.expires_at == first_event["session"]["expires_at"]
    for event, actions in steps:
        assert not [a for a in actions if isinstance(a, act.Notice) and a.level != "debug"], (
            event["type"],
            actions,
        )
        if event["type"] not in INFORMATIONAL and event["type"] != "session.created":
            assert actions, f"{event['type']} produced nothing"
    assert session.active_response is None


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.stem)
def test_trace_audio_transcripts_and_responses(path: Path) -> None:
    _, steps, trace = replay(path)
    actions = [a for _, acts in steps for a in acts]
    deltas = [e for e, _ in steps if e["type"] == "response.audio.delta"]
    played = [a for a in actions if isinstance(a, act.PlayAudio)]
    assert len(played) == len(deltas)
    for delta, play in zip(deltas, played, strict=True):
        raw = base64.b64decode(delta["delta"])
        assert (
            play.pcm == raw[: len(raw) // 2 * 2]
            and play.item_id == delta["item_id"]
            and play.response_id == delta["response_id"]
        )
    # Each transcript/text done event becomes exactly one AgentTranscript with its full text.
    dones = [
        e for e, _ in steps if e["type"] in ("response.audio_transcript.done", "response.text.done")
    ]
    transcripts = [a for a in actions if isinstance(a, act.AgentTranscript)]
    assert [t.text for t in transcripts] == [d.get("transcript", d.get("text")) for d in dones]
    assert all(not t.interrupted for t in transcripts)
    # Deltas add up to the final text.
    for t in transcripts:
        pieces = "".join(
            a.delta for a in actions if isinstance(a, act.AgentText) and a.item_id == t.item_id
        )
        assert pieces == t.text
    finished = [a for a in actions if isinstance(a, act.ResponseFinished)]
    responses = [e["response"] for e, _ in steps if e["type"] == "response.done"]
    assert [(f.response_id, f.status) for f in finished] == [
        (r["id"], r["status"]) for r in responses
    ]


def test_tool_call_trace_surfaces_the_call() -> None:
    path = next(p for p in TRACES if "tool_call" in p.stem)
    _, steps, trace = replay(path)
    calls = [a for _, acts in steps for a in acts if isinstance(a, act.FunctionCall)]
    done = next(e for e, _ in steps if e["type"] == "response.function_call_arguments.done")
    assert [(c.name, c.call_id, c.arguments) for c in calls] == [
        (done["name"], done["call_id"], done["arguments"])
    ]
    json.loads(calls[0].arguments)


def test_tool_result_waits_for_response_done() -> None:
    """The client's response.create for a tool result is deferred until response.done."""
    path = next(p for p in TRACES if "tool_call" in p.stem)
    trace = load_trace(path)
    sent_update = next(
        i.data for i in trace if i.direction == "sent" and i.data["type"] == "session.update"
    )
    session = VoiceLiveSession(sent_update["session"])
    created_sent = False
    for inter in trace:
        if inter.direction != "received":
            continue
        actions = session.receive(inter.data, 0.0)
        if inter.data["type"] == "response.function_call_arguments.done":
            result = session.function_result(inter.data["call_id"], '{"ok": true}')
            assert [a.event["type"] for a in result if isinstance(a, act.Send)] == [
                "conversation.item.create"
            ]
        if inter.data["type"] == "response.done" and not created_sent:
            assert "response.create" in [
                a.event["type"] for a in actions if isinstance(a, act.Send)
            ]
            created_sent = True
    assert created_sent


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.stem)
def test_client_events_match_recorded_shapes(path: Path) -> None:
    """Our builders produce what real clients sent in the recordings (same keys, item shape)."""
    trace = load_trace(path)
    for inter in trace:
        if inter.direction != "sent":
            continue
        data = inter.data
        if (
            data["type"] == "conversation.item.create"
            and data["item"].get("type") == "message"
            and data["item"]["role"] == "user"
        ):
            text = data["item"]["content"][0]["text"]
            ours = ev.user_text_item(text)
            assert ours["item"] == data["item"]
        elif data["type"] == "response.create":
            assert set(ev.response_create()) - {"event_id"} == set(data) - {"event_id"}
        elif (
            data["type"] == "conversation.item.create"
            and data["item"].get("type") == "function_call_output"
        ):
            ours = ev.function_output_item(data["item"]["call_id"], data["item"]["output"])
            assert ours["item"] == data["item"]


EXAMPLES = load_examples()
SERVER_EXAMPLES = {k: v for k, v in EXAMPLES.items() if k not in CLIENT_EVENT_TYPES}


def test_examples_cover_the_server_events() -> None:
    assert len(SERVER_EXAMPLES) == 58


@pytest.mark.parametrize("kind", sorted(SERVER_EXAMPLES))
def test_every_example_server_event_is_handled_without_error(kind: str) -> None:
    session = VoiceLiveSession({"turn_detection": {"type": "server_vad"}})
    session.receive(EXAMPLES["session.created"], 0.0)
    session.receive(EXAMPLES["session.updated"], 0.0)
    session.receive(EXAMPLES["response.created"], 0.0)
    actions = session.receive(EXAMPLES[kind], 1.0)
    assert not [a for a in actions if isinstance(a, act.Notice) and "skipped" in a.message], actions
    assert not [
        a for a in actions if isinstance(a, act.Notice) and "unknown server event" in a.message
    ], actions
    # The same event with every field removed but its type must not crash either.
    session.receive({"type": kind}, 2.0)
    # And with every field replaced by a wrong type.
    session.receive(
        {k: (v if k == "type" else [1, {"x": None}]) for k, v in EXAMPLES[kind].items()}, 3.0
    )


def test_error_example_is_benign_and_other_codes_are_not() -> None:
    session = VoiceLiveSession({})
    (benign,) = session.receive(EXAMPLES["error"], 0.0)
    assert isinstance(benign, act.ServiceError) and benign.benign and not benign.fatal
    (other,) = session.receive(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "unknown_parameter",
                "message": "Unknown parameter: 'session.type'.",
            },
        },
        0.0,
    )
    assert not other.benign and not other.fatal and "session.type" in other.message


def test_unknown_and_malformed_events_are_skipped_with_a_notice() -> None:
    session = VoiceLiveSession({})
    (notice,) = session.receive("{not json", 0.0)
    assert isinstance(notice, act.Notice) and notice.level == "warning"
    (notice,) = session.receive('{"type": "brand.new.event", "x": 1}', 0.0)
    assert notice.level == "debug"
    (notice,) = session.receive("[1, 2]", 0.0)
    assert notice.level == "warning"
    (notice,) = session.receive(b"\xff\xfe", 0.0)
    assert notice.level == "warning"
