"""A server that accepts the upgrade but never makes the session ready (issue 8, item 6).

Before: the client waited forever for ``session.created`` (or ``session.updated``), dropped every
microphone frame without a word and exited 0 once the WAV input was over. Now the open socket has
``session_timeout`` (15 s by default, ``VOICELIVE_SESSION_TIMEOUT``; 0.5 s here) to produce a
ready session; then the client says so on one line and reconnects as for any failed connection,
gives up with exit 1 when it never comes, and the session log says how much of the user's speech
was never sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.fault_scenarios import default_turns, one_turn
from tests.support.faulty_server import FaultyServer
from tests.support.pool import SessionPool, uses
from tests.support.replay_server import ServerConn
from tests.support.scenarios import RATE, session_created
from tests.support.script_run import (
    ScriptRun,
    check_logs_private,
    check_no_crash,
    run_script,
    script_env,
    transcript_lines,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
TIMEOUT_S = 0.5
ENV = script_env(VOICELIVE_SESSION_TIMEOUT=str(TIMEOUT_S))
NOT_SENT = re.compile(r"^(\d+\.\d) s of your speech was not sent \((.+)\)$")


@dataclass
class Outcome:
    run: ScriptRun
    server: FaultyServer


async def silent(conn: ServerConn) -> None:
    """Accept the upgrade, then say nothing (no session.created)."""
    await conn.ws.wait_closed()


async def created_only(conn: ServerConn) -> None:
    """session.created, then no answer to the client's session.update."""
    await conn.send(session_created(f"sess_Mute{len(conn.record.client_events)}"))
    await conn.wait_for("session.update")
    conn.mark("update_ignored")
    await conn.ws.wait_closed()


class MuteFirst:
    """The first connection never answers session.update; the next one is a normal session."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, conn: ServerConn) -> None:
        self.count += 1
        if self.count == 1:
            await created_only(conn)
        else:
            await one_turn(conn)


def session_of(script: object, input_s: float) -> object:
    async def session(tmp: Path) -> Outcome:
        async with FaultyServer(script) as server:  # type: ignore[arg-type]
            run = await run_script(server.url, tmp, input_s=input_s, env=ENV, timeout=60)
        return Outcome(run, server)

    return session


SESSIONS = {
    "silent": session_of(silent, 4.0),
    "created-only": session_of(created_only, 4.0),
    "mute-first": session_of(MuteFirst(), 4.0),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    async with SessionPool.for_module(request, SESSIONS, tmp_path_factory) as p:  # type: ignore[arg-type]
        yield p


def check_gave_up(out: Outcome, missing: str) -> None:
    run = out.run
    print(
        f"\n{missing}: exit {run.code} after {run.elapsed:.1f} s, "
        f"{len(out.server.conns)} connections"
    )
    check_no_crash(run)
    assert run.code == 1, run.describe()
    # One line on stderr, naming what never came.
    errors = run.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and missing in errors[0], (
        run.describe()
    )
    # Each connection was given up after the session timeout, not held open.
    for conn in out.server.conns:
        held = conn.record.marks["closed"] - conn.record.marks["opened"]
        assert held < TIMEOUT_S + 2.0, f"a connection was held {held:.1f} s"
    # Reconnected as for any failed connection: 1 + 6 retries (Backoff.attempts), then gave up.
    assert len(out.server.conns) == 7, out.server.attempt_times
    # Nothing was appended: no session was ever ready.
    assert all(conn.record.appended_audio_bytes() == 0 for conn in out.server.conns)
    # The session log says how much of the user's speech was lost: at least all the audio from
    # the first connection to the last one given up (the WAV streams in real time).
    lost = [m for m in map(NOT_SENT.match, run.session_log()) if m]
    assert len(lost) == 1, run.session_log()
    span = out.server.conns[-1].record.marks["closed"] - out.server.conns[0].record.marks["opened"]
    print(f"session log: {lost[0].group(0)!r}; {span:.1f} s from the first connection to the last")
    assert float(lost[0].group(1)) >= span - 0.5, (lost[0].group(0), span)
    check_logs_private(run)


@uses("silent")
async def test_no_session_created_is_retried_then_ends_with_exit_1_and_the_lost_speech_logged(
    pool: SessionPool,
) -> None:
    """User sees: "Voice Live accepted the connection but sent no session.created within 0.5 s:
    reconnecting", the backoff, then one error line and exit 1; the session log ends with
    "N s of your speech was not sent (no session to send it to)"."""
    check_gave_up(await pool.get("silent"), "sent no session.created")


@uses("created-only")
async def test_no_answer_to_session_update_is_retried_then_ends_with_exit_1(
    pool: SessionPool,
) -> None:
    """Same, when the server creates the session but never answers ``session.update``."""
    out: Outcome = await pool.get("created-only")
    check_gave_up(out, "did not answer session.update")
    assert all("update_ignored" in conn.record.marks for conn in out.server.conns)


@uses("mute-first")
async def test_a_stuck_first_session_is_replaced_and_the_conversation_goes_on(
    pool: SessionPool,
) -> None:
    """The first session never gets ready; the client replaces it after the timeout and the
    turn is heard and answered on the second connection. Exit 0."""
    out: Outcome = await pool.get("mute-first")
    run = out.run
    check_no_crash(run)
    assert run.code == 0, run.describe()
    assert len(out.server.conns) == 2, out.server.attempt_times
    first, second = out.server.conns
    assert first.record.marks["closed"] - first.record.marks["opened"] < TIMEOUT_S + 2.0
    assert "did not answer session.update within 0.5 s" in run.stdout, run.describe()
    assert "turn_done" in second.record.marks
    turn = default_turns()[0]
    assert transcript_lines(run.session_log()) == [
        f"User Input: {turn.user_text}",
        f"Agent Audio Response: {turn.agent_text}",
    ]
    assert second.record.appended_audio_bytes() >= RATE * 2 // 5
