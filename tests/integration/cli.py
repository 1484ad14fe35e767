"""Running the default script as a user would, against a test server it must never reach."""

from __future__ import annotations

from pathlib import Path

from tests.support.replay_server import ReplayServer
from tests.support.script_run import run_to_end


async def _never(conn) -> None:  # pragma: no cover - must never be reached
    raise AssertionError("connected despite a bad configuration")


async def run_unconnected(cwd: Path, argv: list[str]) -> tuple[int, str, str]:
    """Run ``python -m pipelines.agent argv`` ("{url}" is a live test server); assert it never
    connected; return (exit code, stdout, stderr)."""
    async with ReplayServer(_never) as server:
        args = [a.replace("{url}", server.url) for a in argv]
        run = await run_to_end("-m", "pipelines.agent", *args, cwd=cwd, timeout=30)
        assert server.attempts == 0
    return run.code, run.stdout, run.stderr


def assert_one_line(code: int, out: str, err: str, expected: str) -> None:
    """Exit 2, one line on stderr holding ``expected``, no traceback anywhere."""
    assert code == 2, (code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in out + err
