"""A session killed with SIGKILL mid-answer keeps the agent's words in the session log (issue 8,
item 12): every sentence completed before the kill, on one ``Agent Audio Response (partial): …``
line. A normal session's log keeps the quickstart's format (no partial lines: see
test_reconnect_gap and test_connection_lost, which compare the conversation lines exactly)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.faulty_server import FaultyServer
from tests.support.replay_server import ServerConn
from tests.support.scenarios import (
    RATE,
    Turn,
    handshake,
    noise,
    response_start,
    transcript_deltas,
    user_speaks,
)
from tests.support.script_run import run_script

pytestmark = pytest.mark.asyncio

TURN = Turn(
    "Where is Paris?",
    "Paris is in France. It lies on the Seine, «la Seine». And it has",
    noise(1.0, seed=21),
)
SPOKEN = "Paris is in France. It lies on the Seine, «la Seine»."


async def test_sigkill_mid_answer_leaves_the_completed_sentences_in_the_session_log(
    tmp_path: Path,
) -> None:
    sent = asyncio.Event()

    async def script(conn: ServerConn) -> None:
        await handshake(conn)
        await conn.wait_audio(RATE * 2 // 5)
        await user_speaks(conn, TURN)
        await response_start(conn, TURN)
        await transcript_deltas(conn, TURN)
        await conn.stream_audio(TURN.response_id, TURN.item_id, TURN.audio[:RATE], speed=4.0)
        sent.set()
        await conn.ws.wait_closed()  # the answer never completes: the client is killed first

    async def kill_when_logged(proc: asyncio.subprocess.Process) -> None:
        await asyncio.wait_for(sent.wait(), 30)
        logs = tmp_path / "logs"
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:  # the words reach the file within the bound, or never
            paths = list(logs.glob("session_*.log"))
            if paths and SPOKEN in paths[0].read_text(encoding="utf-8"):
                break
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)

    async with FaultyServer(script) as server:
        run = await run_script(
            server.url, tmp_path, input_s=30.0, timeout=60, during=kill_when_logged
        )
    assert run.code == -signal.SIGKILL, run.describe()
    assert not server.script_errors, server.script_errors
    lines = run.session_log()
    assert lines[-2:] == [
        f"User Input: {TURN.user_text}",
        f"Agent Audio Response (partial): {SPOKEN}",
    ], lines
