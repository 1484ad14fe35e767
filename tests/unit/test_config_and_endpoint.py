"""Configuration is validated offline, with one line naming what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import parse_config
from processors.voicelive.endpoint import (
    Agent,
    ClassicAgent,
    Endpoint,
    Model,
    build_headers,
    build_url,
    is_loopback,
)
from processors.voicelive.errors import ConfigError
from processors.voicelive.session_config import (
    EndOfUtteranceDetection,
    SessionConfig,
    TurnDetection,
    Voice,
    quickstart_session,
)

BASE = ["--endpoint", "https://res.services.ai.azure.com/", "--api-key", "k"]


def parse(*argv: str, env: dict[str, str] | None = None):
    return parse_config(list(argv), env=env or {}, dotenv_path=None)[0]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--agent-id", "a", "--project-name", "p"], "no endpoint"),
        (["--endpoint", "https://x", "--agent-id", "a"], "--agent-id needs a project"),
        (["--endpoint", "https://x", "--agent-name", "a"], "--agent-name needs a project"),
        (["--endpoint", "https://x"], "no agent or model"),
        (["--endpoint", "ws://voice.example.com", "--model", "m"], "not encrypted"),
        (["--endpoint", "http://10.0.0.5", "--model", "m"], "not encrypted"),
        (["--endpoint", "ftp://x", "--model", "m"], "must start with https://"),
        (["--endpoint", "https://x:99999", "--model", "m"], "invalid port"),
        (["--endpoint", "https://x", "--model", "m", "--agent-id", "a"], "different modes"),
        (
            ["--endpoint", "https://x", "--model", "m", "--vad-threshold", "1.5"],
            "turn_detection.threshold",
        ),
        (
            ["--endpoint", "https://x", "--model", "m", "--vad-threshold", "-0.1"],
            "turn_detection.threshold",
        ),
        (
            ["--endpoint", "https://x", "--model", "m", "--silence-duration-ms", "-5"],
            "silence_duration_ms",
        ),
        (
            ["--endpoint", "https://x", "--model", "m", "--vad", "none", "--vad-threshold", "0.5"],
            "needs turn detection",
        ),
        (
            [
                "--endpoint",
                "https://x",
                "--model",
                "m",
                "--vad",
                "semantic_vad",
                "--vad-threshold",
                "0.5",
            ],
            "semantic_vad takes eagerness",
        ),
        (
            [
                "--endpoint",
                "https://x",
                "--agent-id",
                "a",
                "--project-name",
                "p",
                "--instructions",
                "hi",
            ],
            "agents own their prompt",
        ),
        (
            ["--endpoint", "https://x", "--model", "m", "--transcription-model", "nope"],
            "input_audio_transcription.model",
        ),
        (["--endpoint", "https://x", "--model", "m", "--input-wav", "/no/such.wav"], "--input-wav"),
        (
            ["--endpoint", "https://x", "--model", "m", "--output-wav", "/no/such/dir/out.wav"],
            "--output-wav folder",
        ),
    ],
)
def test_bad_config_is_one_clear_line(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(*argv)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_flags_override_env_and_modes_resolve() -> None:
    env = {
        "AZURE_VOICE_LIVE_ENDPOINT": "https://env.example.com",
        "AI_FOUNDRY_AGENT_ID": "env-agent",
        "AI_FOUNDRY_PROJECT_NAME": "proj",
        "AZURE_VOICE_LIVE_API_KEY": "envkey",
    }
    cfg = parse(env=env)
    assert cfg.target == ClassicAgent("env-agent", "proj", None)
    assert cfg.api_version == "2025-05-01-preview" and cfg.api_key == "envkey"
    cfg = parse("--model", "gpt-realtime", "--api-version", "2026-07-15", env=env)
    assert cfg.target == Model("gpt-realtime") and cfg.api_version == "2026-07-15"
    cfg = parse("--agent-name", "helper", "--agent-version", "3", env=env)
    assert cfg.target == Agent("helper", "proj", "3", None) and cfg.api_version == "2026-07-15"


def test_dotenv_is_the_lowest_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "AZURE_VOICE_LIVE_ENDPOINT=https://dotenv.example.com\nAZURE_VOICE_LIVE_MODEL=m1\n"
    )
    monkeypatch.setenv("AZURE_VOICE_LIVE_MODEL", "m2")
    cfg, _ = parse_config([], dotenv_path=str(dotenv))
    assert cfg.endpoint == Endpoint.parse("https://dotenv.example.com") and cfg.target == Model(
        "m2"
    )


def test_dotenv_junk_lines_are_skipped_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "this is not a setting\nAZURE_VOICE_LIVE_ENDPOINT=https://dotenv.example.com\n=orphan\nAZURE_VOICE_LIVE_MODEL=m1\n"
    )
    cfg, _ = parse_config([], dotenv_path=str(dotenv))
    assert cfg.endpoint == Endpoint.parse("https://dotenv.example.com") and cfg.target == Model(
        "m1"
    )
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"warning: {dotenv}: lines 1, 3 could not be parsed and were ignored (expected NAME=value)"
    ]


def test_url_and_headers_for_each_mode() -> None:
    ep = Endpoint.parse("https://res.cognitiveservices.azure.com/")
    url = build_url(
        ep, ClassicAgent("asst_1", "proj", "tok"), api_version="2025-05-01-preview", debug=True
    )
    assert (
        url
        == "wss://res.cognitiveservices.azure.com/voice-live/realtime?api-version=2025-05-01-preview&agent-project-name=proj&agent-id=asst_1&agent-access-token=tok&debug=on"
    )
    url = build_url(ep, Agent("a b", "p", "2", "conv_1"), api_version="2026-07-15")
    assert url.endswith(
        "?api-version=2026-07-15&agent-name=a+b&agent-project-name=p&agent-version=2&conversation-id=conv_1"
    )
    assert build_url(
        Endpoint.parse("wss://x/voice-live/realtime?profile=byom"), Model("m"), api_version="v"
    ).endswith("?api-version=v&model=m&profile=byom")
    assert build_url(
        Endpoint.parse("http://127.0.0.1:8080"), Model("m"), api_version="v"
    ).startswith("ws://127.0.0.1:8080/voice-live/realtime?")
    headers = build_headers(api_key="K", request_id="r")
    assert headers == {"x-ms-client-request-id": "r", "api-key": "K"}
    assert build_headers(bearer_token="T")["Authorization"] == "Bearer T"
    with pytest.raises(ConfigError):
        build_headers()
    with pytest.raises(ConfigError):
        ClassicAgent("a", "p").query(None)


@pytest.mark.parametrize(
    "host,ok",
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback(host: str, ok: bool) -> None:
    assert is_loopback(host) is ok


def test_quickstart_session_is_the_default_and_matches_the_seed() -> None:
    wire = quickstart_session().to_wire()
    assert wire["turn_detection"] == {
        "type": "azure_semantic_vad",
        "threshold": 0.3,
        "prefix_padding_ms": 200,
        "silence_duration_ms": 200,
        "remove_filler_words": True,
        "end_of_utterance_detection": {
            "model": "semantic_detection_v1",
            "threshold": 0.1,
            "timeout": 4,
        },
    }
    assert wire["voice"] == {
        "name": "en-US-Aria:DragonHDLatestNeural",
        "type": "azure-standard",
        "temperature": 0.8,
    }
    assert wire["input_audio_noise_reduction"] == {"type": "azure_deep_noise_suppression"}
    assert wire["input_audio_echo_cancellation"] == {"type": "server_echo_cancellation"}
    assert wire["output_audio_timestamp_types"] == ["word"] and wire["modalities"] == [
        "text",
        "audio",
    ]


@pytest.mark.parametrize(
    "session,path",
    [
        (SessionConfig(modalities=["audio"]), "modalities"),
        (SessionConfig(turn_detection=TurnDetection(type="fancy_vad")), "turn_detection.type"),
        (SessionConfig(turn_detection=TurnDetection(eagerness="high")), "turn_detection.eagerness"),
        (
            SessionConfig(
                turn_detection=TurnDetection(type="server_vad", remove_filler_words=True)
            ),
            "remove_filler_words",
        ),
        (
            SessionConfig(
                turn_detection=TurnDetection(
                    type="azure_semantic_vad_multilingual", languages=["xx"]
                )
            ),
            "languages",
        ),
        (
            SessionConfig(
                turn_detection=TurnDetection(
                    end_of_utterance_detection=EndOfUtteranceDetection(model="smart")
                )
            ),
            "end_of_utterance_detection.model",
        ),
        (
            SessionConfig(
                turn_detection=TurnDetection(
                    end_of_utterance_detection=EndOfUtteranceDetection(threshold_level="max")
                )
            ),
            "threshold_level",
        ),
        (SessionConfig(voice=Voice(name="nobody", type="openai")), "voice.name"),
        (SessionConfig(voice=Voice(name="x", type="azure-custom")), "voice.endpoint_id"),
        (SessionConfig(voice="alloy", word_timestamps=True), "output_audio_timestamp_types"),
        (SessionConfig(noise_reduction="loud"), "input_audio_noise_reduction"),
        (SessionConfig(input_sample_rate=44100), "input_audio_sampling_rate"),
        (SessionConfig(max_response_output_tokens=0), "max_response_output_tokens"),
        (SessionConfig(turn_detection=TurnDetection(prefix_padding_ms=True)), "prefix_padding_ms"),
    ],
)
def test_session_validation_names_the_field(session: SessionConfig, path: str) -> None:
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        session.validate()


def test_manual_turns_send_null_turn_detection() -> None:
    wire = SessionConfig(turn_detection=None, manual_turns=True).to_wire()
    assert "turn_detection" in wire and wire["turn_detection"] is None
