"""``python -m localserver`` serves a whole session to the default script, barge-in included."""

from __future__ import annotations

import json
import re
import wave
from asyncio.subprocess import DEVNULL
from pathlib import Path

import numpy as np

from localserver.speak import speak_to_wav
from tests.support.audio import read_wav, write_wav
from tests.support.script_run import io_flags, run_to_end, script


def spoken_input(tmp: Path) -> Path:
    """'Tell me a story.', three seconds of silence, then 'Stop.' (the barge-in)."""
    parts = []
    for text, name, pad in (("Tell me a story.", "story.wav", 500), ("Stop.", "stop.wav", 800)):
        speak_to_wav(text, tmp / name, pad_ms=pad)
        with wave.open(str(tmp / name), "rb") as w:
            parts.append(w.readframes(w.getnframes()))
    pcm = parts[0] + bytes(2 * 24000 * 3) + parts[1] + bytes(2 * 24000)
    return write_wav(tmp / "in.wav", pcm)


async def test_default_script_against_python_m_localserver(
    tmp_path: Path, script_env: dict[str, str]
) -> None:
    argv = ["--host", "127.0.0.1", "--port", "0"]
    async with script("-m", "localserver", *argv, env=script_env, stderr=DEVNULL) as server:
        _, line = await server.wait_for("", timeout=30)  # its first line, whatever it is
        url = re.search(r"(http://127\.0\.0\.1:\d+)", line).group(1)
        in_wav = spoken_input(tmp_path)
        client = await run_to_end(
            "-m",
            "pipelines.agent",
            "--endpoint",
            url,
            "--api-key",
            "local",
            "--agent-id",
            "asst_local",
            "--project-name",
            "proj",
            "--agent-access-token",
            "tok-local",
            *io_flags(tmp_path, in_wav),
            cwd=tmp_path,
            env=script_env,
            timeout=90,
        )
    assert client.code == 0, client.stderr
    (log,) = (tmp_path / "logs").glob("session_*.log")
    lines = log.read_text(encoding="utf-8").splitlines()
    said = [x for x in lines if x.startswith(("User Input:", "Agent Audio Response:"))]
    assert said[0] == "User Input: Tell me a story."
    assert said[1].startswith("Agent Audio Response: ")
    assert said[2] == "User Input: Stop."
    assert said[3] == "Agent Audio Response: Okay, I will stop."
    assert any(x.startswith("SessionID: sess_") for x in lines)

    # The story was cut at the barge-in: the speaker went quiet well before the story's end.
    wav, rate = read_wav(tmp_path / "out.wav")
    loud = np.flatnonzero(np.abs(wav.astype(np.int32)) > 300)
    assert len(loud), "no agent audio recorded"
    story_start = loud[0] / rate
    events = [
        json.loads(x)
        for x in next((tmp_path / "logs").glob("events_*.jsonl"))
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    truncates = [e["event"] for e in events if e["event"]["type"] == "conversation.item.truncate"]
    assert len(truncates) == 1, "the interrupted story was not truncated"
    heard_ms = truncates[0]["audio_end_ms"]
    assert 500 < heard_ms < 8000
    # No story audio after the cut: silence follows it, then only the answer to "Stop." (1.3 s,
    # where the rest of the story is over 5 s). The silence is checked for 150 ms only: the pause
    # before the answer is the barge-in's reaction time (~0.6 s here) and shrinks when the client
    # cuts late on a loaded machine; how long the rest is tells a stopped story from one that
    # went on through one of its own pauses (up to 0.32 s).
    cut = int((story_start + heard_ms / 1000 + 0.05) * rate)
    assert np.max(np.abs(wav[cut : cut + int(0.15 * rate)].astype(np.int32))) < 300, (
        "story audio kept playing after the barge-in"
    )
    after_s = np.count_nonzero(loud >= cut) / rate
    assert after_s < 2.0, f"{after_s:.1f} s of audio after the barge-in: the story went on"
