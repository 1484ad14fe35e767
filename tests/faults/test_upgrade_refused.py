"""The WebSocket upgrade is refused: 401/403 end the run at once, 429/5xx are retried with backoff.

Each test runs the default script as a subprocess against a :class:`FaultyServer` that answers the
upgrade with an HTTP error. The sessions of this module run side by side (see
tests/support/pool.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.fault_scenarios import default_turns, handshake_only, one_turn
from tests.support.faulty_server import FaultyServer, Refusal, refuse_always, refuse_first
from tests.support.pool import SessionPool, uses
from tests.support.script_run import (
    ScriptRun,
    check_logs_private,
    check_no_crash,
    run_script,
    transcript_lines,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Outcome:
    run: ScriptRun
    server: FaultyServer

    @property
    def gaps(self) -> list[float]:
        """Seconds between consecutive upgrade attempts."""
        t = self.server.attempt_times
        return [b - a for a, b in pairwise(t)]


def refused(refuse: Refusal, *, conversation: bool) -> object:
    async def session(tmp: Path) -> Outcome:
        async with FaultyServer(
            one_turn if conversation else handshake_only, refuse=refuse
        ) as server:
            # Without a conversation, a 10 s input: a script that waited for its end (instead of
            # ending at the refusal) stands out whatever the machine's load.
            input_s = 2.0 if conversation else 10.0
            run = await run_script(server.url, tmp, input_s=input_s, timeout=40)
        return Outcome(run, server)

    return session


SESSIONS = {
    "401": refused(refuse_always(401), conversation=False),
    "403": refused(refuse_always(403), conversation=False),
    "429x2": refused(refuse_first(2, 429), conversation=True),
    "500x1": refused(refuse_first(1, 500), conversation=True),
    "503-always": refused(refuse_always(503), conversation=False),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    async with SessionPool.for_module(request, SESSIONS, tmp_path_factory) as p:  # type: ignore[arg-type]
        yield p


def check_one_line_failure(run: ScriptRun, *needles: str) -> str:
    assert run.code != 0, run.describe()
    check_no_crash(run)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, f"stderr should be exactly one line\n{run.describe()}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} missing from {lines[0]!r}"
    return lines[0]


@uses("401", "403")
@pytest.mark.parametrize("status", ["401", "403"])
async def test_refused_credentials_end_at_once_with_one_line_naming_the_key(
    pool: SessionPool, status: str
) -> None:
    """User sees: one line on stderr, "Voice Live refused the credentials (HTTP 401): check
    AZURE_VOICE_LIVE_API_KEY ...", exit 1 at once (not at the end of the 10 s input); the server
    saw exactly one attempt."""
    out: Outcome = await pool.get(status)
    line = check_one_line_failure(out.run, f"HTTP {status}", "AZURE_VOICE_LIVE_API_KEY")
    assert out.server.attempts == 1, f"{out.server.attempts} connection attempts"
    after = out.run.ended - out.server.attempt_times[0]
    print(f"\n{status}: exit {out.run.code} {after:.2f} s after the refusal: {line}")
    assert after < 3.0, f"exited {after:.1f} s after the refusal"
    check_logs_private(out.run)


def check_recovered(out: Outcome, attempts: int) -> None:
    run = out.run
    assert run.code == 0, run.describe()
    check_no_crash(run)
    assert out.server.attempts == attempts, out.server.attempt_times
    assert out.gaps[0] <= 1.0, f"first retry {out.gaps[0]:.2f} s after the refusal"
    turn = default_turns()[0]
    assert transcript_lines(run.session_log()) == [
        f"User Input: {turn.user_text}",
        f"Agent Audio Response: {turn.agent_text}",
    ]
    assert not out.server.script_errors, out.server.script_errors
    assert "turn_done" in out.server.conns[0].record.marks
    assert out.server.conns[0].record.close_code == 1000
    assert run.stderr.strip() == "", run.describe()
    check_logs_private(run)


@uses("429x2")
async def test_429_is_retried_with_backoff_and_the_session_proceeds(pool: SessionPool) -> None:
    """User sees: a warning per refusal on the console ("rate limiting new connections (HTTP
    429); retrying in 0.4 s (attempt 2 of 5)"), then the conversation as usual; exit 0."""
    out: Outcome = await pool.get("429x2")
    print(f"\n429 twice: retries after {', '.join(f'{g:.2f}' for g in out.gaps)} s")
    check_recovered(out, attempts=3)
    assert len(out.run.tech_lines("WARNING", "HTTP 429")) == 2


@uses("500x1")
async def test_500_is_retried_and_the_session_proceeds(pool: SessionPool) -> None:
    """User sees: one warning ("server error at the upgrade (HTTP 500); retrying in ...") and
    then the conversation; exit 0."""
    out: Outcome = await pool.get("500x1")
    print(f"\n500 once: retry after {out.gaps[0]:.2f} s")
    check_recovered(out, attempts=2)
    assert len(out.run.tech_lines("WARNING", "HTTP 500")) == 1


@uses("503-always")
async def test_5xx_every_time_gives_up_after_five_attempts_with_one_line(pool: SessionPool) -> None:
    """User sees: four retry warnings, then one line on stderr ("... (HTTP 503) (gave up after 5
    attempts)"), exit 1. Attempts are spaced by a growing, jittered, bounded delay."""
    out: Outcome = await pool.get("503-always")
    line = check_one_line_failure(out.run, "HTTP 503")
    gaps = out.gaps
    shown = ", ".join(f"{g:.2f}" for g in gaps)
    print(
        f"\n503 always: {out.server.attempts} attempts, gaps {shown} s, "
        f"exit {out.run.code} after {out.run.elapsed:.2f} s: {line}"
    )
    assert out.server.attempts == 5
    assert gaps[0] <= 1.0
    assert max(gaps) <= 10.0
    assert gaps[-1] > gaps[0], "the delay does not grow"
    assert out.run.elapsed < 25.0
