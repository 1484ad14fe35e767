"""Bad configuration: non-zero exit before any connection attempt, one line naming the problem."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.replay_server import ReplayServer


async def _never(conn) -> None:  # pragma: no cover - must never be reached
    raise AssertionError("connected despite a bad configuration")


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--agent-id", "A", "--project-name", "P"], "no endpoint"),
        (["--endpoint", "{url}", "--agent-id", "A"], "--agent-id needs a project"),
        (
            [
                "--endpoint",
                "{url}",
                "--agent-id",
                "A",
                "--project-name",
                "P",
                "--vad-threshold",
                "7",
            ],
            "turn_detection.threshold",
        ),
        (
            ["--endpoint", "ws://voicelive.example.com", "--agent-id", "A", "--project-name", "P"],
            "only allowed for loopback",
        ),
        (["--endpoint", "http://192.168.1.20:8080", "--model", "m"], "only allowed for loopback"),
        (["--endpoint", "{url}", "--model", "m", "--input-wav", "missing.wav"], "--input-wav"),
    ],
)
async def test_bad_config_exits_before_connecting(
    python: str, script_env: dict[str, str], tmp_path: Path, args: list[str], expected: str
) -> None:
    async with ReplayServer(_never) as server:
        argv = [a.replace("{url}", server.url) for a in args]
        proc = await asyncio.create_subprocess_exec(
            python,
            "-m",
            "pipelines.agent",
            "--api-key",
            "k",
            *argv,
            cwd=tmp_path,
            env=script_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert server.attempts == 0
    assert proc.returncode not in (0, None)
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], err.decode()
    assert "Traceback" not in out.decode() + err.decode()
    assert not (tmp_path / "logs").exists(), "nothing is written for a configuration that never ran"
