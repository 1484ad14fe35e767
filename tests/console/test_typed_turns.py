"""Typed user turns: a line typed (or an ``InputTextRawFrame`` from Python) is answered, logged
as ``User Input:`` and marked as typed in the JSONL."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from processors.frames import AgentWords
from tests.support.audio import write_wav
from tests.support.local_session import local_session

QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."


def _answered(frames: list) -> bool:
    return any(isinstance(f, AgentWords) and f.text == ANSWER for f in frames)


async def test_input_text_frame_is_answered_and_logged_as_typed(tmp_path: Path) -> None:
    async with local_session(tmp_path) as s:
        s.app.say(QUESTION)
        await s.watch.wait_for(_answered)
    log = s.session_log.splitlines()
    said = [x for x in log if x.startswith(("User Input:", "Agent Audio Response:"))]
    assert said == [f"User Input: {QUESTION}", f"Agent Audio Response: {ANSWER}"]
    records = [json.loads(x) for x in s.events_path.read_text(encoding="utf-8").splitlines()]
    inputs = [r["event"] for r in records if r["event"]["type"] == "client.user_input"]
    assert inputs == [{"type": "client.user_input", "text": QUESTION, "typed": True}]
    sent = [
        r["event"]
        for r in records
        if r["direction"] == "sent" and r["event"]["type"] == "conversation.item.create"
    ]
    assert sent[0]["item"]["content"][0] == {"type": "input_text", "text": QUESTION}


async def test_lines_typed_into_the_script_are_user_turns(
    tmp_path: Path, script_env: dict[str, str]
) -> None:
    """The script reads its standard input: a line that is not q is said to the agent. Its
    stdout is a pipe: plain lines, no live view, without --plain."""
    silence = write_wav(tmp_path / "silence.wav", bytes(2 * 24000 * 60))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipelines.agent",
        "--local",
        "--input-wav",
        str(silence),
        "--output-wav",
        str(tmp_path / "out.wav"),
        "--log-dir",
        str(tmp_path / "logs"),
        cwd=tmp_path,
        env=script_env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None

    async def read_until(text: str) -> None:
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"the script ended before printing {text!r}"
            if text in line:
                return

    await asyncio.wait_for(read_until("Session updated"), 60)
    proc.stdin.write(f"{QUESTION}\n".encode())
    await proc.stdin.drain()
    await asyncio.wait_for(read_until(ANSWER), 60)
    proc.stdin.write(b"q\n")
    await proc.stdin.drain()
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    log = next((tmp_path / "logs").glob("session_*.log")).read_text(encoding="utf-8")
    assert f"User Input: {QUESTION}\nAgent Audio Response: {ANSWER}\n" in log
    printed = out.decode()
    assert (
        "Session: 1 turn (0 spoken, 1 typed)" in printed
        and "●" not in printed
        and "│ mic" not in printed
    )
