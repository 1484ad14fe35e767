"""A server that echoes the credentials back: in an ``error`` event, in a 1008 close reason, and in
frames long enough for websockets' debug line to cut them (``'{"type":"error",…K-echo-9c4...'``).

The default script runs against a :class:`FaultyServer` on 127.0.0.1 in classic agent mode (an
API key and an agent access token). Afterwards no output (stdout, stderr, every file under the
log folder) may hold 8 consecutive characters of either secret; the user still gets the one
``error: ...`` line saying what went wrong, with the secret masked. A short key (``--api-key
test``) must not damage ordinary text: the voice ``DragonHDLatestNeural`` and a transcript that
says "test" stay as they are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.fault_scenarios import answer, one_turn
from tests.support.faulty_server import FaultyServer, close_with
from tests.support.pool import SessionPool, uses
from tests.support.replay_server import ServerConn
from tests.support.scenarios import RATE, Turn, handshake, noise
from tests.support.script_run import (
    ScriptRun,
    check_logs_private,
    check_no_crash,
    run_script,
    script_env,
)
from tests.support.secrets import check_no_secret_runs

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = "K-echo-9c41d7e2b05a-PROBEKEY-7f3a"
TOKEN = "T-echo-4e8b2a61f0c9-TOKENPART-5d7e"
SECRETS = (KEY, TOKEN)
CLASSIC = (
    "--api-key",
    KEY,
    "--agent-id",
    "asst_A",
    "--project-name",
    "proj",
    "--agent-access-token",
    TOKEN,
)


async def echo_in_error_event(conn: ServerConn) -> None:
    """A fatal error whose message repeats both credentials."""
    await handshake(conn)
    await conn.send(
        {
            "type": "error",
            "event_id": "event_E1",
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_api_key",
                "message": f"The key {KEY} was revoked; access token {TOKEN} expired",
            },
        }
    )


async def echo_in_close_reason(conn: ServerConn) -> None:
    """A policy close (1008, not retried) whose reason repeats the key."""
    await handshake(conn)
    await close_with(conn, 1008, f"key {KEY} is not allowed")


def cut_frame() -> str:
    """A text frame that websockets' debug line shortens to its first 48 and last 24 characters,
    cutting the key after 11 characters and the token before its last 20."""
    frame = '{"type":"error","error":{"message":"' + KEY + " " + "x" * 120 + " " + TOKEN + '"}}'
    shown = repr(frame)
    assert KEY[:11] in shown[:48] and KEY not in shown[:48] and TOKEN[-20:] in shown[-24:]
    return frame


async def echo_in_long_frames(conn: ServerConn) -> None:
    """Non-fatal echoes the session survives: an error event, a transcript, then a whole turn."""
    await handshake(conn)
    await conn.send_raw(cut_frame())
    await conn.wait_audio(RATE * 2 // 5)
    turn = Turn(
        "What is my key?", f"Your key is {KEY} and your token is {TOKEN}.", noise(0.6, seed=21)
    )
    await answer(conn, turn)


def short_key_turn() -> Turn:
    return Turn("This is a test of the latest voice", "The test went well.", noise(0.6, seed=22))


async def short_key_session(conn: ServerConn) -> None:
    await one_turn(conn, short_key_turn())


def session(script, *mode: str, extra: tuple[str, ...] = ("--verbose", "--debug")):  # type: ignore[no-untyped-def]
    async def run(tmp: Path) -> tuple[ScriptRun, FaultyServer]:
        async with FaultyServer(script) as server:
            result = await run_script(
                server.url, tmp, *mode, input_s=2.0, env=script_env(), timeout=40, extra=extra
            )
        return result, server

    return run


SESSIONS = {
    "error event": session(echo_in_error_event, *CLASSIC),
    "1008 close": session(echo_in_close_reason, *CLASSIC),
    "long frames": session(echo_in_long_frames, *CLASSIC),
    "short key": session(
        short_key_session, "--api-key", "test", "--model", "gpt-realtime", extra=("--debug",)
    ),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    async with SessionPool.for_module(request, SESSIONS, tmp_path_factory) as p:  # type: ignore[arg-type]
        yield p


def last_word(run: ScriptRun) -> str:
    """The one ``error: ...`` line the script ends with."""
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), run.describe()
    return lines[0]


@uses("error event")
async def test_an_error_event_echoing_the_credentials_prints_them_masked(pool: SessionPool) -> None:
    """User sees ``error: Voice Live error invalid_api_key: The key *** was revoked; access
    token *** expired`` and exit 1; no file or console line holds 8 characters of either."""
    run, server = await pool.get("error event")
    assert run.code == 1, run.describe()
    check_no_crash(run)
    line = last_word(run)
    assert "invalid_api_key" in line and "was revoked" in line and "***" in line, line
    assert server.conns[0].record.headers.get("api-key") == KEY  # the key really was in use
    check_no_secret_runs(run.outputs(), SECRETS)
    check_logs_private(run)


@uses("1008 close")
async def test_a_policy_close_whose_reason_holds_the_key_prints_it_masked(
    pool: SessionPool,
) -> None:
    """User sees ``error: Voice Live closed the connection (1008: key *** is not allowed)``
    and exit 1, with no retry (policy closes are final)."""
    run, server = await pool.get("1008 close")
    assert run.code == 1, run.describe()
    check_no_crash(run)
    line = last_word(run)
    assert "1008" in line and "is not allowed" in line and "***" in line, line
    assert len(server.conns) == 1, "a policy close was retried"
    check_no_secret_runs(run.outputs(), SECRETS)
    check_logs_private(run)


@uses("long frames")
async def test_frames_cut_by_the_debug_log_leak_no_piece_of_a_secret(pool: SessionPool) -> None:
    """With ``--debug --verbose`` websockets logs every frame, shortened with ``...``: the key's
    first 11 characters and the token's last 20 stand alone on those lines and must be masked
    too. The session itself goes on and ends normally."""
    run, _ = await pool.get("long frames")
    assert run.code == 0, run.describe()
    check_no_crash(run)
    cut = [
        line
        for line in run.tech_log().splitlines()
        if re.search(r"< TEXT '\{\"type\":\"error\".*\.\.\.", line)
    ]
    assert cut, "websockets' shortened debug line of the echoing frame is not in voicelive.log"
    check_no_secret_runs(run.outputs(), SECRETS)
    check_logs_private(run)


@uses("short key")
async def test_a_short_key_does_not_damage_ordinary_text(pool: SessionPool) -> None:
    """``--api-key test``: a 4-character key cannot leak an 8-character run, and is masked only
    where it stands as a credential (the ``api-key`` header line). The voice name and the
    user's and agent's words keep every ``test`` they contain."""
    run, server = await pool.get("short key")
    assert run.code == 0, run.describe()
    assert server.conns[0].record.headers.get("api-key") == "test"
    lines = run.session_log()
    config = next(line for line in lines if line.startswith("Session Config: "))
    assert "en-US-Aria:DragonHDLatestNeural" in config, config
    turn = short_key_turn()
    assert f"User Input: {turn.user_text}" in lines, lines
    assert f"Agent Audio Response: {turn.agent_text}" in lines, lines
    events = "\n".join(json.dumps(e, ensure_ascii=False) for e in run.events())
    assert "DragonHDLatestNeural" in events and turn.user_text in events
    tech = run.tech_log()
    masked = [line for line in tech.splitlines() if "***" in line and "> api-key: ***" not in line]
    assert not masked, f"ordinary text was masked: {masked[:3]}"
    assert re.search(r"(?im)> api-key: \*\*\*$", tech), "the api-key header line is not masked"
    assert "test" not in re.findall(r"(?im)> api-key: (.*)$", tech)
