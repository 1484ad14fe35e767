"""What a new user trips on: the local agent picked without a project, a missing agent access
token named as such (not as a missing API key), the way to --local, and what the local agents
understand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from azure.identity.aio import EnvironmentCredential

from localserver.brain import DefaultBrain
from pipelines.config import LOCAL_PROJECT, parse_config
from processors.voicelive.connection import ConnectionSettings, Credentials, VoiceLiveConnection
from processors.voicelive.endpoint import Agent, ClassicAgent, Endpoint
from processors.voicelive.errors import ConfigError, ConnectionFailed
from tests.support.script_run import ROOT, script_env


@pytest.mark.parametrize(
    "argv,target",
    [
        (["--agent-id", "echo"], ClassicAgent("echo", LOCAL_PROJECT, "local-key")),
        (["--agent-name", "echo"], Agent("echo", LOCAL_PROJECT)),
        (
            ["--agent-id", "echo", "--project-name", "mine"],
            ClassicAgent("echo", "mine", "local-key"),
        ),
    ],
)
def test_local_agents_need_no_project_name(tmp_path: Path, argv: list[str], target: object) -> None:
    config, _ = parse_config(
        ["--local", "--log-dir", str(tmp_path), *argv], env={}, dotenv_path=None
    )
    assert config.target == target


async def test_classic_agent_with_a_key_but_no_agent_token_says_the_agent_token_is_missing() -> (
    None
):
    """Entra ID is tried for the agent access token; azure-identity's EnvironmentCredential fails
    at once without its variables (no network, and no AZURE_* setting reaches a test: see
    tests/conftest.py), as DefaultAzureCredential does on a laptop."""
    settings = ConnectionSettings(
        endpoint=Endpoint.parse("ws://127.0.0.1:9"),
        target=ClassicAgent("asst_1", "proj"),
        api_version="2025-05-01-preview",
        credentials=Credentials(
            api_key="K-newcomer-abcdefgh", token_credential=EnvironmentCredential()
        ),
    )
    with pytest.raises(ConnectionFailed) as info:
        await VoiceLiveConnection(settings).open()
    message = str(info.value)
    assert message.startswith("no agent access token"), message
    assert "--agent-access-token" in message and "AZURE_VOICE_LIVE_API_KEY" not in message


def test_no_endpoint_suggests_local(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no endpoint: .* or try --local"):
        parse_config(
            ["--agent-id", "a", "--project-name", "p", "--log-dir", str(tmp_path)],
            env={},
            dotenv_path=None,
        )


def test_localserver_help_lists_the_agents_and_what_the_default_one_understands() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "localserver", "--help"],
        cwd=ROOT,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "local-agent" in run.stdout and "echo: Repeats what the user said." in run.stdout
    for phrase in DefaultBrain.known_phrases:
        assert f"      {phrase}\n" in run.stdout
    assert "I did not catch that." in run.stdout and "--local" in run.stdout
