"""The session report: turns, latencies, barge-ins and usage, matching the session log."""

from __future__ import annotations

import json
import wave
from pathlib import Path

from localserver.speak import speak_to_wav
from processors.frames import AgentWords
from processors.session_report import report_path, save_report
from tests.support.audio import write_wav
from tests.support.local_session import local_session


def spoken(tmp: Path) -> Path:
    """Silence while the greeting plays, 'Tell me a story.', three seconds of silence, then 'Stop.'
    (a barge-in), then silence."""
    parts = []
    for text, name in (("Tell me a story.", "story.wav"), ("Stop.", "stop.wav")):
        speak_to_wav(text, tmp / name, pad_ms=500)
        with wave.open(str(tmp / name), "rb") as w:
            parts.append(w.readframes(w.getnframes()))
    return write_wav(
        tmp / "in.wav",
        bytes(2 * 24000 * 4) + parts[0] + bytes(2 * 24000 * 3) + parts[1] + bytes(2 * 24000 * 30),
    )


async def test_report_turns_match_the_session_log(tmp_path: Path) -> None:
    async with local_session(tmp_path, ["--greeting"], input_wav=spoken(tmp_path)) as s:
        await s.watch.wait_for(
            lambda fs: any(isinstance(f, AgentWords) and "stop" in f.text for f in fs), 60
        )
        s.app.say("What is the capital of France?")
        await s.watch.wait_for(
            lambda fs: any(isinstance(f, AgentWords) and "Paris" in f.text for f in fs), 30
        )
    path = report_path(s.app.session_log.session_log_path)
    line = await save_report(s.app.report, path)
    report = json.loads(path.read_text(encoding="utf-8"))
    assert line.startswith("Session: 4 turns (2 spoken, 1 typed)") and "1 barge-in " in line, line

    log = s.session_log.splitlines()
    users = [x.removeprefix("User Input: ") for x in log if x.startswith("User Input: ")]
    agents = [
        x.removeprefix("Agent Audio Response: ")
        for x in log
        if x.startswith("Agent Audio Response: ")
    ]
    turns = report["turns"]
    assert [t["input"] for t in turns] == ["none", "spoken", "spoken", "typed"]
    assert [t["user_text"] for t in turns if t["user_text"]] == users
    assert [t["agent_text"] for t in turns] == agents
    assert report["session_ids"] == [
        x.removeprefix("SessionID: ") for x in log if x.startswith("SessionID: ")
    ]
    assert report["agent"] == "local-agent" and report["model"] is None

    greeting, story, stop, typed = turns
    assert (
        not greeting["interrupted"] and greeting["heard_ms"] == greeting["answer_duration_ms"] > 500
    )
    assert story["interrupted"] and 0 < story["heard_ms"] < story["answer_duration_ms"]
    assert (
        story["speech_started_s"]
        < story["speech_ended_s"]
        < stop["speech_started_s"]
        < stop["speech_ended_s"]
    )
    events = [
        json.loads(x)["event"] for x in s.events_path.read_text(encoding="utf-8").splitlines()
    ]
    (truncate,) = [e for e in events if e["type"] == "conversation.item.truncate"]
    assert story["heard_ms"] == truncate["audio_end_ms"]
    for turn in (story, stop, typed):
        assert 0 < turn["first_audio_latency_ms"] < 5000, turn
    assert report["summary"]["latency_p50_ms"] > 0 and report["summary"]["reconnects"] == 0
    done = [e for e in events if e["type"] == "response.done"]
    assert report["usage"]["total_tokens"] == sum(
        e["response"]["usage"]["total_tokens"] for e in done
    )
    assert (path.stat().st_mode & 0o777) == 0o600
