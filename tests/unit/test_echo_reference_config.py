"""``--echo-reference {client,server,none}``: the session fields, the query flag, and the invalid
combinations that fail before connecting with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.config import parse_config
from processors.voicelive.endpoint import Endpoint, Model, build_url
from processors.voicelive.errors import ConfigError
from processors.voicelive.session_config import EchoCancellation, SessionConfig

BASE = [
    "--endpoint",
    "https://r.services.ai.azure.com",
    "--api-key",
    "k",
    "--model",
    "gpt-realtime",
]


def session(*flags: str):
    config, _ = parse_config([*BASE, *flags], env={}, dotenv_path=None)
    return config.session_config


def test_client_reference_sends_stereo_session_fields() -> None:
    s = session("--echo-reference", "client")
    assert s.client_echo_reference and s.input_channels == 2
    assert s.to_wire()["input_audio_echo_cancellation"] == {
        "type": "server_echo_cancellation",
        "reference_source": "client",
        "channels": 2,
    }
    assert s.to_wire()["input_audio_format"] == "pcm16"


def test_server_is_todays_default_and_none_turns_it_off() -> None:
    default = session().to_wire()["input_audio_echo_cancellation"]
    assert default == {"type": "server_echo_cancellation"}
    assert (
        session("--echo-reference", "server").to_wire()["input_audio_echo_cancellation"] == default
    )
    assert "input_audio_echo_cancellation" not in session("--echo-reference", "none").to_wire()
    assert "input_audio_echo_cancellation" not in session("--no-echo-cancellation").to_wire()
    assert session("--echo-reference", "server").input_channels == 1


def test_the_query_flag_goes_with_the_client_reference() -> None:
    endpoint = Endpoint.parse("https://r.services.ai.azure.com")
    url = build_url(endpoint, Model("m"), api_version="2026-07-15", client_echo_reference=True)
    assert "features=client_ec_reference%3Atrue" in url
    assert "features" not in build_url(endpoint, Model("m"), api_version="2026-07-15")


@pytest.mark.parametrize(
    ("flags", "session_json", "expected"),
    [
        (["--echo-reference", "client", "--no-echo-cancellation"], None, "give only one"),
        (
            ["--echo-reference", "client"],
            {"input_audio_format": "g711_ulaw"},
            "needs pcm16, not g711_ulaw",
        ),
        (
            [],
            {"input_audio_echo_cancellation": {"reference_source": "client", "channels": 1}},
            "a client reference needs channels 2",
        ),
        (
            [],
            {"input_audio_echo_cancellation": {"reference_source": "server", "channels": 2}},
            "2 channels need reference_source client",
        ),
    ],
)
def test_invalid_combinations_fail_before_connecting(
    tmp_path: Path, flags: list[str], session_json: dict | None, expected: str
) -> None:
    extra = []
    if session_json is not None:
        (tmp_path / "s.json").write_text(json.dumps(session_json), encoding="utf-8")
        extra = ["--session-json", str(tmp_path / "s.json")]
    with pytest.raises(ConfigError, match=expected):
        parse_config([*BASE, *flags, *extra], env={}, dotenv_path=None)


def test_session_config_in_code() -> None:
    config = SessionConfig(echo_cancellation=EchoCancellation.client())
    config.validate()
    assert config.input_channels == 2
    with pytest.raises(ConfigError, match="channels 2"):
        SessionConfig(echo_cancellation=EchoCancellation(reference_source="client")).validate()
