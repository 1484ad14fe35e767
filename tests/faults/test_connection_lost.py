"""The connection breaks after the session started: the client reconnects and resumes.

Story of every run (tests/support/fault_scenarios.py): on the first connection turn 1 is answered
whole; turn 2's answer starts (a few words, 300 ms of audio) and the fault strikes. The client must
reconnect (first retry within 2 s), send the same ``session.update``, resume the conversation
(current agent: ``conversation-id`` = the thread id; model and classic agent: the transcript is
replayed as ``conversation.item.create``), and turn 3 then plays and is logged. The reconnect time
printed is from the fault to the new connection's ``session.created``.
"""

from __future__ import annotations

import asyncio
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.audio import find, matching_run, read_wav
from tests.support.fault_scenarios import (
    THREAD_ID,
    ResumeConversation,
    ResumeOutcome,
    agent_info,
    resume_session,
    stalling,
)
from tests.support.faulty_server import FaultyServer, close_with, drop, refuse_after, send_oversized
from tests.support.pool import SessionPool, uses
from tests.support.replay_server import ServerConn
from tests.support.scenarios import handshake
from tests.support.script_run import (
    API_KEY,
    ScriptRun,
    check_logs_private,
    check_no_crash,
    run_script,
    script_env,
    transcript_lines,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

AGENT = ("--api-key", API_KEY, "--agent-name", "my-agent", "--project-name", "proj")
CLASSIC = (
    "--api-key",
    API_KEY,
    "--agent-id",
    "asst_A",
    "--project-name",
    "proj",
    "--agent-access-token",
    "T-access-51c0ffee",
)
PING_S = 0.5  # keepalive interval and timeout for the stall test
DEFAULT_PING_S = 5.0  # the shipped keepalive interval and timeout (ConnectionSettings)
FLAP_S = 8.0  # input length of the flapping-server run


Outcome = ResumeOutcome


def closing(code: int, reason: str = "") -> Any:
    return lambda conversation: lambda conn: close_with(conn, code, reason)


SESSION_EXPIRED_ERROR = {
    "type": "error",
    "event_id": "event_Exp1",
    "error": {
        "type": "invalid_request_error",
        "code": "session_expired",
        "message": "Your session hit the maximum duration of 60 minutes.",
        "param": None,
        "event_id": None,
    },
}


def expired_with_error_event(conversation: ResumeConversation) -> Any:
    """What a realtime server does at its time limit: an ``error`` event with code
    ``session_expired`` (seen from OpenAI's realtime service, livekit/agents#1122), then close
    1001."""

    async def fault(conn: ServerConn) -> None:
        conn.mark("fault")
        await conn.send(SESSION_EXPIRED_ERROR)
        await conn.ws.close(1001, "session_expired")

    return fault


async def flapping_session(tmp: Path) -> tuple[ScriptRun, FaultyServer]:
    """Every connection is accepted, its session starts, and 50 ms later the TCP link drops."""

    async def script(conn: ServerConn) -> None:
        await handshake(conn, session_id=f"sess_Flap{len(server.conns)}")
        await asyncio.sleep(0.05)
        drop(conn)

    async with FaultyServer(script) as server:
        run = await run_script(server.url, tmp, input_s=FLAP_S, timeout=40)
    return run, server


SESSIONS = {
    "drop-1006": resume_session(lambda c: drop),
    "close-1000": resume_session(closing(1000)),
    "close-1001": resume_session(
        closing(1001, "session_expired"), AGENT, replay=0, agent=agent_info()
    ),
    "close-1011": resume_session(closing(1011, "internal error"), CLASSIC),
    "close-1012": resume_session(closing(1012, "service restart")),
    "close-1013": resume_session(closing(1013, "try again later")),
    "over-limit": resume_session(lambda c: lambda conn: send_oversized(conn, 9 * 1024 * 1024)),
    "stall": resume_session(
        stalling,
        env=script_env(VOICELIVE_PING_INTERVAL=str(PING_S), VOICELIVE_PING_TIMEOUT=str(PING_S)),
    ),
    # The shipped keepalive (no override): the input outlasts the blind window.
    "stall-defaults": resume_session(stalling, input_s=18.0),
    "expiry": resume_session(None, replay=2, expires_in=4.0, input_s=5.0),
    "reconnect-refused": resume_session(lambda c: drop, refuse=refuse_after(1, 503), input_s=30.0),
    "flapping": flapping_session,
    "expired-error-event": resume_session(expired_with_error_event),
    "close-1008": resume_session(closing(1008, "policy violation")),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    async with SessionPool.for_module(request, SESSIONS, tmp_path_factory) as p:  # type: ignore[arg-type]
        yield p


def check_resumed(out: Outcome, *, reason_has: str, replay: bool = True) -> None:
    """Everything the contract promises after a reconnect."""
    run, conv = out.run, out.conversation
    turn1, turn2, turn3 = conv.turns
    assert run.code == 0, run.describe()
    check_no_crash(run)
    check_logs_private(run)
    assert len(out.server.conns) == 2, f"{len(out.server.conns)} connections\n{run.describe()}"
    assert not out.server.script_errors, out.server.script_errors
    first, second = out.first.record, out.second.record
    assert "turn3_done" in second.marks, f"turn 3 never completed\n{run.describe()}"

    # Same session.update, fresh credentials on the new connection.
    (update1,), (update2,) = first_of(first, "session.update"), first_of(second, "session.update")
    assert {k: v for k, v in update1.items() if k != "event_id"} == {
        k: v for k, v in update2.items() if k != "event_id"
    }
    assert second.headers.get("api-key") == API_KEY
    assert second.headers.get("x-ms-client-request-id") not in (
        None,
        "",
        first.headers.get("x-ms-client-request-id"),
    )

    # Resume: replayed history (model, classic agent) or the conversation id (current agent).
    items = [e["item"] for e in second.of_type("conversation.item.create")]
    if replay:
        assert (
            items
            == [
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": turn1.user_text}],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "text", "text": turn1.agent_text}],
                },
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": turn2.user_text}],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "text", "text": conv.spoken_text}],
                },
            ][: conv.replay_items]
        ), items
        kinds = [e["type"] for _, e in second.client_events]
        assert kinds[0] == "session.update"
        updated_at = next(t for t, e in second.sent if e["type"] == "session.updated")
        assert all(
            t >= updated_at
            for t, e in second.client_events
            if e["type"] == "conversation.item.create"
        ), "history replayed before session.updated"
    else:
        assert items == [], "a resumed current-agent conversation must not replay the history"
        assert second.query.get("conversation-id") == THREAD_ID, second.query

    # Microphone audio only once the new session is ready (the gap's audio held until then);
    # the gap costs one warning line.
    updated_at = next(t for t, e in second.sent if e["type"] == "session.updated")
    first_append = next(
        t for t, e in second.client_events if e["type"] == "input_audio_buffer.append"
    )
    assert first_append >= updated_at
    kept = run.tech_lines("WARNING", "microphone audio is kept")
    assert len(kept) == 1, run.tech_lines(containing="microphone")

    # The session log: every line of both connections, the new session id, the reconnect.
    lines = run.session_log()
    spoken = f"Agent Audio Response: {conv.spoken_text}"
    assert [line for line in transcript_lines(lines) if line != spoken] == [
        f"User Input: {turn1.user_text}",
        f"Agent Audio Response: {turn1.agent_text}",
        f"User Input: {turn2.user_text}",
        f"User Input: {turn3.user_text}",
        f"Agent Audio Response: {turn3.agent_text}",
    ], lines
    assert [line for line in lines if line.startswith("SessionID:")] == [
        "SessionID: sess_First",
        "SessionID: sess_Second",
    ]
    reconnected = [line for line in lines if line.startswith("Reconnected")]
    assert len(reconnected) == 1 and reason_has in reconnected[0], lines
    assert lines.index("SessionID: sess_Second") < lines.index(f"User Input: {turn3.user_text}")
    assert lines.index(reconnected[0]) < lines.index(f"User Input: {turn3.user_text}")

    # Turn 3 played whole; the session ended cleanly.
    wav, _ = read_wav(run.out_wav)
    start = find(wav, turn3.audio)
    assert start >= 0 and matching_run(wav, start, turn3.audio) == len(turn3.audio) // 2, (
        "turn 3 did not play whole"
    )
    assert second.close_code == 1000
    run.events()  # every JSONL line parses


def first_of(record: Any, kind: str) -> list[dict[str, Any]]:
    return record.of_type(kind)[:1]


def report(name: str, out: Outcome) -> None:
    print(
        f"\n{name}: first retry {out.retry_s * 1000:.0f} ms after the fault, "
        f"new session.created {out.reconnect_s * 1000:.0f} ms after it"
    )


@uses("drop-1006")
async def test_tcp_drop_mid_response_reconnects_and_resumes(pool: SessionPool) -> None:
    """TCP drop without a close frame (1006) in the middle of an answer. User sees: "connection to
    Voice Live lost without a close frame (1006): reconnecting (microphone audio is kept, the
    last 10 s, until the session is back)", then "Reconnected (...)"; the conversation goes on
    (turn 3 plays);
    the session log holds every line and "Reconnected: ... (1006)"."""
    out: Outcome = await pool.get("drop-1006")
    report("drop 1006", out)
    check_resumed(out, reason_has="1006")
    assert out.retry_s <= 2.0


@uses("drop-1006")
async def test_words_spoken_before_a_drop_stay_in_the_session_log(pool: SessionPool) -> None:
    """The agent's words of the answer the drop cut short were heard: like an interrupted
    answer, they belong in the session log (``Agent Audio Response: <the words received>``)."""
    out: Outcome = await pool.get("drop-1006")
    lines = out.run.session_log()
    spoken = f"Agent Audio Response: {out.conversation.spoken_text}"
    assert spoken in lines, f"{spoken!r} is missing from the session log:\n" + "\n".join(lines)


@uses("close-1000", "close-1012", "close-1013")
@pytest.mark.parametrize("code", ["1000", "1012", "1013"])
async def test_server_close_mid_session_reconnects(pool: SessionPool, code: str) -> None:
    """The server closes normally (1000), for a service restart (1012) or to say "try again
    later" (1013) while the user is still there. User sees one reconnect warning ("Voice Live
    closed the session (1000): reconnecting ..."), then the conversation goes on."""
    out: Outcome = await pool.get(f"close-{code}")
    report(f"close {code}", out)
    check_resumed(out, reason_has=code)
    assert out.retry_s <= 2.0


@uses("close-1001")
async def test_close_1001_session_expired_resumes_the_agent_conversation_by_id(
    pool: SessionPool,
) -> None:
    """Current agent mode, server closes 1001 "session_expired". User sees: "Voice Live closed
    the connection (1001: session_expired): reconnecting ..."; the client reconnects with
    ``conversation-id=<thread_id>`` and replays nothing; the conversation goes on."""
    out: Outcome = await pool.get("close-1001")
    report("close 1001 (agent)", out)
    check_resumed(out, reason_has="1001", replay=False)
    assert out.first.record.query.get("agent-name") == "my-agent"
    assert "conversation-id" not in out.first.record.query
    assert out.retry_s <= 2.0


@uses("close-1011")
async def test_close_1011_in_classic_agent_mode_replays_the_transcript(pool: SessionPool) -> None:
    """Classic agent mode, server closes 1011 (internal error). User sees: "Voice Live closed the
    connection (1011: internal error): reconnecting ..."; the transcript is replayed; the
    agent access token is sent again on the new connection."""
    out: Outcome = await pool.get("close-1011")
    report("close 1011 (classic agent)", out)
    check_resumed(out, reason_has="1011")
    assert out.second.record.query.get("agent-access-token") == "T-access-51c0ffee"
    assert out.retry_s <= 2.0


@uses("over-limit")
async def test_message_over_the_receive_limit_closes_1009_and_reconnects(pool: SessionPool) -> None:
    """A 9 MiB server message (limit 8 MiB). User sees: "a server message exceeded the 8388608
    byte limit (close 1009): reconnecting ..." (one line), then the conversation goes on."""
    out: Outcome = await pool.get("over-limit")
    report("over-limit message", out)
    assert out.first.record.close_code == 1009, out.first.record.close_code
    check_resumed(out, reason_has="1009")
    warnings = out.run.tech_lines("WARNING", "1009")
    assert len(warnings) == 1, warnings


@uses("stall")
async def test_peer_that_stops_answering_pings_is_detected_in_bounded_time(
    pool: SessionPool,
) -> None:
    """The server keeps the socket open but stops reading (no pongs). With a 0.5 s ping interval
    and 0.5 s timeout, the client must give up on it within interval + timeout (plus scheduling
    slack) and reconnect. User sees: "Voice Live stopped answering keepalive pings:
    reconnecting ..."."""
    out: Outcome = await pool.get("stall")
    report("stall (no pongs)", out)
    check_resumed(out, reason_has="ping")
    assert out.retry_s <= 2 * PING_S + 1.0, (
        f"a dead peer took {out.retry_s:.2f} s to detect "
        f"(ping interval {PING_S} s + timeout {PING_S} s)"
    )


@uses("stall-defaults")
async def test_default_keepalive_bounds_the_blind_window_of_a_stalled_socket(
    pool: SessionPool,
) -> None:
    """The same stall with the shipped keepalive (5 s ping interval + 5 s timeout): the client
    moves on within 10.5 s (interval + timeout + the 0.5 s close wait), not the 40 s of the
    former 20 s + 20 s, during which everything said went into a dead socket."""
    out: Outcome = await pool.get("stall-defaults", timeout=150)
    assert len(out.server.conns) == 2, (
        f"the stalled socket was never given up\n{out.run.describe()}"
    )
    report("stall with the default keepalive", out)
    check_resumed(out, reason_has="ping")
    bound = DEFAULT_PING_S * 2 + 0.5
    assert out.retry_s <= bound + 2.0, (
        f"a dead peer took {out.retry_s:.1f} s to detect (bound {bound:.1f} s)"
    )


@uses("expiry")
async def test_connection_is_renewed_ahead_of_session_expiry(pool: SessionPool) -> None:
    """``session.expires_at`` is 4 s away: at a quiet moment the client opens a new connection,
    then closes the old one with 1000, and replays the transcript. User sees "Reconnected (the
    session expires soon)"; nothing is lost."""
    out: Outcome = await pool.get("expiry")
    run = out.run
    assert run.code == 0, run.describe()
    check_no_crash(run)
    assert len(out.server.conns) == 2, run.describe()
    first, second = out.first.record, out.second.record
    assert first.close_code == 1000
    assert second.marks["opened"] < first.marks["closed"], (
        "the old connection was closed before the new one was open"
    )
    turn1, _, turn3 = out.conversation.turns
    items = [e["item"]["content"][0]["text"] for e in second.of_type("conversation.item.create")]
    assert items == [turn1.user_text, turn1.agent_text]
    lines = run.session_log()
    assert transcript_lines(lines) == [
        f"User Input: {turn1.user_text}",
        f"Agent Audio Response: {turn1.agent_text}",
        f"User Input: {turn3.user_text}",
        f"Agent Audio Response: {turn3.agent_text}",
    ]
    assert "SessionID: sess_Second" in lines
    assert sum(line.startswith("Reconnected") for line in lines) == 1
    overlap = first.marks["closed"] - second.marks["opened"]
    print(
        f"\nexpiry renewal: new connection open {overlap * 1000:.0f} ms "
        "before the old one closed (1000)"
    )


@uses("reconnect-refused")
async def test_reconnect_that_keeps_failing_ends_with_one_line_after_six_attempts(
    pool: SessionPool,
) -> None:
    """After a drop every reconnect is refused (503). User sees a retry warning per attempt,
    then one line on stderr ("could not reconnect: ... (gave up after 6 attempts)"), exit 1;
    the session log keeps what was said before."""
    out: Outcome = await pool.get("reconnect-refused", timeout=120)
    run = out.run
    check_no_crash(run)
    assert run.code == 1, run.describe()
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "reconnect" in lines[0], run.describe()
    assert out.server.attempts == 1 + 6, out.server.attempt_times
    turn1 = out.conversation.turns[0]
    assert transcript_lines(run.session_log())[:2] == [
        f"User Input: {turn1.user_text}",
        f"Agent Audio Response: {turn1.agent_text}",
    ]
    gaps = [b - a for a, b in pairwise(out.server.attempt_times[1:])]
    shown = ", ".join(f"{g:.2f}" for g in gaps)
    print(
        f"\nreconnect refused: first retry {out.retry_s:.2f} s after the drop, "
        f"then gaps {shown} s; exit after {run.elapsed:.1f} s: {lines[0]}"
    )
    assert out.retry_s <= 2.0


@uses("flapping")
async def test_connections_that_die_right_after_the_session_starts_are_not_retried_in_a_hot_loop(
    pool: SessionPool,
) -> None:
    """Every reconnect succeeds at the upgrade, then the connection drops 50 ms into the new
    session (a sick server, or a proxy cutting sessions). Voice Live allows 30 new connections a
    minute: the client must back off between such short-lived sessions (and give up after 6 in
    a row, as for refused reconnects) instead of reconnecting at once, forever. User sees: a few
    reconnect warnings, then one line on stderr."""
    run, server = await pool.get("flapping")
    check_no_crash(run)
    starts = [c.record.marks["opened"] for c in server.conns]
    gaps = [b - a for a, b in pairwise(starts)]
    shown = ", ".join(f"{g * 1000:.0f}" for g in gaps[:8])
    print(
        f"\nflapping server: {len(server.conns)} connections in {run.elapsed:.1f} s; "
        f"first gaps {shown} ms"
    )
    assert len(server.conns) <= 7, (
        f"{len(server.conns)} connections in {FLAP_S:.0f} s: reconnecting in a hot loop"
    )


@uses("expired-error-event")
async def test_session_expired_error_event_then_close_1001_reconnects(pool: SessionPool) -> None:
    """At its time limit the server sends ``error`` with code ``session_expired`` and closes 1001.
    That is the expected end of a connection, not a fatal error: the client reconnects and the
    conversation goes on, exactly as for a bare close 1001. User sees one reconnect warning."""
    out: Outcome = await pool.get("expired-error-event")
    report("session_expired error + close 1001", out)
    check_resumed(out, reason_has="1001")


@uses("close-1008")
async def test_close_1008_policy_violation_ends_with_one_line_and_no_retry(
    pool: SessionPool,
) -> None:
    """The server closes 1008 (policy violation): retrying cannot help. User sees one line on
    stderr naming the close ("Voice Live closed the connection (1008: policy violation)"), exit 1;
    the session log keeps what was said."""
    out: Outcome = await pool.get("close-1008")
    run = out.run
    check_no_crash(run)
    assert run.code == 1, run.describe()
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "1008" in lines[0], run.describe()
    assert len(out.server.conns) == 1 and out.server.attempts == 1, "a policy close was retried"
    turn1 = out.conversation.turns[0]
    assert transcript_lines(run.session_log())[:2] == [
        f"User Input: {turn1.user_text}",
        f"Agent Audio Response: {turn1.agent_text}",
    ]
    run.events()
