"""Barge-in, truncation, cancellation and ordering rules of the sans-I/O session."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.voicelive import actions as act
from processors.voicelive.session_state import VoiceLiveSession


def sends(actions: list[act.Action]) -> list[dict[str, Any]]:
    return [a.event for a in actions if isinstance(a, act.Send)]


def ready(
    session: dict[str, Any] | None = None, updated: dict[str, Any] | None = None
) -> VoiceLiveSession:
    s = VoiceLiveSession(session or {"turn_detection": {"type": "server_vad"}})
    s.receive({"type": "session.created", "session": {"id": "sess_1", "expires_at": 123}}, 0.0)
    s.receive(
        {
            "type": "session.updated",
            "session": updated
            or {
                "id": "sess_1",
                "turn_detection": {"type": "server_vad", "interrupt_response": True},
            },
        },
        0.0,
    )
    return s


def delta(resp: str, item: str, frames: int = 2400) -> dict[str, Any]:
    return {
        "type": "response.audio.delta",
        "response_id": resp,
        "item_id": item,
        "delta": base64.b64encode(b"\x01\x00" * frames).decode(),
    }


def start_response(s: VoiceLiveSession, resp: str) -> None:
    s.receive({"type": "response.created", "response": {"id": resp, "status": "in_progress"}}, 0.0)


def test_audio_only_after_session_updated() -> None:
    s = VoiceLiveSession({})
    assert s.audio_in(b"\0\0" * 960) == []
    s.receive({"type": "session.created", "session": {"id": "sess_1"}}, 0.0)
    assert s.audio_in(b"\0\0" * 960) == []
    held = sends(s.receive({"type": "session.updated", "session": {"id": "sess_1"}}, 0.0))
    assert sum(len(base64.b64decode(e["audio"])) for e in held) == 2 * 1920  # held, then sent once
    assert s.audio_dropped_frames == 0
    (append,) = sends(s.audio_in(b"\0\0" * 960))
    assert (
        append["type"] == "input_audio_buffer.append"
        and base64.b64decode(append["audio"]) == b"\0\0" * 960
    )


def test_barge_in_drops_late_deltas_of_the_interrupted_response_only() -> None:
    s = ready()
    start_response(s, "resp_1")
    assert isinstance(s.receive(delta("resp_1", "item_1"), 1.0)[0], act.PlayAudio)
    actions = s.receive(
        {"type": "input_audio_buffer.speech_started", "audio_start_ms": 900, "item_id": "item_u2"},
        1.1,
    )
    (started,) = [a for a in actions if isinstance(a, act.SpeechStarted)]
    assert started.interruption == act.Interruption("resp_1", "item_1")
    assert sends(actions) == []  # the server interrupts by itself (interrupt_response true)
    assert s.receive(delta("resp_1", "item_1"), 1.2) == []
    s.receive({"type": "response.done", "response": {"id": "resp_1", "status": "cancelled"}}, 1.3)
    start_response(s, "resp_2")
    assert isinstance(s.receive(delta("resp_2", "item_2"), 1.4)[0], act.PlayAudio)


def test_barge_in_after_response_done_still_interrupts_playing_audio() -> None:
    s = ready()
    start_response(s, "resp_1")
    s.receive(delta("resp_1", "item_1", frames=48000), 1.0)
    s.receive({"type": "response.done", "response": {"id": "resp_1", "status": "completed"}}, 1.1)
    actions = s.receive({"type": "input_audio_buffer.speech_started", "item_id": "u"}, 1.5)
    (started,) = [a for a in actions if isinstance(a, act.SpeechStarted)]
    assert started.interruption.item_id == "item_1"
    assert sends(actions) == []  # nothing active: never cancel
    (trunc,) = sends(s.truncate_heard(started.interruption, heard_ms=500))
    assert trunc == {
        **trunc,
        "type": "conversation.item.truncate",
        "item_id": "item_1",
        "content_index": 0,
        "audio_end_ms": 500,
    }


def test_cancel_only_when_server_does_not_interrupt_and_a_response_is_active() -> None:
    s = ready(
        updated={
            "id": "sess_1",
            "turn_detection": {"type": "server_vad", "interrupt_response": False},
        }
    )
    actions = s.receive({"type": "input_audio_buffer.speech_started", "item_id": "u"}, 0.0)
    assert sends(actions) == []
    start_response(s, "resp_1")
    actions = s.receive({"type": "input_audio_buffer.speech_started", "item_id": "u"}, 0.0)
    assert [e["type"] for e in sends(actions)] == ["response.cancel"]
    assert sends(actions)[0]["response_id"] == "resp_1"


def test_truncate_is_skipped_when_everything_was_heard_and_bounded_by_what_was_received() -> None:
    s = ready()
    start_response(s, "resp_1")
    s.receive(delta("resp_1", "item_1", frames=24000), 0.0)
    s.receive({"type": "response.done", "response": {"id": "resp_1", "status": "completed"}}, 0.0)
    interruption = act.Interruption("resp_1", "item_1")
    assert s.truncate_heard(interruption, heard_ms=1000) == []
    assert s.truncate_heard(interruption, heard_ms=None) == []
    s2 = ready()
    start_response(s2, "resp_1")
    s2.receive(delta("resp_1", "item_1", frames=24000), 0.0)
    (trunc,) = sends(s2.truncate_heard(interruption, heard_ms=10**9))
    assert trunc["audio_end_ms"] == 1000  # active response: the server has more than was received
    assert s2.truncate_heard(interruption, heard_ms=4) == []  # once per item


def test_response_create_is_deferred_while_a_response_runs_and_after_the_server_refuses() -> None:
    s = ready()
    start_response(s, "resp_1")
    assert [e["type"] for e in sends(s.user_text("hello"))] == ["conversation.item.create"]
    done = s.receive(
        {"type": "response.done", "response": {"id": "resp_1", "status": "completed"}}, 0.0
    )
    (create,) = sends(done)
    assert create["type"] == "response.create"
    refused = s.receive(
        {
            "type": "error",
            "error": {
                "code": "conversation_already_has_active_response",
                "message": "busy",
                "event_id": create["event_id"],
            },
        },
        0.0,
    )
    assert refused[0].benign
    start_response(s, "resp_other")
    assert [
        e["type"]
        for e in sends(s.receive({"type": "response.done", "response": {"id": "resp_other"}}, 0.0))
    ] == ["response.create"]


def test_text_before_ready_is_sent_once_ready() -> None:
    s = VoiceLiveSession({})
    assert s.user_text("bonjour") == []
    s.receive({"type": "session.created", "session": {"id": "x"}}, 0.0)
    out = s.receive({"type": "session.updated", "session": {"id": "x"}}, 0.0)
    assert [e["type"] for e in sends(out)] == ["conversation.item.create", "response.create"]


def test_rejected_session_update_is_fatal() -> None:
    s = VoiceLiveSession({"voice": "nope"})
    (_, update) = s.receive({"type": "session.created", "session": {"id": "x"}}, 0.0)
    (err,) = s.receive(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_value",
                "message": "bad voice",
                "event_id": update.event["event_id"],
            },
        },
        0.0,
    )
    assert err.fatal and "session.update rejected: bad voice" == err.message


def test_cut_short_transcript_is_still_reported_once() -> None:
    s = ready()
    start_response(s, "resp_1")
    for word in ("Once", " upon", " a"):
        s.receive(
            {
                "type": "response.audio_transcript.delta",
                "response_id": "resp_1",
                "item_id": "item_1",
                "delta": word,
            },
            0.0,
        )
    s.receive({"type": "input_audio_buffer.speech_started", "item_id": "u"}, 0.0)
    out = s.receive(
        {"type": "response.done", "response": {"id": "resp_1", "status": "cancelled"}}, 0.0
    )
    (t,) = [a for a in out if isinstance(a, act.AgentTranscript)]
    assert (t.text, t.interrupted, t.modality) == ("Once upon a", True, "audio")
    late = s.receive(
        {
            "type": "response.audio_transcript.done",
            "response_id": "resp_1",
            "item_id": "item_1",
            "transcript": "Once upon a time",
        },
        0.0,
    )
    assert [a for a in late if isinstance(a, act.AgentTranscript)] == []


def test_local_interrupt_cancels_only_an_active_response() -> None:
    s = ready()
    assert sends(s.local_interrupt()) == []
    start_response(s, "resp_1")
    assert [e["type"] for e in sends(s.local_interrupt())] == ["response.cancel"]


def test_thread_id_is_kept_for_resuming_an_agent_conversation() -> None:
    s = VoiceLiveSession({})
    s.receive(
        {
            "type": "session.created",
            "session": {
                "id": "x",
                "agent": {"type": "agent", "name": "a", "thread_id": "thread_9"},
            },
        },
        0.0,
    )
    assert s.thread_id == "thread_9"


# -- properties over generated event sequences ------------------------------------------------

RESPONSES = st.sampled_from(["resp_a", "resp_b", "resp_c"])
ITEMS = st.sampled_from(["item_a", "item_b"])
EVENTS = st.one_of(
    st.builds(lambda r: {"type": "response.created", "response": {"id": r}}, RESPONSES),
    st.builds(lambda r, i, n: delta(r, i, n), RESPONSES, ITEMS, st.integers(1, 4800)),
    st.builds(
        lambda r: {"type": "response.done", "response": {"id": r, "status": "completed"}}, RESPONSES
    ),
    st.just({"type": "input_audio_buffer.speech_started", "item_id": "u"}),
    st.just({"type": "input_audio_buffer.speech_stopped", "item_id": "u"}),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(EVENTS, st.integers(0, 10**6)), max_size=40), st.booleans())
def test_rules_hold_for_any_event_order(
    steps: list[tuple[dict[str, Any], int]], server_interrupts: bool
) -> None:
    s = ready(
        updated={
            "id": "s",
            "turn_detection": {"type": "server_vad", "interrupt_response": server_interrupts},
        }
    )
    interrupted: set[str] = set()
    for event, played in steps:
        active_before = s.active_response
        out = s.receive(event, 0.0)
        for a in out:
            if isinstance(a, act.PlayAudio):
                assert a.response_id not in interrupted, (
                    "late delta of an interrupted response played"
                )
            if isinstance(a, act.Send) and a.event["type"] == "response.cancel":
                assert active_before is not None and not server_interrupts
            if isinstance(a, act.SpeechStarted):
                if active_before:
                    interrupted.add(active_before)
                if a.interruption.response_id:
                    interrupted.add(a.interruption.response_id)
                for t in sends(s.truncate_heard(a.interruption, played)):
                    assert 0 <= t["audio_end_ms"] * 24 <= s.audio_received_frames(t["item_id"])


def test_history_is_replayed_once_after_a_reconnect() -> None:
    s = ready()
    s.receive(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "u1",
            "transcript": "Hello?",
        },
        0.0,
    )
    start_response(s, "resp_1")
    s.receive(
        {
            "type": "response.audio_transcript.done",
            "response_id": "resp_1",
            "item_id": "i1",
            "transcript": "Hi there.",
        },
        0.0,
    )
    s.receive({"type": "response.done", "response": {"id": "resp_1", "status": "completed"}}, 0.0)
    s.connection_lost(replay_history=True)
    assert s.audio_in(b"\0\0") == [] and s.active_response is None
    s.receive({"type": "session.created", "session": {"id": "sess_2"}}, 0.0)
    out = s.receive({"type": "session.updated", "session": {"id": "sess_2"}}, 0.0)
    items = [e["item"] for e in sends(out) if e["type"] == "conversation.item.create"]
    assert [e["type"] for e in sends(out)][-1] == "input_audio_buffer.append"  # held audio last
    assert items == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello?"}]},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": "Hi there."}],
        },
    ]
    assert sends(s.receive({"type": "session.updated", "session": {"id": "sess_2"}}, 0.0)) == []


def test_refresh_schedule() -> None:
    from processors.voicelive.reconnect import Backoff, seconds_until_refresh

    assert seconds_until_refresh(None, connected_at=1000.0, now_wall=1000.0) == 3540.0
    assert seconds_until_refresh(1000.0 + 3600, connected_at=1000.0, now_wall=1000.0) == 3540.0
    # short-lived: halfway
    assert seconds_until_refresh(1000.0 + 10, connected_at=1000.0, now_wall=1000.0) == 5.0
    # skewed expiry ignored
    assert seconds_until_refresh(500.0, connected_at=1000.0, now_wall=1000.0) == 3540.0
    b = Backoff()
    assert all(0.25 <= b.delay(1) <= 0.5 for _ in range(100))
    assert all(b.delay(10) <= 8.0 for _ in range(100))


def test_audio_sends_say_they_are_audio_and_nothing_else_does() -> None:
    """The I/O layers read the flag instead of comparing event type strings."""
    s = ready()
    (append,) = s.audio_in(b"\x00\x00" * 960)
    assert isinstance(append, act.Send) and append.audio
    assert append.event["type"] == "input_audio_buffer.append"
    others = [a for a in s.user_text("hello") if isinstance(a, act.Send)]
    assert others and not any(a.audio for a in others)
