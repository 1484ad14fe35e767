"""Session configuration of the local server: the defaults ``session.created`` shows (per
connection mode, after the recorded traces), the validation of ``session.update`` (the real error
codes ``unknown_parameter`` / ``invalid_value``) and the merge into the effective config that
``session.updated`` echoes in full (only present fields change; unset fields echo ``null``)."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

SESSION_FIELDS = frozenset(
    {
        "model",
        "modalities",
        "animation",
        "voice",
        "instructions",
        "input_audio_sampling_rate",
        "input_audio_format",
        "output_audio_format",
        "turn_detection",
        "input_audio_noise_reduction",
        "input_audio_echo_cancellation",
        "avatar",
        "input_audio_transcription",
        "output_audio_timestamp_types",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "temperature",
        "max_response_output_tokens",
        "reasoning_effort",
        "interim_response",
        "include",
        "metadata",
        # echoed by the real service although not in the SDK model; read-only fields a client may
        # echo back
        "truncation_strategy",
        "greeting",
        "handoff",
        "id",
        "object",
        "expires_at",
        "agent",
    }
)
_READ_ONLY = frozenset({"id", "object", "expires_at", "agent", "model"})

VAD_TYPES = frozenset(
    {
        "server_vad",
        "semantic_vad",
        "azure_semantic_vad",
        "azure_semantic_vad_en",
        "azure_semantic_vad_multilingual",
    }
)
TURN_DETECTION_FIELDS = frozenset(
    {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
        "speech_duration_ms",
        "create_response",
        "interrupt_response",
        "auto_truncate",
        "end_of_utterance_detection",
        "idle_timeout_ms",
        "appended_text_after_truncation",
        "remove_filler_words",
        "languages",
        "eagerness",
        "profile",
        "neg_threshold",
        "window_size",
        "distinct_ci_phones",
        "require_vowel",
        "require_vowel_assistant_speaking",
        "speech_duration_assistant_speaking_ms",
    }
)
TRANSCRIPTION_FIELDS = frozenset({"model", "language", "custom_speech", "phrase_list", "prompt"})
INPUT_FORMATS = {"pcm16": None, "g711_ulaw": 8000, "g711_alaw": 8000}
OUTPUT_FORMATS = {
    "pcm16": 24000,
    "pcm16_8000hz": 8000,
    "pcm16_16000hz": 16000,
    "pcm16-8000hz": 8000,
    "pcm16-16000hz": 16000,
    "g711_ulaw": 8000,
    "g711_alaw": 8000,
}
MODALITIES = frozenset({"text", "audio", "animation", "avatar"})

LOCAL_INSTRUCTIONS = "You are the local Voice Live stand-in agent. Answer briefly."


class SessionUpdateRejected(ValueError):
    """A rejected ``session.update``: carries the real service's error code and param."""

    def __init__(self, code: str, message: str, param: str | None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


@dataclass(frozen=True)
class VadSettings:
    """Effective turn-detection values (nulls replaced by the type's defaults)."""

    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int
    min_speech_ms: int
    create_response: bool
    interrupt_response: bool


def turn_detection_defaults(vad_type: str) -> dict[str, Any]:
    """What ``session.updated`` echoes for a ``vad_type`` turn_detection with nothing else set."""
    if vad_type == "server_vad":
        return {
            "type": vad_type,
            "threshold": 0.5,
            "prefix_padding_ms": 400,
            "silence_duration_ms": 500,
            "create_response": True,
            "interrupt_response": True,
            "idle_timeout_ms": None,
            "speech_duration_ms": None,
            "end_of_utterance_detection": None,
            "auto_truncate": False,
            "appended_text_after_truncation": None,
        }
    return {
        "type": vad_type,
        "threshold": None,
        "prefix_padding_ms": None,
        "silence_duration_ms": None,
        "speech_duration_ms": None,
        "create_response": True,
        "interrupt_response": True,
        "remove_filler_words": False,
        "end_of_utterance_detection": None,
        "auto_truncate": False,
        "idle_timeout_ms": None,
        "appended_text_after_truncation": None,
    }


def vad_settings(turn_detection: dict[str, Any] | None) -> VadSettings | None:
    """Effective VAD values for a session's ``turn_detection`` (None = manual turns)."""
    if not turn_detection:
        return None
    semantic = turn_detection["type"] != "server_vad"

    def pick(key: str, default: Any) -> Any:
        value = turn_detection.get(key)
        return default if value is None else value

    return VadSettings(
        threshold=float(pick("threshold", 0.5)),
        prefix_padding_ms=int(pick("prefix_padding_ms", 420 if semantic else 300)),
        silence_duration_ms=int(pick("silence_duration_ms", 500)),
        min_speech_ms=int(pick("speech_duration_ms", 80 if semantic else 100)),
        create_response=bool(pick("create_response", True)),
        interrupt_response=bool(pick("interrupt_response", True)),
    )


def default_session(
    session_id: str, model: str, agent: dict[str, Any] | None, ttl_s: int = 3600
) -> dict[str, Any]:
    """The ``session`` of ``session.created`` (trace defaults; agents transcribe by default)."""
    transcription = None
    if agent is not None:
        transcription = {
            "model": "azure-speech",
            "language": None,
            "prompt": None,
            "custom_speech": None,
            "phrase_list": None,
        }
    turn_detection = turn_detection_defaults("server_vad")
    turn_detection.update(prefix_padding_ms=300, silence_duration_ms=200)
    session: dict[str, Any] = {
        "id": session_id,
        "model": model,
        "modalities": ["text", "audio"],
        "instructions": LOCAL_INSTRUCTIONS,
        "voice": {"name": "alloy", "type": "openai"},
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "input_audio_transcription": transcription,
        "input_audio_noise_reduction": None,
        "turn_detection": turn_detection,
        "tools": [],
        "tool_choice": "auto",
        "temperature": None,
        "max_response_output_tokens": "inf",
        "expires_at": int(time.time()) + ttl_s,
        "object": "realtime.session",
        "input_audio_sampling_rate": 24000,
        "animation": None,
        "input_audio_echo_cancellation": None,
        "avatar": None,
        "output_audio_timestamp_types": None,
        "truncation_strategy": None,
        "include": None,
    }
    if agent is not None:
        session["agent"] = agent
    return session


def _check_keys(obj: dict[str, Any], allowed: frozenset[str], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            raise SessionUpdateRejected(
                "unknown_parameter", f"Unknown parameter: '{prefix}.{key}'.", f"{prefix}.{key}"
            )


def _invalid(param: str, value: Any, allowed: Any) -> SessionUpdateRejected:
    return SessionUpdateRejected(
        "invalid_value",
        f"Invalid value: {value!r}. "
        f"Supported values are: {', '.join(repr(v) for v in sorted(allowed))}.",
        param,
    )


def _merged_turn_detection(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SessionUpdateRejected(
            "invalid_type",
            "Invalid type for 'session.turn_detection': expected an object.",
            "session.turn_detection",
        )
    _check_keys(value, TURN_DETECTION_FIELDS, "session.turn_detection")
    vad_type = value.get("type", "server_vad")
    if vad_type not in VAD_TYPES:
        raise _invalid("session.turn_detection.type", vad_type, VAD_TYPES)
    threshold = value.get("threshold")
    if threshold is not None and not (
        isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0
    ):
        raise SessionUpdateRejected(
            "decimal_out_of_range",
            "Invalid 'session.turn_detection.threshold': expected a number between 0 and 1.",
            "session.turn_detection.threshold",
        )
    merged = turn_detection_defaults(vad_type)
    merged.update(value)
    return merged


def _merged_transcription(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SessionUpdateRejected(
            "invalid_type",
            "Invalid type for 'session.input_audio_transcription'.",
            "session.input_audio_transcription",
        )
    _check_keys(value, TRANSCRIPTION_FIELDS, "session.input_audio_transcription")
    merged: dict[str, Any] = {
        key: None for key in ("model", "language", "prompt", "custom_speech", "phrase_list")
    }
    merged.update(value)
    return merged


def apply_update(
    current: dict[str, Any], update: Any, agent_mode: bool
) -> tuple[dict[str, Any], list[str]]:
    """Validate ``update`` and merge it into a copy of ``current``.

    Returns (new effective session, names of fields ignored with a warning). Raises
    :class:`SessionUpdateRejected` with the real error code when the update is rejected as a whole.
    """
    if not isinstance(update, dict):
        raise SessionUpdateRejected(
            "invalid_type", "Invalid type for 'session': expected an object.", "session"
        )
    _check_keys(update, SESSION_FIELDS, "session")
    new = copy.deepcopy(current)
    ignored: list[str] = []
    for key, value in update.items():
        if key in _READ_ONLY:
            continue
        if key == "instructions" and agent_mode:
            ignored.append(key)
            continue
        if key == "turn_detection":
            new[key] = _merged_turn_detection(value)
        elif key == "input_audio_transcription":
            new[key] = _merged_transcription(value)
        elif key == "modalities":
            if not isinstance(value, list) or not value or not set(value) <= MODALITIES:
                raise _invalid("session.modalities", value, MODALITIES)
            new[key] = list(value)
        elif key == "input_audio_format":
            if value not in INPUT_FORMATS:
                raise _invalid("session.input_audio_format", value, INPUT_FORMATS)
            new[key] = value
        elif key == "output_audio_format":
            if value not in OUTPUT_FORMATS:
                raise _invalid("session.output_audio_format", value, OUTPUT_FORMATS)
            new[key] = value
        elif key == "input_audio_sampling_rate":
            if value not in (8000, 16000, 24000, 44100, 48000):
                raise _invalid(
                    "session.input_audio_sampling_rate", value, (8000, 16000, 24000, 44100, 48000)
                )
            new[key] = value
        elif key == "voice" and isinstance(value, str):
            new[key] = {"name": value, "type": "openai"}
        else:
            new[key] = value
    _check_echo_cancellation(new)
    if "input_audio_format" in update and "input_audio_sampling_rate" not in update:
        rate = INPUT_FORMATS[new["input_audio_format"]]
        new["input_audio_sampling_rate"] = rate or 24000
    return new, ignored


def input_rate(session: dict[str, Any]) -> int:
    """Sample rate of the client's input audio."""
    return INPUT_FORMATS.get(session["input_audio_format"]) or int(
        session.get("input_audio_sampling_rate") or 24000
    )


def output_rate(fmt: str | None) -> int:
    """Sample rate of an output audio format (``None`` = pcm16 24 kHz)."""
    return OUTPUT_FORMATS.get(fmt or "pcm16", 24000)


def input_channels(session: dict[str, Any]) -> int:
    """Channels of the client's input audio: 2 with a client echo reference, else 1."""
    echo = session.get("input_audio_echo_cancellation") or {}
    return 2 if echo.get("reference_source") == "client" and echo.get("channels") == 2 else 1


def echo_reference(session: dict[str, Any]) -> str | None:
    """Where the echo reference comes from: "client" (stereo input), "server" (server echo
    cancellation without one: the server's own record of what it sent) or None (off)."""
    echo = session.get("input_audio_echo_cancellation") or {}
    if input_channels(session) == 2:
        return "client"
    return "server" if echo.get("type") == "server_echo_cancellation" else None


def _check_echo_cancellation(session: dict[str, Any]) -> None:
    """The real service's rules: 2 channels only with a client reference, and the reverse."""
    echo = session.get("input_audio_echo_cancellation")
    if echo is None:
        return
    param = "session.input_audio_echo_cancellation"
    if not isinstance(echo, dict):
        message = f"Invalid type for '{param}': expected an object."
        raise SessionUpdateRejected("invalid_type", message, param)
    client, channels = echo.get("reference_source") == "client", echo.get("channels")
    if channels == 2 and not client:
        message = "Two input channels need reference_source 'client'."
        code = "invalid_ec_channels_requires_client"
        raise SessionUpdateRejected(code, message, f"{param}.channels")
    if client and (channels != 2 or session.get("input_audio_format") != "pcm16"):
        message = "A client echo reference needs channels 2 and pcm16 input."
        raise SessionUpdateRejected("invalid_ec_reference_channels", message, f"{param}.channels")
