"""The operator's console as a person uses it: the default script in a real terminal (tmux) on the
PulseAudio microphone and speaker, against the embedded server (``--local``)."""

from __future__ import annotations

import json
import re
import sys
import wave
from pathlib import Path

import numpy as np

from localserver.speak import speak_to_wav
from tests.support.tmux import Terminal

RATE = 24000
QUESTION, ANSWER = "What is the capital of France?", "The capital of France is Paris."
TYPED, TYPED_ANSWER = "Hello, how are you?", "Hello! I am fine, thank you."
GREETING = "Hello! How can I help you?"
METER = re.compile(r"mic [▮▯]+\s+(-?\d+|-∞)dB")


def script(*argv: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.agent", "--local", "--log-dir", "logs", *argv]


async def test_live_view_spoken_and_typed_turns_greeting_record_and_report(
    pulse, speaker, script_env: dict[str, str], tmp_path: Path
) -> None:
    speak_to_wav(QUESTION, tmp_path / "question.wav", pad_ms=300)
    term = Terminal(
        script("--greeting", "--record", "conv.wav"), cwd=tmp_path, env={**script_env, **pulse.env}
    )
    try:
        # --greeting: the agent speaks first, before anyone said anything.
        await term.wait_for(rf"Agent: {re.escape(GREETING)}", 60)
        assert "You:" not in term.screen(history=True).split(GREETING)[0]
        await term.wait_for(r"● listening", 20)
        assert "connecting" not in term.screen().splitlines()[-1]

        # Speech into the microphone: the meter moves, the state follows, the answer is shown.
        player = pulse.play_into_mic(tmp_path / "question.wav")
        levels, states = set(), set()
        while player.poll() is None:
            status = term.screen().splitlines()[-1]
            if m := METER.search(status):
                levels.add(m.group(1))
            states.update(s for s in ("user speaking", "thinking", "agent speaking") if s in status)
            await term.wait_for(r"●", 1)  # one screen read per loop, bounded
        await term.wait_for(rf"Agent: {re.escape(ANSWER)}", 30)
        assert len(levels - {"-∞"}) >= 3 and max(int(v) for v in levels - {"-∞"}) > -40, levels
        assert "user speaking" in states, states
        screen = term.screen(history=True)
        assert f"You: {QUESTION}" in screen
        latency = await term.wait_for(r"latency (\d+) ms", 5)
        assert 0 < int(latency.group(1)) < 5000

        # A typed question is answered.
        await term.wait_for(r"● listening", 20)
        term.type(TYPED)
        await term.wait_for(rf"Agent: {re.escape(TYPED_ANSWER)}", 30)
        assert f"You (typed): {TYPED}" in term.screen(history=True)
        await term.wait_for(r"● listening", 20)
        term.type("q")
        assert await term.exit_code() == 0
        summary = (
            await term.wait_for(r"Session: 3 turns \(1 spoken, 1 typed\).*", 5, history=True)
        ).group(0)
        assert "0 reconnects" in summary
    finally:
        term.close()

    logs = tmp_path / "logs"
    log = next(logs.glob("session_*.log")).read_text(encoding="utf-8").splitlines()
    said = [x for x in log if x.startswith(("User Input:", "Agent Audio Response:"))]
    assert said == [
        f"Agent Audio Response: {GREETING}",
        f"User Input: {QUESTION}",
        f"Agent Audio Response: {ANSWER}",
        f"User Input: {TYPED}",
        f"Agent Audio Response: {TYPED_ANSWER}",
    ]
    events = [
        json.loads(x)["event"]
        for x in next(logs.glob("events_*.jsonl")).read_text(encoding="utf-8").splitlines()
    ]
    assert [e["typed"] for e in events if e["type"] == "client.user_input"] == [False, True]

    report = json.loads(next(logs.glob("report_*.json")).read_text(encoding="utf-8"))
    turns = report["turns"]
    assert [(t["input"], t["user_text"], t["agent_text"]) for t in turns] == [
        ("none", None, GREETING),
        ("spoken", QUESTION, ANSWER),
        ("typed", TYPED, TYPED_ANSWER),
    ]
    assert all(0 < t["first_audio_latency_ms"] < 5000 for t in turns[1:])

    # The recording: left the question, right the greeting, then the answer after the question.
    with wave.open(str(tmp_path / "conv.wav"), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    left, right = (np.flatnonzero(np.abs(data[:, c].astype(np.int32)) > 300) / RATE for c in (0, 1))
    assert left.size and right.size
    q_start, q_end = left[0], left[-1]
    with wave.open(str(tmp_path / "question.wav"), "rb") as w:
        said = np.flatnonzero(
            np.abs(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int32)) > 300
        )
    # whole, give or take what a loaded PulseAudio stretches (the feed can underrun)
    assert abs((q_end - q_start) - (said[-1] - said[0]) / RATE) < 0.15, (
        "the question is not whole on the left"
    )
    greeting = right[right < q_start]
    assert greeting.size, "the greeting is not on the right channel before the question"
    answers = right[right > q_end]
    assert answers.size, "no answer on the right channel after the question"
    first_answer = answers[0] - q_end
    assert 0 < first_answer < 3.0, first_answer
    speech_ended = turns[1]["speech_ended_s"]
    assert speech_ended is not None


async def test_plain_flag_and_a_pipe_give_plain_lines(
    pulse, script_env: dict[str, str], tmp_path: Path
) -> None:
    term = Terminal(script("--plain"), cwd=tmp_path, env={**script_env, **pulse.env})
    try:
        await term.wait_for(r"Session updated: sess_", 60)
        term.type(TYPED)
        await term.wait_for(rf"Agent Audio Response: {re.escape(TYPED_ANSWER)}", 30)
        term.type("q")
        assert await term.exit_code() == 0
        screen = term.screen(history=True)
    finally:
        term.close()
    assert "User Input: Hello, how are you?" in screen
    assert not METER.search(screen) and "●" not in screen


async def test_a_narrow_and_resized_terminal_keeps_one_status_line(
    pulse, script_env: dict[str, str], tmp_path: Path
) -> None:
    term = Terminal(script(), cwd=tmp_path, env={**script_env, **pulse.env}, width=100, height=20)
    try:
        await term.wait_for(r"● listening", 60)
        for n, width in enumerate((60, 36, 100, 44), 1):
            term.resize(width, 20)
            # Until the view has redrawn for the new width (the old, wider line also says
            # "listening"): its last line is the status line, and it fits.
            await term.wait_for(rf"\n● listening[^\n]{{0,{width - len('● listening')}}}\Z", 10)
            term.type(TYPED)
            answers = "".join(rf"Agent: {re.escape(TYPED_ANSWER)}[\s\S]*" for _ in range(n))
            await term.wait_for(answers + r"● listening", 30, history=True)
            visible = term.screen()
            status = [line for line in visible.splitlines() if "● " in line or "│ mic" in line]
            assert len(status) == 1, f"status lines left behind at {width} columns:\n{visible}"
            assert (
                visible.splitlines()[-1].startswith("● listening")
                and len(visible.splitlines()[-1]) <= width
            )
            assert visible.count(TYPED_ANSWER) >= 1
        assert (
            term.screen(history=True).count(f"Agent: {TYPED_ANSWER}") == 4
            and "ALSA lib" not in visible
        )
        term.type("q")
        assert await term.exit_code() == 0
    finally:
        term.close()
