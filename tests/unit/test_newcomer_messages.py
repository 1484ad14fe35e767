"""What a new user trips on: the local agent picked without a project, and a missing agent access
token named as such (not as a missing API key)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from azure.identity.aio import EnvironmentCredential

from pipelines.config import LOCAL_PROJECT, parse_config
from processors.voicelive.connection import ConnectionSettings, Credentials, VoiceLiveConnection
from processors.voicelive.endpoint import Agent, ClassicAgent, Endpoint
from processors.voicelive.errors import ConnectionFailed


@pytest.mark.parametrize(
    "argv,target",
    [
        (["--agent-id", "echo"], ClassicAgent("echo", LOCAL_PROJECT, "local-key")),
        (["--agent-name", "echo"], Agent("echo", LOCAL_PROJECT)),
        (["--agent-id", "echo", "--project-name", "mine"], ClassicAgent("echo", "mine", "local-key")),
    ],
)
def test_local_agents_need_no_project_name(tmp_path: Path, argv: list[str], target: object) -> None:
    config, _ = parse_config(["--local", "--log-dir", str(tmp_path), *argv], env={}, dotenv_path=None)
    assert config.target == target


async def test_classic_agent_with_a_key_but_no_agent_token_says_the_agent_token_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Entra ID is tried for the agent access token; azure-identity's EnvironmentCredential fails
    at once without its variables (no network), as DefaultAzureCredential does on a laptop."""
    for name in [n for n in os.environ if n.startswith("AZURE_")]:
        monkeypatch.delenv(name)
    settings = ConnectionSettings(
        endpoint=Endpoint.parse("ws://127.0.0.1:9"),
        target=ClassicAgent("asst_1", "proj"),
        api_version="2025-05-01-preview",
        credentials=Credentials(api_key="K-newcomer-abcdefgh", token_credential=EnvironmentCredential()),
    )
    with pytest.raises(ConnectionFailed) as info:
        await VoiceLiveConnection(settings).open()
    message = str(info.value)
    assert message.startswith("no agent access token"), message
    assert "--agent-access-token" in message and "AZURE_VOICE_LIVE_API_KEY" not in message
