"""What a demanding user types wrong on the command line, or leaves wrong in ``.env``: one line on
stderr saying what to fix, exit 2, no connection attempt, nothing written, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import parse_config
from processors.voicelive.endpoint import ClassicAgent
from tests.integration.cli import assert_one_line, run_unconnected
from tests.support.audio import write_wav
from tests.support.scenarios import noise


def prepare(tmp: Path) -> None:
    write_wav(tmp / "in.wav", noise(0.5, seed=1))
    (tmp / "afile").write_text("x")


# (argv, expected text on the one line, text that must NOT appear); "{url}" is the test server
CASES = [
    (
        ["--endpoint", "{url}", "--model", "m", "--bogus"],
        "unrecognized arguments: --bogus",
        "usage:",
    ),
    (
        ["--endpoint", "{url}", "--model", "m", "--input-wave", "in.wav"],
        "did you mean --input-wav?",
        "usage:",
    ),
    (
        ["--endpoint", "{url}", "--model", "m", "--vad", "loud"],
        "argument --vad: invalid choice: 'loud'",
        "usage:",
    ),
    (
        [
            "--endpoint",
            "{url}",
            "--model",
            "m",
            "--input-wav",
            "in.wav",
            "--log-dir",
            "/proc/voicelive-logs",
        ],
        "--log-dir '/proc/voicelive-logs' cannot be written",
        None,
    ),
    (
        [
            "--endpoint",
            "{url}",
            "--model",
            "m",
            "--input-wav",
            "in.wav",
            "--output-wav",
            "/proc/out.wav",
        ],
        "--output-wav '/proc/out.wav' cannot be written",
        None,
    ),
    (
        [
            "--endpoint",
            "{url}",
            "--model",
            "m",
            "--input-wav",
            "in.wav",
            "--output-wav",
            "afile/out.wav",
        ],
        "is under",
        "does not exist",
    ),
    (
        ["--endpoint", "{url}", "--model", "m", "--input-wav", "in.wav", "--log-dir", ""],
        "argument --log-dir: the path is empty",
        None,
    ),
    (
        ["--endpoint", "{url}", "--model", "m", "--input-wav", ""],
        "argument --input-wav: the path is empty",
        None,
    ),
    (["--endpoint", "{url}", "--model", "m", "--api-key", ""], "--api-key is empty", None),
    (["--endpoint", "{url}", "--model", "m", "--api-version", ""], "--api-version is empty", None),
    (
        ["--endpoint", "{url}", "--model", "m", "--api-key", "sekrit\nmore"],
        "--api-key contains a space or a line break",
        "sekrit",
    ),
    (
        ["--endpoint", "https://me:sekrit@res.services.ai.azure.com", "--model", "m"],
        "must not hold a user name or password",
        "sekrit",
    ),
    (
        ["--endpoint", "https://res .services.ai.azure.com", "--model", "m"],
        "contains a space",
        None,
    ),
    (["--endpoint", "not a url", "--model", "m"], "must start with https:// or wss://", None),
    (
        ["--endpoint", "https://res.services.ai.azure.com/api/projects/p", "--model", "m"],
        "has a path (/api/projects/p): give the resource alone",
        None,
    ),
    (
        [
            "--endpoint",
            "{url}/?api-version=2025-10-01",
            "--api-version",
            "2026-07-15",
            "--model",
            "m",
        ],
        "the endpoint says api-version=2025-10-01",
        None,
    ),
    (
        ["--endpoint", "{url}", "--agent-id", "a", "--agent-name", "b", "--project-name", "p"],
        "--agent-id and --agent-name are different modes",
        None,
    ),
    (
        ["--endpoint", "{url}", "--agent-id", "a", "--model", "m", "--project-name", "p"],
        "--agent-id and --model are different modes",
        None,
    ),
    (["--local", "--endpoint", "{url}"], "--local and --endpoint: give only one", None),
]


@pytest.mark.parametrize("args,expected,absent", CASES, ids=[c[1][:40] for c in CASES])
async def test_bad_command_line_is_one_line_before_connecting(
    tmp_path: Path,
    args: list[str],
    expected: str,
    absent: str | None,
) -> None:
    prepare(tmp_path)
    argv = args if "--api-key" in args else [*args, "--api-key", "k"]
    code, out, err = await run_unconnected(tmp_path, argv)
    assert_one_line(code, out, err, expected)
    if absent is not None:
        assert absent not in out + err
    assert not (tmp_path / "logs").exists(), "nothing is written for a command line that never ran"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "in.wav"], (
        "a write probe was left behind"
    )


async def test_dotenv_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"\xff\xfeAZURE_VOICE_LIVE_MODEL=m\n")
    code, out, err = await run_unconnected(tmp_path, ["--endpoint", "{url}", "--api-key", "k"])
    assert_one_line(
        code, out, err, "error: .env is not UTF-8 text (byte 0xff at offset 0): save it as UTF-8"
    )


def test_api_version_in_the_endpoint_query_is_used_not_dropped() -> None:
    config, _ = parse_config(
        [
            "--endpoint",
            "https://res.services.ai.azure.com/?api-version=2025-10-01",
            "--api-key",
            "k",
            "--model",
            "m",
        ],
        env={},
        dotenv_path=None,
    )
    assert config.api_version == "2025-10-01"


def test_values_are_trimmed_and_empty_environment_values_count_as_unset() -> None:
    env = {
        "AZURE_VOICE_LIVE_ENDPOINT": "https://res.services.ai.azure.com/\n",
        "AZURE_VOICE_LIVE_API_KEY": "  key\n",
        "AZURE_VOICE_LIVE_API_VERSION": "",
        "AZURE_VOICE_LIVE_MODEL": " m ",
    }
    config, _ = parse_config([], env=env, dotenv_path=None)
    assert (
        config.api_key == "key"
        and config.target.label == "m"
        and config.api_version == "2026-07-15"
    )


def test_local_classic_agent_named_on_the_command_line_gets_the_local_key() -> None:
    config, _ = parse_config(
        ["--local", "--agent-id", "mine", "--project-name", "p"], env={}, dotenv_path=None
    )
    assert config.target == ClassicAgent("mine", "p", "local-key")
