"""SIGTERM or Ctrl-C (SIGINT) in the middle of the agent's answer: the script stops cleanly.

The server answers a turn with 4 s of audio paced in real time; one second into it the test sends
the signal. What must be left behind: a session log with every line written so far, an output WAV
whose header is finalised (``wave`` opens it, the frame count matches the data), a JSONL file
whose every line parses, and a WebSocket closed with 1000. Exit code: "Chat done." and the
shell's convention for a run ended by a signal, 128 + its number (130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.faulty_server import FaultyServer, drop, refuse_after
from tests.support.pool import SessionPool, uses
from tests.support.replay_server import ServerConn
from tests.support.scenarios import (
    RATE,
    Turn,
    handshake,
    noise,
    response_end,
    response_start,
    transcript_deltas,
    user_speaks,
)
from tests.support.script_run import (
    ScriptRun,
    check_logs_private,
    check_no_crash,
    check_wav_valid,
    run_script,
    send_signal,
    transcript_lines,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
ACCEPTED_EXIT = {signal.SIGTERM: (143,), signal.SIGINT: (130,)}


@dataclass
class LongAnswer:
    """One turn whose answer is streamed in real time; ``mid`` is set 1 s into its audio."""

    turn: Turn = field(
        default_factory=lambda: Turn(
            "Read me the whole poem",
            "Of all the seas I sailed, the calmest was the last",
            noise(4.0, seed=21),
        )
    )
    mid: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, conn: ServerConn) -> None:
        await handshake(conn)
        await conn.wait_audio(RATE * 2 // 5)
        await user_speaks(conn, self.turn)
        await response_start(conn, self.turn)
        await transcript_deltas(conn, self.turn)
        second = RATE * 2
        await conn.stream_audio(
            self.turn.response_id, self.turn.item_id, self.turn.audio[:second], speed=1.0
        )
        conn.mark("mid")
        self.mid.set()
        await conn.stream_audio(
            self.turn.response_id, self.turn.item_id, self.turn.audio[second:], speed=1.0
        )
        conn.mark("stream_done")


@dataclass
class Outcome:
    run: ScriptRun
    server: FaultyServer
    answer: LongAnswer
    signalled_at: float
    sig: signal.Signals


async def wait_for_line(folder: Path, pattern: str, prefix: str, timeout: float = 10.0) -> None:
    """Until a file matching ``pattern`` in ``folder`` has a line starting with ``prefix``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in folder.glob(pattern):
            if any(
                line.startswith(prefix) for line in path.read_text(encoding="utf-8").splitlines()
            ):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no line starting {prefix!r} in {folder}/{pattern} after {timeout} s")


def signalled(sig: signal.Signals) -> object:
    async def session(tmp: Path) -> Outcome:
        answer = LongAnswer()
        sent: list[float] = []

        async def stop_mid_answer(proc: asyncio.subprocess.Process) -> None:
            await asyncio.wait_for(answer.mid.wait(), 20)
            await wait_for_line(tmp / "logs", "session_*.log", "User Input:")
            sent.append(time.monotonic())
            send_signal(proc, sig)

        async with FaultyServer(answer) as server:
            run = await run_script(server.url, tmp, input_s=8.0, timeout=30, during=stop_mid_answer)
        assert sent, f"the signal was never sent\n{run.describe()}"
        return Outcome(run, server, answer, sent[0], sig)

    return session


async def signalled_while_reconnecting(tmp: Path) -> tuple[ScriptRun, FaultyServer, float]:
    """The connection drops after one turn and every reconnect is refused (503, so the client sits
    in its backoff); SIGTERM comes on the third refused attempt."""
    turn = LongAnswer().turn
    turn.audio = turn.audio[: RATE * 2 // 2]
    sent: list[float] = []

    async def script(conn: ServerConn) -> None:
        await handshake(conn)
        await conn.wait_audio(RATE * 2 // 5)
        await user_speaks(conn, turn)
        await response_start(conn, turn)
        await transcript_deltas(conn, turn)
        await conn.stream_audio(turn.response_id, turn.item_id, turn.audio, speed=4.0)
        await response_end(conn, turn)
        drop(conn)

    async def stop_while_refused(proc: asyncio.subprocess.Process) -> None:
        while server.attempts < 4:  # the first connection, then three refused reconnects
            await asyncio.sleep(0.02)
        sent.append(time.monotonic())
        send_signal(proc, signal.SIGTERM)

    async with FaultyServer(script, refuse=refuse_after(1, 503)) as server:
        run = await run_script(server.url, tmp, input_s=20.0, timeout=30, during=stop_while_refused)
    assert sent, f"the signal was never sent\n{run.describe()}"
    return run, server, sent[0]


SESSIONS = {
    "SIGTERM": signalled(signal.SIGTERM),
    "SIGINT": signalled(signal.SIGINT),
    "SIGTERM-reconnecting": signalled_while_reconnecting,
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    async with SessionPool.for_module(request, SESSIONS, tmp_path_factory) as p:  # type: ignore[arg-type]
        yield p


def check_stopped_cleanly(out: Outcome) -> None:
    run = out.run
    check_no_crash(run)
    assert run.code in ACCEPTED_EXIT[out.sig], run.describe()
    stop_s = run.ended - out.signalled_at
    print(f"\n{out.sig.name}: exit {run.code} {stop_s * 1000:.0f} ms after the signal")
    assert stop_s < 3.0, f"took {stop_s:.1f} s to stop"
    assert "stream_done" not in out.server.conns[0].record.marks, (
        "the answer ran to its end: the signal came too late to test anything"
    )
    # The socket was closed with 1000.
    assert out.server.conns[0].record.close_code == 1000, out.server.conns[0].record.close_code
    # The session log has every line written up to the signal.
    lines = run.session_log()
    assert lines[0] == "Agent Session Log:" and lines[1].startswith("Session Config: ")
    assert "SessionID: sess_Replay1" in lines
    assert f"User Input: {out.answer.turn.user_text}" in transcript_lines(lines)
    # A finalised WAV holding the audio heard until the stop.
    frames = check_wav_valid(run.out_wav)
    assert frames > RATE // 2, f"only {frames} frames recorded"
    # Every JSONL line parses; the record ends with what was sent and received.
    records = run.events()
    assert any(r["event"].get("type") == "response.created" for r in records)
    check_logs_private(run)


@uses("SIGTERM")
async def test_sigterm_mid_response_leaves_complete_logs_a_valid_wav_and_closes_1000(
    pool: SessionPool,
) -> None:
    """``kill <pid>`` while the agent speaks. User sees: the audio stops, "Chat done.", exit 143."""
    check_stopped_cleanly(await pool.get("SIGTERM"))


@uses("SIGINT")
async def test_ctrl_c_mid_response_leaves_complete_logs_a_valid_wav_and_closes_1000(
    pool: SessionPool,
) -> None:
    """Ctrl-C while the agent speaks. User sees: the audio stops, "Chat done.", exit 130 (no
    KeyboardInterrupt traceback)."""
    check_stopped_cleanly(await pool.get("SIGINT"))


@uses("SIGTERM", "SIGINT")
async def test_words_spoken_before_the_stop_are_in_the_session_log(pool: SessionPool) -> None:
    """The agent's words received (and heard) before the stop are kept, as for an interrupted
    answer: ``Agent Audio Response: <its words>``."""
    for name in ("SIGTERM", "SIGINT"):
        out: Outcome = await pool.get(name)
        lines = transcript_lines(out.run.session_log())
        assert f"Agent Audio Response: {out.answer.turn.agent_text}" in lines, (name, lines)


@uses("SIGTERM-reconnecting")
async def test_sigterm_while_reconnecting_stops_at_once_with_complete_logs(
    pool: SessionPool,
) -> None:
    """SIGTERM while the client waits between refused reconnect attempts. User sees the retry
    warnings, then "Chat done.", exit 143 within a second or two (not after the backoff runs out);
    the session log, WAV and JSONL are complete."""
    run, server, signalled_at = await pool.get("SIGTERM-reconnecting")
    check_no_crash(run)
    stop_s = run.ended - signalled_at
    print(
        f"\nSIGTERM while reconnecting: exit {run.code} {stop_s * 1000:.0f} ms after the signal, "
        f"{server.attempts} upgrade attempts"
    )
    assert run.code in ACCEPTED_EXIT[signal.SIGTERM], run.describe()
    assert stop_s < 3.0, f"took {stop_s:.1f} s to stop"
    lines = transcript_lines(run.session_log())
    assert lines == [
        "User Input: Read me the whole poem",
        "Agent Audio Response: Of all the seas I sailed, the calmest was the last",
    ], lines
    check_wav_valid(run.out_wav)
    run.events()
    check_logs_private(run)
