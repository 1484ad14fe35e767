"""The server sends messages that are not valid events: each is logged and skipped, the session
goes on.

After the handshake the server sends every entry of ``GARBAGE`` (non-JSON text, binary frames,
JSON that is not an object, unknown event types, events with missing or wrong-typed fields), then
answers one normal turn, which must play whole and be logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.audio import find, matching_run, read_wav
from tests.support.fault_scenarios import answer, default_turns
from tests.support.faulty_server import GARBAGE, FaultyServer, send_garbage
from tests.support.pool import SessionPool, uses
from tests.support.replay_server import ServerConn
from tests.support.scenarios import RATE, handshake
from tests.support.script_run import (
    ScriptRun,
    check_logs_private,
    check_no_crash,
    run_script,
    transcript_lines,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Valid JSON objects with a type, whose numbers no Python int can hold (JSON allows them).
OUT_OF_RANGE: list[tuple[str, str]] = [
    (
        "speech_started at infinity (1e999)",
        '{"type": "input_audio_buffer.speech_started", "audio_start_ms": 1e999, '
        '"item_id": "item_inf"}',
    ),
    (
        "speech_stopped at -infinity",
        '{"type": "input_audio_buffer.speech_stopped", "audio_end_ms": -1e999, '
        '"item_id": "item_inf"}',
    ),
    (
        "session.updated expiring at infinity",
        '{"type": "session.updated", "session": {"id": "sess_inf", "expires_at": 1e999}}',
    ),
    (
        "an unknown event with a 5000-digit integer",
        '{"type": "rate_limits.updated", "n": ' + "7" * 5000 + "}",
    ),
]
UNPARSEABLE = 10  # GARBAGE entries that are not a JSON object with a string type
# warnings expected per event type
WRONG_FIELDS = {"response.audio.delta": 3, "response.created": 2}


@dataclass
class Outcome:
    run: ScriptRun
    server: FaultyServer


def garbage_then_turn(messages: list[tuple[str, str | bytes]], *extra: str) -> object:
    async def script(conn: ServerConn) -> None:
        await handshake(conn)
        await conn.wait_audio(RATE * 2 // 5)
        await send_garbage(conn, messages)
        await answer(conn, default_turns()[0])
        conn.mark("turn_done")

    async def session(tmp: Path) -> Outcome:
        async with FaultyServer(script) as server:
            run = await run_script(server.url, tmp, input_s=2.5, timeout=40, extra=extra)
        return Outcome(run, server)

    return session


# --verbose: the technical log has per-event (DEBUG) lines, where unknown event types are noted.
SESSIONS = {
    "garbage": garbage_then_turn(GARBAGE, "--verbose"),
    "out-of-range": garbage_then_turn(OUT_OF_RANGE),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    async with SessionPool.for_module(request, SESSIONS, tmp_path_factory) as p:  # type: ignore[arg-type]
        yield p


def check_turn_went_on(out: Outcome) -> None:
    run = out.run
    assert run.code == 0, run.describe()
    check_no_crash(run)
    check_logs_private(run)
    assert len(out.server.conns) == 1, "a bad message must not cost the connection"
    assert not out.server.script_errors, out.server.script_errors
    assert "turn_done" in out.server.conns[0].record.marks
    turn = default_turns()[0]
    lines = transcript_lines(run.session_log())
    assert (
        f"User Input: {turn.user_text}" in lines
        and f"Agent Audio Response: {turn.agent_text}" in lines
    ), lines
    wav, _ = read_wav(run.out_wav)
    start = find(wav, turn.audio)
    assert start >= 0 and matching_run(wav, start, turn.audio) == len(turn.audio) // 2, (
        "the turn after the garbage did not play whole"
    )
    assert out.server.conns[0].record.close_code == 1000
    for record in run.events():
        json.dumps(record)


@uses("garbage")
async def test_garbage_is_logged_and_skipped_and_the_session_goes_on(pool: SessionPool) -> None:
    """User sees: nothing on the console beyond warnings ("Skipped malformed server event: not
    JSON ..."); the next turn plays and is logged; exit 0. voicelive.log has a WARNING per
    unparseable message and per event with unusable fields, unknown types at DEBUG (--verbose)."""
    out: Outcome = await pool.get("garbage")
    check_turn_went_on(out)
    run = out.run
    malformed = run.tech_lines("WARNING", "malformed")
    assert len(malformed) >= UNPARSEABLE, "\n".join(malformed)
    for kind, count in WRONG_FIELDS.items():
        warned = [
            line
            for line in run.tech_lines("WARNING")
            if kind in line and "skipped" in line.lower() or f"{kind} without" in line
        ]
        assert len(warned) >= count, (kind, warned)
    for unknown in ("response.hologram.delta", "session.teleported"):
        assert run.tech_lines("DEBUG", f"unknown server event type {unknown!r}"), unknown
    print(
        f"\ngarbage: {len(GARBAGE)} bad messages, {len(run.tech_lines('WARNING'))} warnings "
        f"in voicelive.log, exit {run.code}"
    )


@uses("garbage")
async def test_wrong_typed_transcript_adds_no_empty_agent_line(pool: SessionPool) -> None:
    """``response.audio_transcript.done`` whose ``transcript`` is a list is unusable: it is skipped
    with a warning, not written to the session log as an empty ``Agent Audio Response:`` line."""
    out: Outcome = await pool.get("garbage")
    turn = default_turns()[0]
    assert transcript_lines(out.run.session_log()) == [
        f"User Input: {turn.user_text}",
        f"Agent Audio Response: {turn.agent_text}",
    ]


@uses("out-of-range")
async def test_numbers_out_of_range_are_skipped_and_the_session_goes_on(pool: SessionPool) -> None:
    """Events holding 1e999 (infinity once parsed) or a 5000-digit integer where a number is
    expected. User sees: at most a warning; the next turn plays and is logged; exit 0."""
    out: Outcome = await pool.get("out-of-range")
    check_turn_went_on(out)
