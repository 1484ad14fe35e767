"""Reconnect rules of the sans-I/O layer: held microphone audio, per-connection expiry, the
connect rate, the bounded history replay (issue 8, items 8 and 10)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from processors.voicelive import actions as act
from processors.voicelive.gap_audio import GapAudio
from processors.voicelive.history import History
from processors.voicelive.reconnect import ConnectRate
from processors.voicelive.session_state import VoiceLiveSession

RATE = 24000


def sends(actions: list[act.Action]) -> list[dict[str, Any]]:
    return [a.event for a in actions if isinstance(a, act.Send)]


def appended(actions: list[act.Action]) -> bytes:
    return b"".join(
        base64.b64decode(e["audio"])
        for e in sends(actions)
        if e["type"] == "input_audio_buffer.append"
    )


def pcm(ms: int, value: int) -> bytes:
    """``ms`` of pcm16 at 24 kHz, every sample ``value`` (so each chunk is recognisable)."""
    return value.to_bytes(2, "little", signed=True) * (RATE * ms // 1000)


def handshake(s: VoiceLiveSession, sid: str, expires_at: int | None = None) -> list[act.Action]:
    session: dict[str, Any] = {"id": sid}
    if expires_at is not None:
        session["expires_at"] = expires_at
    out = s.receive({"type": "session.created", "session": session}, 0.0)
    return out + s.receive({"type": "session.updated", "session": {"id": sid}}, 0.0)


def test_audio_of_a_reconnect_gap_is_sent_once_when_the_new_session_is_ready() -> None:
    s = VoiceLiveSession({"input_audio_sampling_rate": RATE})
    handshake(s, "sess_1")
    before = [pcm(40, k) for k in range(1, 4)]
    gap = [pcm(40, k) for k in range(10, 40)]  # 1.2 s spoken while the connection is replaced
    after = [pcm(40, k) for k in range(50, 53)]
    sent = b"".join(appended(s.audio_in(chunk)) for chunk in before)
    s.connection_lost(replay_history=True)
    assert all(s.audio_in(chunk) == [] for chunk in gap), "audio must wait for the new session"
    created = s.receive({"type": "session.created", "session": {"id": "sess_2"}}, 0.0)
    assert appended(created) == b"", "audio before session.updated"
    ready = s.receive({"type": "session.updated", "session": {"id": "sess_2"}}, 0.0)
    sent += appended(ready)
    sent += b"".join(appended(s.audio_in(chunk)) for chunk in after)
    assert sent == b"".join(before + gap + after), (
        "microphone audio lost or sent twice across the reconnect"
    )
    assert s.audio_dropped_frames == 0
    # A second session.updated (a config change) sends nothing again.
    assert appended(s.receive({"type": "session.updated", "session": {"id": "sess_2"}}, 0.0)) == b""


def test_audio_before_the_first_session_is_ready_is_held_not_dropped() -> None:
    s = VoiceLiveSession({})
    assert s.audio_in(pcm(100, 7)) == []
    assert appended(handshake(s, "sess_1")) == pcm(100, 7)


def test_held_audio_is_bounded_to_the_last_ten_seconds_and_the_rest_counted() -> None:
    s = VoiceLiveSession({"input_audio_sampling_rate": RATE})
    chunks = [pcm(500, k) for k in range(24)]  # 12 s of gap
    for chunk in chunks:
        s.audio_in(chunk)
    out = handshake(s, "sess_1")
    assert appended(out) == b"".join(chunks[4:]), "the newest 10 s are kept, in order"
    assert s.audio_dropped_frames == 2 * RATE
    assert all(
        len(base64.b64decode(e["audio"])) <= RATE
        for e in sends(out)
        if e["type"].endswith("append")
    )


def test_gap_buffer_cuts_inside_a_chunk_on_a_sample_boundary() -> None:
    gap = GapAudio(1000, max_seconds=0.01, append_seconds=0.004)  # 10 frames, appends of 4
    gap.hold(bytes(range(14)))  # 7 frames
    gap.hold(bytes(range(100, 110)))  # 5 more: 2 oldest frames must go
    assert gap.dropped_frames == 2
    assert gap.release() == [
        bytes(range(4, 12)),
        bytes([12, 13, 100, 101, 102, 103, 104, 105]),
        bytes(range(106, 110)),
    ]
    gap.hold(b"\1\0" * 3)
    assert b"".join(gap.release()) == b"\1\0" * 3 and gap.held_frames == 0


def test_a_new_session_without_expires_at_does_not_inherit_the_old_one() -> None:
    s = VoiceLiveSession({})
    handshake(s, "sess_1", expires_at=2_000_000_000)
    assert s.expires_at == 2_000_000_000
    s.connection_lost()
    handshake(s, "sess_2")
    assert s.expires_at is None, "renewal would be scheduled from the previous session's expiry"


def test_connect_rate_is_a_sliding_window() -> None:
    rate = ConnectRate(limit=30, window_s=60.0)
    for k in range(30):
        assert rate.wait(float(k)) == 0.0
        rate.record(float(k))
    assert rate.wait(29.5) == pytest.approx(30.5)  # the oldest (t=0) leaves the window at 60
    assert rate.wait(60.0) == 0.0
    rate.record(60.0)
    assert rate.wait(60.5) == pytest.approx(0.5)  # t=1 leaves at 61
    assert rate.count(60.5) == 30


def test_connect_rate_spaces_optional_connects_only() -> None:
    rate = ConnectRate(limit=30, window_s=60.0)
    rate.record(100.0)
    assert rate.wait(100.5) == 0.0  # a reconnect after a loss goes at once
    assert rate.wait(100.5, optional=True) == pytest.approx(1.5)  # a renewal keeps 2 s spacing
    assert rate.wait(103.0, optional=True) == 0.0


def test_renewals_of_two_second_sessions_keep_to_thirty_connects_a_minute() -> None:
    """A server whose sessions last 2 s: the client renews when the rate allows, never more."""
    rate = ConnectRate()
    now, connects = 0.0, []
    while now < 300.0:
        now += max(1.0, rate.wait(now, optional=True))  # due halfway through each 2 s session
        rate.record(now)
        connects.append(now)
    for start in connects:
        assert sum(1 for t in connects if start <= t < start + 60.0) <= 30


def _turn(s: VoiceLiveSession, k: int) -> None:
    s.receive(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": f"u{k}",
            "transcript": f"Question {k} " + "word " * 10,
        },
        0.0,
    )
    s.receive({"type": "response.created", "response": {"id": f"r{k}"}}, 0.0)
    s.receive(
        {
            "type": "response.audio_transcript.done",
            "response_id": f"r{k}",
            "item_id": f"a{k}",
            "transcript": f"Answer {k} " + "word " * 20,
        },
        0.0,
    )
    s.receive({"type": "response.done", "response": {"id": f"r{k}", "status": "completed"}}, 0.0)


def test_history_replayed_after_a_long_session_is_bounded_and_summarised() -> None:
    s = VoiceLiveSession({})
    handshake(s, "sess_1")
    for k in range(192):  # an hour of turns: 384 messages
        _turn(s, k)
    s.connection_lost(replay_history=True)
    items = [
        e["item"] for e in sends(handshake(s, "sess_2")) if e["type"] == "conversation.item.create"
    ]
    assert 2 <= len(items) <= 41, f"{len(items)} items replayed"
    texts = [item["content"][0]["text"] for item in items]
    assert sum(len(t) for t in texts[1:]) <= 8000
    assert items[0]["role"] == "system" and "not repeated" in texts[0]
    assert str(384 - (len(items) - 1)) in texts[0], texts[0]
    assert texts[-1].startswith("Answer 191") and texts[-2].startswith("Question 191"), (
        "the latest turns are kept"
    )
    assert len(texts[0]) <= 2000


def test_short_history_is_replayed_whole_without_a_summary() -> None:
    h = History()
    h.append("user", "Hello?")
    h.append("assistant", "Hi there.")
    assert [e["item"]["role"] for e in h.replay()] == ["user", "assistant"]
    assert h.summary() is None


def test_one_huge_message_is_cut_to_the_bound_not_dropped() -> None:
    h = History(max_chars=100)
    h.append("user", "x" * 500)
    (item,) = h.replay()
    assert len(item["item"]["content"][0]["text"]) == 100


def test_an_hour_of_turns_leaves_no_more_state_than_a_minute() -> None:
    """Per-response records are bounded: memory stays flat over a long session (the soak's
    RSS figure), and response.done no longer scans every answer ever given."""
    s = VoiceLiveSession({})
    handshake(s, "sess_1")
    for k in range(720):  # an hour of turns, one every 5 s
        _turn(s, k)
        s.receive({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0}, 0.0)
    sizes = [len(s._responses), len(s._transcripts), len(s._audio_frames), len(s._interrupted)]
    assert max(sizes) <= 64, sizes


def test_held_audio_of_a_stereo_session_keeps_ten_seconds_of_frames() -> None:
    """With a client echo reference the session's audio is 2 channels: the bound and the count
    are in frames (microphone + reference), and a cut never splits a frame."""
    echo = {"type": "server_echo_cancellation", "reference_source": "client", "channels": 2}
    s = VoiceLiveSession({"input_audio_sampling_rate": RATE, "input_audio_echo_cancellation": echo})
    chunks = [pcm(500, k) * 2 for k in range(24)]  # 0.5 s of stereo frames each, 12 s in all
    for chunk in chunks:
        s.audio_in(chunk)
    out = appended(handshake(s, "sess_1"))
    assert out == b"".join(chunks[4:]) and len(out) == 10 * RATE * 4
    assert s.audio_dropped_frames == 2 * RATE
