"""The session report across a dropped connection: both session ids, the reconnect, every turn."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.fault_scenarios import resume_session
from tests.support.faulty_server import drop


async def test_report_counts_the_reconnect_and_keeps_every_turn(tmp_path: Path) -> None:
    out = await resume_session(lambda conversation: drop)(tmp_path)
    assert out.run.code == 0, out.run.describe()
    report = json.loads(next(out.run.log_dir.glob("report_*.json")).read_text(encoding="utf-8"))
    log = next(out.run.log_dir.glob("session_*.log")).read_text(encoding="utf-8").splitlines()

    assert report["session_ids"] == [
        x.removeprefix("SessionID: ") for x in log if x.startswith("SessionID: ")
    ]
    assert len(report["session_ids"]) == 2
    assert report["summary"]["reconnects"] == 1 and report["reconnects"][0]["reason"]
    assert report["model"] and report["agent"] is None
    users = [x.removeprefix("User Input: ") for x in log if x.startswith("User Input: ")]
    agents = [x.split(": ", 1)[1] for x in log if x.startswith("Agent Audio Response: ")]
    turns = [t for t in report["turns"] if t["input"] == "spoken"]
    assert [t["user_text"] for t in turns] == users == [t.user_text for t in out.conversation.turns]
    assert [t["agent_text"] for t in report["turns"] if t["agent_text"]] == agents
    assert "· 1 reconnect -> " in out.run.stdout, out.run.stdout
