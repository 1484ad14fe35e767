"""What happens to the user across a reconnect or a renewal (issue 8, items 8 and 10).

Every run is the default script with a WAV input against a :class:`FaultyServer` on 127.0.0.1
that records every microphone sample it receives. The contract: each sample of the input reaches
exactly one session (nothing lost in the gap, nothing sent twice), a user turn spoken while the
connection is being replaced is heard and answered once, a new session does not inherit the old
one's expiry, and renewals keep to Voice Live's connect rate.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from tests.support.fault_scenarios import answer
from tests.support.faulty_server import FaultyServer, close_with, drop
from tests.support.pool import SessionPool, uses
from tests.support.replay_server import ServerConn
from tests.support.scenarios import RATE, Turn, noise, session_created, session_updated
from tests.support.script_run import ScriptRun, check_no_crash, run_script, transcript_lines

pytestmark = pytest.mark.asyncio(loop_scope="module")

BYTES_PER_S = RATE * 2
BURST = noise(0.6, seed=77, amplitude=8000)  # the user's words, spoken during the reconnect
BURST_AT_S = 1.4


def speech_during_gap(seconds: float = 5.0) -> bytes:
    """Low background noise with the user's burst at ``BURST_AT_S``."""
    pcm = bytearray(noise(seconds, seed=99, amplitude=300))
    at = int(BURST_AT_S * RATE) * 2
    pcm[at : at + len(BURST)] = BURST
    return bytes(pcm)


async def slow_handshake(
    conn: ServerConn, sid: str, *, delay: float, expires_in: float | None = None
) -> None:
    """A server that takes ``delay`` seconds to create the session (audio meanwhile is the gap)."""
    await asyncio.sleep(delay)
    created = session_created(sid)
    if expires_in is None:
        created["session"].pop("expires_at", None)
    else:
        created["session"]["expires_at"] = int(time.time() + expires_in)
    await conn.send(created)
    conn.mark("session_created")
    update = await conn.wait_for("session.update")
    await conn.send(session_updated(created, update))


@dataclass
class Outcome:
    run: ScriptRun
    server: FaultyServer
    pcm: bytes

    def audio(self) -> list[bytes]:
        return [c.record.appended_audio() for c in self.server.conns]


def check_each_sample_once(out: Outcome, *, at_least_s: float) -> None:
    """The sessions' audio, in connection order, is the input WAV from its start: no gap, no
    repeat."""
    joined = b"".join(out.audio())
    sizes = ", ".join(f"{len(a) / BYTES_PER_S:.2f} s" for a in out.audio())
    assert len(joined) >= at_least_s * BYTES_PER_S, (
        f"only {len(joined) / BYTES_PER_S:.2f} s arrived ({sizes})"
    )
    # After the input's end the WAV "microphone" is silent until the script exits.
    expected = out.pcm[: len(joined)] + bytes(max(0, len(joined) - len(out.pcm)))
    if joined != expected:
        a, b = np.frombuffer(joined, np.int16), np.frombuffer(expected, np.int16)
        first = int(np.argmax(a != b))
        raise AssertionError(
            "microphone audio lost or repeated across the reconnect: the sessions' audio "
            f"({sizes}) leaves "
            f"the input at {first / RATE:.3f} s"
        )


async def finished(pool: SessionPool, name: str) -> Outcome:
    """The outcome of session ``name``, which must have ended cleanly (exit 0, no traceback)."""
    out: Outcome = await pool.get(name)
    assert out.run.code == 0, out.run.describe()
    check_no_crash(out.run)
    return out


GAP_TURN = Turn(
    "Did you hear me during the reconnect?", "Yes, I heard you. Go on!", noise(0.5, seed=78)
)


async def gap_turn(tmp: Path) -> Outcome:
    """The server goes away (1001) after 1 s of audio and takes 1.5 s to create the next session;
    the user speaks at 1.4-2.0 s, inside that gap. The second session must hear the whole turn."""
    pcm = speech_during_gap()

    async def script(conn: ServerConn) -> None:
        if len(server.conns) == 1:
            await slow_handshake(conn, "sess_Gap1", delay=0.0, expires_in=3600)
            await conn.wait_audio(BYTES_PER_S)
            await close_with(conn, 1001, "going away")
            return
        await slow_handshake(conn, "sess_Gap2", delay=1.5, expires_in=3600)
        await conn.wait_until(lambda: BURST in conn.record.appended_audio(), timeout=15)
        conn.mark("heard")
        await answer(conn, GAP_TURN)

    async with FaultyServer(script) as server:
        run = await run_script(server.url, tmp, in_pcm=pcm, timeout=45)
    return Outcome(run, server, pcm)


async def renewal(tmp: Path) -> Outcome:
    """Make-before-break: the first session expires 4 s after it starts, the next one is created
    0.5 s after its connection opens; the client renews while audio keeps coming."""
    pcm = noise(5.0, seed=98, amplitude=300)

    async def script(conn: ServerConn) -> None:
        first = len(server.conns) == 1
        await slow_handshake(
            conn,
            f"sess_Renew{len(server.conns)}",
            delay=0.0 if first else 0.5,
            expires_in=4.0 if first else 3600,
        )

    async with FaultyServer(script) as server:
        run = await run_script(server.url, tmp, in_pcm=pcm, timeout=45)
    return Outcome(run, server, pcm)


async def expiry_not_inherited(tmp: Path) -> Outcome:
    """The first session expires in 10 s but its connection drops after 1 s; the next session
    announces no expiry: it must not be renewed on the first one's schedule (at ~5.5 s)."""
    pcm = noise(8.0, seed=97, amplitude=300)

    async def script(conn: ServerConn) -> None:
        if len(server.conns) == 1:
            await slow_handshake(conn, "sess_Exp1", delay=0.0, expires_in=10.0)
            await conn.wait_audio(BYTES_PER_S)
            drop(conn)
            return
        await slow_handshake(conn, f"sess_Exp{len(server.conns)}", delay=0.0, expires_in=None)

    async with FaultyServer(script) as server:
        run = await run_script(server.url, tmp, in_pcm=pcm, timeout=45)
    return Outcome(run, server, pcm)


async def short_sessions(tmp: Path) -> Outcome:
    """Every session expires 1-2 s after it starts (renewal due halfway): renewals must keep to
    the connect rate's spacing (60 s / 30 = 2 s), and still lose no audio."""
    pcm = noise(9.0, seed=96, amplitude=300)

    async def script(conn: ServerConn) -> None:
        await slow_handshake(conn, f"sess_Short{len(server.conns)}", delay=0.0, expires_in=2.0)

    async with FaultyServer(script) as server:
        run = await run_script(server.url, tmp, in_pcm=pcm, timeout=60)
    return Outcome(run, server, pcm)


LONG_TURN = noise(4.5, seed=79, amplitude=8000)  # the user speaks from 1.5 s to 6 s
LONG_TURN_AT_S = 1.5


async def renewal_mid_speech(tmp: Path) -> Outcome:
    """The renewal falls due (2 s in) while the user is speaking, before the server has said so
    (this server sends no VAD events at all): the switch must wait for the microphone to go
    quiet, so the whole turn reaches one session."""
    pcm = bytearray(noise(8.0, seed=95, amplitude=300))
    at = int(LONG_TURN_AT_S * RATE) * 2
    pcm[at : at + len(LONG_TURN)] = LONG_TURN

    async def script(conn: ServerConn) -> None:
        first = len(server.conns) == 1
        sid = f"sess_Mid{len(server.conns)}"
        await slow_handshake(
            conn, sid, delay=0.0 if first else 0.3, expires_in=4.0 if first else 3600
        )

    async with FaultyServer(script) as server:
        run = await run_script(server.url, tmp, in_pcm=bytes(pcm), timeout=45)
    return Outcome(run, server, bytes(pcm))


SESSIONS = {
    "gap-turn": gap_turn,
    "renewal": renewal,
    "renewal-mid-speech": renewal_mid_speech,
    "expiry-not-inherited": expiry_not_inherited,
    "short-sessions": short_sessions,
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    async with SessionPool.for_module(request, SESSIONS, tmp_path_factory) as p:  # type: ignore
        yield p


@uses("gap-turn")
async def test_a_turn_spoken_during_a_reconnect_is_heard_and_answered_once(
    pool: SessionPool,
) -> None:
    """User sees: "Voice Live closed the connection (1001: going away): reconnecting (microphone
    audio is kept, the last 10 s, until the session is back)", then their words and the answer
    once each; nothing they said in the gap is lost."""
    out = await finished(pool, "gap-turn")
    run = out.run
    assert len(out.server.conns) == 2, run.describe()
    assert not out.server.script_errors, (
        f"the second session never heard the turn: {out.server.script_errors!r}"
    )
    first, second = out.audio()
    assert BURST not in first and BURST in second, "the turn must reach the new session whole"
    check_each_sample_once(out, at_least_s=4.5)
    lines = transcript_lines(run.session_log())
    assert lines == [
        f"User Input: {GAP_TURN.user_text}",
        f"Agent Audio Response: {GAP_TURN.agent_text}",
    ], lines
    assert not [line for line in run.session_log() if "(partial)" in line], (
        "a finished answer left a partial line"
    )
    held = [
        float(line.split("sent ")[1].split(" s ")[0])
        for line in run.tech_lines(containing="held until the session")
    ]
    assert held and max(held) >= 1.4, run.tech_lines(
        containing="microphone"
    )  # the 1.5 s gap, sent once


@uses("renewal")
async def test_a_make_before_break_renewal_loses_and_repeats_no_audio(pool: SessionPool) -> None:
    out = await finished(pool, "renewal")
    run = out.run
    assert len(out.server.conns) == 2, run.describe()
    first, second = (c.record for c in out.server.conns)
    assert first.close_code == 1000 and second.marks["opened"] < first.marks["closed"]
    check_each_sample_once(out, at_least_s=4.5)


@uses("expiry-not-inherited")
async def test_a_new_session_without_expires_at_is_not_renewed_on_the_old_schedule(
    pool: SessionPool,
) -> None:
    out = await finished(pool, "expiry-not-inherited")
    opened = [
        c.record.marks["opened"] - out.server.conns[0].record.marks["opened"]
        for c in out.server.conns
    ]
    assert len(opened) == 2, (
        f"connections opened at {', '.join(f'{t:.1f}' for t in opened)} s: an early renewal"
    )


@uses("short-sessions")
async def test_renewals_of_very_short_sessions_keep_to_the_connect_rate(pool: SessionPool) -> None:
    out = await finished(pool, "short-sessions")
    run = out.run
    starts = out.server.attempt_times
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    print(
        f"\nshort sessions: {len(starts)} connects in {run.elapsed:.1f} s; "
        f"gaps {', '.join(f'{g:.2f}' for g in gaps)} s"
    )
    assert len(starts) >= 3, "the sessions were never renewed"
    # The client spaces renewals 2 s apart; the server sees each upgrade after a latency that
    # varies by ~0.1 s (more for the first, under load). Before the fix they came 0.5-1 s apart.
    assert min(gaps) >= 1.6, f"renewals {min(gaps):.2f} s apart: faster than 30 a minute allows"
    check_each_sample_once(out, at_least_s=8.5)


@uses("renewal-mid-speech")
async def test_a_renewal_never_splits_a_turn_between_two_sessions(pool: SessionPool) -> None:
    out = await finished(pool, "renewal-mid-speech")
    assert len(out.server.conns) == 2, out.run.describe()
    first, second = out.audio()
    assert LONG_TURN in first, "the turn was split between the old and the new session"
    check_each_sample_once(out, at_least_s=7.5)
