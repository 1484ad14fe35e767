"""A server that floods the client with small events must not starve the microphone (issue 8,
item 9).

Before: with thousands of small events a second arriving, the receive loop never gave the event
loop back (websockets hands out buffered messages without suspending), so the microphone's
appends left the client one every couple of seconds, then hundreds at once, and answers came
15-20 s late. Here the server sends ``FLOOD_RATE`` small events a second for ``FLOOD_S`` seconds
while the client streams a WAV in real time; the appends must reach the server at a steady pace
(the largest gap between two is printed), the flood is reported once, and the answer sent after
the flood is handled when it arrives.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.fault_scenarios import answer, default_turns
from tests.support.faulty_server import FaultyServer
from tests.support.pool import SessionPool, uses
from tests.support.replay_server import ServerConn
from tests.support.scenarios import RATE, handshake
from tests.support.script_run import ScriptRun, check_no_crash, run_script, transcript_lines

pytestmark = pytest.mark.asyncio(loop_scope="module")
FLOOD_RATE = 5000  # events a second
FLOOD_S = 4.0
MAX_GAP_S = 2.0  # appends leave every 40 ms; a bound on a stall that a loaded 2-core machine meets


# A small, harmless server event (the kind a chatty server sends many of), encoded once so the
# test server can keep up the rate on a loaded machine.
FLOOD_MESSAGE = json.dumps(
    {
        "type": "rate_limits.updated",
        "event_id": "event_flood",
        "rate_limits": [
            {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 1.0}
        ],
    }
)


@dataclass
class Flood:
    """Handshake, then a flood while the mic streams, then one ordinary turn."""

    sent: int = 0
    flood_window: tuple[float, float] = (0.0, 0.0)
    answer_asked: float = 0.0
    answered: float = 0.0
    answered_wall: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, conn: ServerConn) -> None:
        await handshake(conn)
        await conn.wait_audio(RATE * 2 // 5)
        start = time.monotonic()
        batch = FLOOD_RATE // 100  # one batch every 10 ms
        k = 0
        while time.monotonic() - start < FLOOD_S:
            due = start + k / 100
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            for _ in range(batch):
                await conn.send_raw(FLOOD_MESSAGE)
                self.sent += 1
            k += 1
        self.flood_window = (start, time.monotonic())
        # The turn after the flood: the client must still hear and answer in time.
        self.answer_asked = time.monotonic()
        await answer(conn, default_turns()[0])
        self.answered = conn.mark("turn_done")
        self.answered_wall = time.time()
        self.done.set()


@dataclass
class Outcome:
    run: ScriptRun
    server: FaultyServer
    flood: Flood


async def flooded(tmp: Path) -> Outcome:
    flood = Flood()
    async with FaultyServer(flood) as server:
        run = await run_script(server.url, tmp, input_s=FLOOD_S + 4.0, timeout=60)
    return Outcome(run, server, flood)


SESSIONS = {"flood": flooded}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    async with SessionPool.for_module(request, SESSIONS, tmp_path_factory) as p:  # type: ignore[arg-type]
        yield p


@uses("flood")
async def test_microphone_appends_keep_their_pace_while_the_server_floods(
    pool: SessionPool,
) -> None:
    out: Outcome = await pool.get("flood", timeout=120)
    run, flood = out.run, out.flood
    check_no_crash(run)
    assert run.code == 0, run.describe()
    # Thousands a second (the test server itself may fall short of FLOOD_RATE on a loaded machine).
    assert flood.sent >= 2000 * FLOOD_S, f"the test server sent only {flood.sent} events"
    first, last = flood.flood_window
    appends = [
        t
        for t, e in out.server.conns[0].record.client_events
        if e.get("type") == "input_audio_buffer.append"
    ]
    during = [t for t in appends if first <= t <= last + MAX_GAP_S]
    gaps = [b - a for a, b in pairwise([first, *during, last])]
    rate = flood.sent / (last - first)
    print(
        f"\nflood: {flood.sent} events in {last - first:.1f} s ({rate:.0f}/s); "
        f"{len(during)} appends during it, "
        f"largest gap {max(gaps) * 1000:.0f} ms (appends are 40 ms apart)"
    )
    assert max(gaps) < MAX_GAP_S, f"the microphone stalled for {max(gaps):.2f} s during the flood"
    # Appends kept leaving during the flood, not in a burst after it (before the fix: none in
    # 4 s). 25 a second are due; a quiet machine delivers nearly all (the figure is printed).
    assert len(during) >= 2 * (last - first), len(during)


@uses("flood")
async def test_the_flood_is_reported_once_and_the_next_turn_is_answered_in_time(
    pool: SessionPool,
) -> None:
    out: Outcome = await pool.get("flood", timeout=120)
    run, flood = out.run, out.flood
    warnings = [line for line in run.stdout.splitlines() if "events a second" in line]
    assert len(warnings) == 1, run.stdout[-3000:]
    turn = default_turns()[0]
    assert transcript_lines(run.session_log()) == [
        f"User Input: {turn.user_text}",
        f"Agent Audio Response: {turn.agent_text}",
    ]
    # The answer's last event was handled when it arrived, not after a backlog of the flood.
    (done,) = [
        r
        for r in run.events()
        if r["direction"] == "received" and r["event"].get("type") == "response.done"
    ]
    lag = datetime.fromisoformat(done["at"]).timestamp() - flood.answered_wall
    print(f"\nresponse.done handled {lag * 1000:.0f} ms after the server sent it")
    assert lag < 2.0, f"the answer was handled {lag:.1f} s late"
