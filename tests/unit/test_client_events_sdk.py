"""Every client event this client builds validates against the official azure-ai-voicelive
models."""

from __future__ import annotations

import pytest

from processors.voicelive import wire as ev
from processors.voicelive.session_config import (
    EchoCancellation,
    EndOfUtteranceDetection,
    InputTranscription,
    SessionConfig,
    TurnDetection,
    Voice,
    quickstart_session,
)
from tests.support.sdk_check import validate_event

SESSIONS = {
    "quickstart": quickstart_session(),
    "model": SessionConfig(
        instructions="Be brief.",
        voice="alloy",
        input_transcription=InputTranscription(model="whisper-1"),
        turn_detection=TurnDetection(
            type="server_vad", threshold=0.6, prefix_padding_ms=300, silence_duration_ms=500
        ),
    ),
    "semantic": SessionConfig(
        turn_detection=TurnDetection(
            type="azure_semantic_vad_multilingual",
            languages=["en", "fr"],
            end_of_utterance_detection=EndOfUtteranceDetection(
                model="semantic_detection_v1_multilingual",
                threshold_level="medium",
                timeout_ms=1000,
            ),
            remove_filler_words=True,
            interrupt_response=True,
            auto_truncate=True,
        )
    ),
    "manual": SessionConfig(
        turn_detection=None,
        manual_turns=True,
        voice=Voice(name="en-US-Ava:DragonHDLatestNeural", rate="1.1"),
        echo_cancellation=EchoCancellation(reference_source="server"),
        noise_reduction="near_field",
        input_sample_rate=16000,
    ),
    "azure_speech": SessionConfig(
        input_transcription=InputTranscription(
            model="azure-speech", language="en-US", phrase_list=["Contoso"]
        ),
        word_timestamps=True,
        voice=Voice(name="en-US-AvaNeural"),
        max_response_output_tokens=200,
        temperature=0.8,
    ),
}


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_session_update_validates(name: str) -> None:
    session = SESSIONS[name]
    session.validate()
    validate_event(ev.session_update(session.to_wire()), "client")


@pytest.mark.parametrize(
    "event",
    [
        ev.audio_append(b"\x01\x00" * 960),
        ev.truncate("item_1", 1234),
        ev.response_create(),
        ev.response_cancel(),
        ev.response_cancel("resp_1"),
        ev.user_text_item("Bonjour — 日本語"),
        ev.assistant_text_item("Hello."),
        ev.function_output_item("call_1", '{"ok": true}'),
    ],
    ids=lambda e: (
        e["type"]
        + ("/" + e["item"]["type"] + "/" + e["item"].get("role", "") if "item" in e else "")
    ),
)
def test_client_event_validates(event: dict) -> None:
    validate_event(event, "client")
