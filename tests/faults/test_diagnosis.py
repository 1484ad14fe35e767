"""What the user is told when the server misbehaves, and sessions that must still end (issue 8,
item 11).

* The server sends a text frame that is not UTF-8: websockets closes with 1007. Before, that was
  reported as "lost without a close frame (1006)" (the server did not answer the close) or as
  "Voice Live closed the connection (1007)" and the end of the session (when it did). Now the
  line says what the server sent and the client reconnects; the conversation goes on.
* A server ``error`` event with a 200 KB message: before, printed in full, twice (the service's
  line and the technical log's). Now one line on the console, cut, and the whole message in
  ``voicelive.log``.
* ``speech_started`` with no ``speech_stopped`` while the server keeps sending events: before, a
  WAV session stayed up as long as the server talked. Now, once the input is over, an open user
  turn keeps the session for at most ``TURN_CLOSE_S`` (5 s).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.fault_scenarios import (
    MODEL,
    ResumeConversation,
    ResumeOutcome,
    answer,
    default_turns,
    resume_session,
)
from tests.support.faulty_server import FaultyServer
from tests.support.pool import SessionPool, uses
from tests.support.replay_server import ServerConn
from tests.support.scenarios import RATE, handshake
from tests.support.script_run import ScriptRun, check_no_crash, run_script, transcript_lines

pytestmark = pytest.mark.asyncio(loop_scope="module")
# a final text frame (server frames are unmasked) of 4 invalid bytes
NOT_UTF8 = b"\x81\x04\xff\xfe\xfd\xfc"
HUGE = 200_000
TURN_CLOSE_S = 5.0


def invalid_utf8(*, answer_close: bool) -> Any:
    """The fault: one text frame that is not UTF-8. With ``answer_close`` the server goes on
    reading (websockets answers the client's 1007); without, it stops reading first."""

    def fault_of(conversation: ResumeConversation) -> Any:
        def fault(conn: ServerConn) -> None:
            conn.mark("fault")
            assert conn.ws.transport is not None
            if not answer_close:
                conn.ws.transport.pause_reading()
            conn.ws.transport.write(NOT_UTF8)

        return fault

    return fault_of


def huge_error(code: str) -> dict[str, Any]:
    message = "The server is unhappy. " + "x" * HUGE + " END-OF-MESSAGE"
    return {
        "type": "error",
        "event_id": "event_E1",
        "error": {
            "type": "server_error",
            "code": code,
            "message": message,
            "param": None,
            "event_id": None,
        },
    }


@dataclass
class Outcome:
    run: ScriptRun
    server: FaultyServer
    input_s: float


def scripted(script: Any, input_s: float) -> Any:
    async def session(tmp: Path) -> Outcome:
        async with FaultyServer(script) as server:
            run = await run_script(server.url, tmp, input_s=input_s, timeout=45)
        return Outcome(run, server, input_s)

    return session


async def one_huge_error_then_a_turn(conn: ServerConn) -> None:
    await handshake(conn)
    await conn.wait_audio(RATE * 2 // 5)
    await conn.send(huge_error("server_overloaded"))
    await answer(conn, default_turns()[0])


async def speech_never_stops(conn: ServerConn) -> None:
    """speech_started, then a harmless event every 300 ms, forever (no speech_stopped)."""
    await handshake(conn)
    await conn.wait_audio(RATE * 2 // 5)
    await conn.send(
        {
            "type": "input_audio_buffer.speech_started",
            "event_id": "event_S1",
            "audio_start_ms": 100,
            "item_id": "item_U1",
        }
    )
    conn.mark("speech_started")
    k = 0
    while True:
        await conn.send(
            {"type": "rate_limits.updated", "event_id": f"event_R{k}", "rate_limits": []}
        )
        k += 1
        await asyncio.sleep(0.3)


SESSIONS = {
    "1007-unanswered": resume_session(invalid_utf8(answer_close=False), MODEL),
    "1007-answered": resume_session(invalid_utf8(answer_close=True), MODEL),
    "huge-error": scripted(one_huge_error_then_a_turn, 3.0),
    "speech-never-stops": scripted(speech_never_stops, 2.0),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    async with SessionPool.for_module(request, SESSIONS, tmp_path_factory) as p:  # type: ignore[arg-type]
        yield p


@pytest.mark.parametrize("name", ["1007-unanswered", "1007-answered"])
@uses("1007-unanswered", "1007-answered")
async def test_invalid_utf8_from_the_server_is_named_and_the_session_reconnects(
    pool: SessionPool, name: str
) -> None:
    """User sees: "Voice Live sent a text message that is not valid UTF-8; the client closed the
    connection (1007...): reconnecting", then the conversation goes on. Exit 0."""
    out: ResumeOutcome = await pool.get(name, timeout=120)
    run = out.run
    check_no_crash(run)
    lines = [line for line in run.stdout.splitlines() if "(1007" in line or "(1006" in line]
    print(f"\n{name}: {lines}")
    assert lines and all("not valid UTF-8" in line and "1006" not in line for line in lines), (
        run.describe()
    )
    assert run.code == 0, run.describe()
    assert len(out.server.conns) == 2, "the client did not reconnect"
    assert "turn3_done" in out.second.record.marks, run.describe()


@uses("huge-error")
async def test_a_huge_server_error_is_one_cut_line_on_the_console_and_whole_in_the_technical_log(
    pool: SessionPool,
) -> None:
    out: Outcome = await pool.get("huge-error", timeout=120)
    run = out.run
    check_no_crash(run)
    console = [line for line in (run.stdout + run.stderr).splitlines() if "unhappy" in line]
    longest = max(map(len, console), default=0)
    print(f"\nhuge error: {len(console)} console line(s), {longest} characters")
    assert len(console) == 1, f"{len(console)} console lines mention the error"
    assert len(console[0]) < 500 and "END-OF-MESSAGE" not in console[0], console[0][:600]
    assert "voicelive.log" in console[0]
    whole = [line for line in run.tech_log().splitlines() if "END-OF-MESSAGE" in line]
    assert whole and len(whole[0]) > HUGE, "the whole message is not in voicelive.log"
    # The session went on: the turn after the error was heard and answered.
    turn = default_turns()[0]
    assert transcript_lines(run.session_log()) == [
        f"User Input: {turn.user_text}",
        f"Agent Audio Response: {turn.agent_text}",
    ]
    assert run.code == 0, run.describe()


@uses("speech-never-stops")
async def test_a_user_turn_the_server_never_closes_does_not_keep_a_wav_session_alive(
    pool: SessionPool,
) -> None:
    """The WAV input is 2 s; the server says the user started speaking and never that they
    stopped, while it keeps sending events. The session ends about TURN_CLOSE_S after the input."""
    out: Outcome = await pool.get("speech-never-stops", timeout=120)
    run = out.run
    check_no_crash(run)
    assert not run.timed_out and run.code == 0, run.describe()
    conn = out.server.conns[0]
    started = conn.record.marks["opened"]
    lasted = conn.record.marks["closed"] - started
    print(
        f"\nspeech never stopped: the session ended {lasted:.1f} s after it opened "
        f"({out.input_s:.0f} s of input)"
    )
    assert lasted < out.input_s + TURN_CLOSE_S + 4.0, run.describe()
    assert conn.record.close_code == 1000
