"""``--greeting``: the agent speaks first, before the user says anything."""

from __future__ import annotations

import json
from pathlib import Path

from processors.frames import AgentWords
from tests.support.local_session import local_session

GREETING = "Hello! How can I help you?"  # the local agent's words on an empty conversation


async def test_greeting_makes_the_agent_speak_first(tmp_path: Path) -> None:
    async with local_session(tmp_path, ["--greeting"]) as s:
        await s.watch.wait_for(lambda fs: any(isinstance(f, AgentWords) for f in fs))
    said = [
        x
        for x in s.session_log.splitlines()
        if x.startswith(("User Input:", "Agent Audio Response:"))
    ]
    assert said == [f"Agent Audio Response: {GREETING}"]
    records = [json.loads(x) for x in s.events_path.read_text(encoding="utf-8").splitlines()]
    sent = [r["event"]["type"] for r in records if r["direction"] == "sent"]
    assert sent[:2] == ["session.update", "response.create"]


async def test_agent_mode_greeting_text_is_said_as_is(tmp_path: Path) -> None:
    async with local_session(tmp_path, ["--greeting", "Welcome to the lighthouse."]) as s:
        await s.watch.wait_for(lambda fs: any(isinstance(f, AgentWords) for f in fs))
    assert "Agent Audio Response: Welcome to the lighthouse." in s.session_log.splitlines()


async def test_model_mode_greeting_text_instructs_the_first_response(tmp_path: Path) -> None:
    async with local_session(
        tmp_path, ["--model", "gpt-realtime", "--greeting", "Greet the user warmly."]
    ) as s:
        await s.watch.wait_for(lambda fs: any(isinstance(f, AgentWords) for f in fs))
    records = [json.loads(x) for x in s.events_path.read_text(encoding="utf-8").splitlines()]
    creates = [r["event"] for r in records if r["event"]["type"] == "response.create"]
    assert creates[0]["response"] == {"instructions": "Greet the user warmly."}
    assert f"Agent Audio Response: {GREETING}" in s.session_log.splitlines()
