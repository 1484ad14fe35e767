"""The live view's model: states from the frames, levels, and where a cut answer stopped."""

from __future__ import annotations

import numpy as np
from pipecat.frames.frames import TTSAudioRawFrame

from processors.console_state import SILENCE_DB, ConsoleState, Line, dbfs
from processors.frames import AgentTranscriptFrame, ConnectionLostFrame, VoiceLiveEventFrame

TEXT = "Once upon a time, a small robot lived in a lighthouse."


def received(kind: str, **fields: object) -> VoiceLiveEventFrame:
    return VoiceLiveEventFrame(event={"type": kind, **fields}, direction="received")


def test_levels_in_dbfs() -> None:
    full = np.full(480, 32767, dtype=np.int16).tobytes()
    assert abs(dbfs([full]) - 0.0) < 0.01
    assert abs(dbfs([np.full(480, 3277, dtype=np.int16).tobytes()]) + 20.0) < 0.1
    assert dbfs([]) == SILENCE_DB and dbfs([bytes(960)]) == SILENCE_DB


def test_states_follow_the_conversation() -> None:
    s = ConsoleState()
    assert s.state == "connecting"
    s.event(received("session.updated", session={"id": "sess_1", "expires_at": 4_000_000_000}))
    assert s.state == "listening" and s.seconds_left() > 0
    s.set_phase("user speaking")
    s.set_phase("thinking")
    s.event(received("response.done", response={"id": "r1", "status": "completed"}))
    assert s.state == "listening"
    lines: list[Line] = []
    s.on_line = lines.append
    s.connection_lost(ConnectionLostFrame(reason="dropped"))
    assert s.state == "reconnecting" and lines[-1].who == "note"
    s.event(received("session.updated", session={"id": "sess_2"}))
    assert s.state == "listening"


def test_a_cut_answer_is_cut_after_the_last_word_heard() -> None:
    s = ConsoleState()
    lines: list[Line] = []
    s.on_line = lines.append
    for word, at in (
        ("Once", 0),
        ("upon", 300),
        ("a", 600),
        ("time,", 700),
        ("a", 1100),
        ("small", 1200),
    ):
        s.event(
            received(
                "response.audio_timestamp.delta", item_id="item_1", text=word, audio_offset_ms=at
            )
        )
    s.event(
        VoiceLiveEventFrame(
            event={"type": "conversation.item.truncate", "item_id": "item_1", "audio_end_ms": 1000},
            direction="sent",
        )
    )
    s.agent_words(
        AgentTranscriptFrame(text=TEXT, response_id="r1", item_id="item_1", interrupted=True)
    )
    (line,) = lines
    assert TEXT[: line.cut_at] == "Once upon a time," and line.heard_ms == 1000


def test_without_word_timings_the_cut_follows_the_share_of_audio_heard() -> None:
    s = ConsoleState()
    lines: list[Line] = []
    s.on_line = lines.append
    s.audio(TTSAudioRawFrame(bytes(2 * 24000 * 4), 24000, 1, context_id="item_2"))  # 4 s
    s.event(
        VoiceLiveEventFrame(
            event={"type": "conversation.item.truncate", "item_id": "item_2", "audio_end_ms": 2000},
            direction="sent",
        )
    )
    s.agent_words(
        AgentTranscriptFrame(text=TEXT, response_id="r2", item_id="item_2", interrupted=True)
    )
    cut = lines[0].cut_at
    assert cut is not None and TEXT[cut] == " " and abs(cut - len(TEXT) / 2) < 8
