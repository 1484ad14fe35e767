"""``--session-json``: the file's session fields pass the same checks as the flags, before any
connection; fields this client does not model still go through unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import parse_config
from processors.voicelive.errors import ConfigError


def _config(tmp_path: Path, session: Any, *mode: str) -> dict[str, Any]:
    path = tmp_path / "session.json"
    path.write_text(json.dumps(session), encoding="utf-8")
    argv = [
        "--endpoint",
        "wss://x.services.ai.azure.com",
        "--api-key",
        "k",
        "--log-dir",
        str(tmp_path),
        "--session-json",
        str(path),
        *(mode or ("--model", "gpt-realtime")),
    ]
    config, _ = parse_config(argv, env={}, dotenv_path=None)
    return config.session_config.to_wire()


@pytest.mark.parametrize(
    "session,field",
    [
        ({"temperature": 9}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        (
            {"input_audio_echo_cancellation": {"channels": 2}},
            "input_audio_echo_cancellation.channels",
        ),
        ({"voice": {"name": "nobody", "type": "openai"}}, "voice.name"),
        ({"voice": {"type": "azure-standard"}}, "voice.name"),
        (
            {"voice": {"name": "en-US-Ava:DragonHDLatestNeural", "temperature": "x"}},
            "voice.temperature",
        ),
        ({"voice": 5}, "voice"),
        ({"turn_detection": {"type": "server_vad", "threshold": 7}}, "turn_detection.threshold"),
        ({"turn_detection": {"type": "loud"}}, "turn_detection.type"),
        (
            {"turn_detection": {"type": "azure_semantic_vad", "languages": 3}},
            "turn_detection.languages",
        ),
        (
            {
                "turn_detection": {
                    "type": "server_vad",
                    "end_of_utterance_detection": {"model": "x"},
                }
            },
            "turn_detection.end_of_utterance_detection.model",
        ),
        ({"turn_detection": "server_vad"}, "turn_detection"),
        ({"input_audio_transcription": {"model": "nope"}}, "input_audio_transcription.model"),
        ({"input_audio_noise_reduction": {"type": "loud"}}, "input_audio_noise_reduction.type"),
        ({"input_audio_sampling_rate": 44100}, "input_audio_sampling_rate"),
        ({"modalities": ["audio"]}, "modalities"),
        ({"modalities": "text"}, "modalities"),
        ({"max_response_output_tokens": 0}, "max_response_output_tokens"),
        (
            {"voice": "alloy", "output_audio_timestamp_types": ["word"]},
            "output_audio_timestamp_types",
        ),
    ],
)
def test_bad_session_json_fails_before_connecting_naming_the_field(
    tmp_path: Path, session: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError, match=rf"invalid session setting {field.replace('.', '[.]')}:"):
        _config(tmp_path, session)


def test_instructions_in_agent_mode_are_refused_as_with_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="instructions"):
        _config(tmp_path, {"instructions": "Be brief."}, "--agent-name", "a", "--project-name", "p")


def test_good_session_json_replaces_what_it_names_and_passes_the_rest_through(
    tmp_path: Path,
) -> None:
    wire = _config(
        tmp_path,
        {
            "voice": {"name": "alloy", "type": "openai"},
            "turn_detection": {"type": "server_vad", "threshold": 0.5, "future_knob": 1},
            "temperature": 0.7,
            "a_field_of_next_year": {"x": [1, 2]},
        },
    )
    assert wire["voice"] == {"name": "alloy", "type": "openai"}
    assert wire["turn_detection"] == {"type": "server_vad", "threshold": 0.5, "future_knob": 1}
    assert wire["temperature"] == 0.7
    assert wire["a_field_of_next_year"] == {"x": [1, 2]}
    assert "output_audio_timestamp_types" not in wire  # as with --voice alloy: Azure voices only


def test_manual_turns_from_the_file(tmp_path: Path) -> None:
    wire = _config(tmp_path, {"turn_detection": None})
    assert wire["turn_detection"] is None
