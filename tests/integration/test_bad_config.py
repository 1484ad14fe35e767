"""Bad configuration: non-zero exit before any connection attempt, one line naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli import run_unconnected


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
    tmp_path: Path, args: list[str], expected: str
) -> None:
    code, out, err = await run_unconnected(tmp_path, ["--api-key", "k", *args])
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in out + err
    assert not (tmp_path / "logs").exists(), "nothing is written for a configuration that never ran"
