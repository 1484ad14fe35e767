"""Typed user turns: a line typed (or an ``InputTextRawFrame`` from Python) is answered, logged
as ``User Input:`` and marked as typed in the JSONL."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from processors.frames import AgentWords
from tests.support.audio import write_wav
from tests.support.local_session import local_session
from tests.support.script_run import io_flags, script

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
    async with script(
        "-m",
        "pipelines.agent",
        "--local",
        *io_flags(tmp_path, silence),
        cwd=tmp_path,
        env=script_env,
        stdin=asyncio.subprocess.PIPE,
    ) as s:
        await s.wait_for("Session updated", timeout=60)
        await s.write(f"{QUESTION}\n".encode())
        await s.wait_for(re.escape(ANSWER), timeout=60)
        await s.write(b"q\n")
        assert await s.wait(20) == 0, s.stderr
    log = next((tmp_path / "logs").glob("session_*.log")).read_text(encoding="utf-8")
    assert f"User Input: {QUESTION}\nAgent Audio Response: {ANSWER}\n" in log
    printed = s.stdout
    assert (
        "Session: 1 turn (0 spoken, 1 typed)" in printed
        and "●" not in printed
        and "│ mic" not in printed
    )
