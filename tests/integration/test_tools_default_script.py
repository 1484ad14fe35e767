"""The default script with ``--tools``, run as a user would: the embedded server's model hears
"What time is it?", calls ``get_time`` of ``pipelines/examples/tools.py``, and speaks an answer
built from its result; the session log and the JSONL show the call. Bad modules fail before
connecting with one line; agent mode says its tools run on the service side."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from tests.integration.cli import assert_one_line, run_unconnected
from tests.support.audio import read_wav, write_wav
from tests.support.script_run import (
    ROOT,
    ScriptRun,
    check_no_crash,
    run_to_end,
    speak,
    transcript_lines,
)

EXAMPLE = "pipelines/examples/tools.py"


async def run(tmp: Path, *argv: str, timeout: float = 90, cwd: Path = ROOT) -> ScriptRun:
    return await run_to_end("-m", "pipelines.agent", *argv, cwd=cwd, timeout=timeout, dir=tmp)


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- tools-example -->\s*```bash\n(.*?)```", text, re.S)
    assert match, "README lost its tools example"
    script = match.group(1).replace("\\\n", " ")
    return [shlex.split(line) for line in script.splitlines() if line.strip()]


@pytest.mark.e2e
async def test_what_time_is_it_is_answered_from_the_example_tool(tmp_path: Path) -> None:
    """The README's tools example, run as written from a folder holding the project's pipelines/."""
    (tmp_path / "pipelines").symlink_to(ROOT / "pipelines")
    speak_cmd, agent_cmd = readme_commands()
    assert speak_cmd[:3] == ["python", "-m", "localserver.speak"]
    assert agent_cmd[:3] == ["python", "-m", "pipelines.agent"] and "--tools" in agent_cmd
    made = await run_to_end(*speak_cmd[1:], cwd=tmp_path, timeout=30)
    assert made.code == 0, made.describe()
    result = await run(tmp_path, *agent_cmd[3:], cwd=tmp_path)
    check_no_crash(result)
    assert result.code == 0, result.describe()
    lines = result.session_log()
    said = [
        x
        for x in lines
        if x.startswith(("User Input:", "Tool Call:", "Tool Result:", "Agent Audio Response:"))
    ]
    assert said[:3] == ["User Input: What time is it?", "Tool Call: get_time({})", said[2]], said
    clock = re.fullmatch(r"Tool Result: get_time: (The clock says \d\d:\d\d:\d\d\.)", said[2])
    assert clock, said
    assert said[3:] == [f"Agent Audio Response: The tool returned: {clock[1]}"]
    assert "Tool call: get_time({})" in result.stdout  # the console shows it too

    events = result.events()
    call = next(
        e["event"] for e in events if e["event"]["type"] == "response.function_call_arguments.done"
    )
    assert call["name"] == "get_time"
    output = next(
        e["event"]
        for e in events
        if e["direction"] == "sent" and e["event"]["type"] == "conversation.item.create"
    )
    assert output["item"] == {
        "type": "function_call_output",
        "call_id": call["call_id"],
        "output": clock[1],
    }
    declared = next(e["event"] for e in events if e["event"]["type"] == "session.update")[
        "session"
    ]["tools"]
    assert [t["name"] for t in declared] == ["get_time", "get_date", "get_weather", "roll_dice"]

    pcm, rate = read_wav(tmp_path / "out.wav")
    assert (
        np.count_nonzero(np.abs(pcm.astype(np.int32)) > 300) > rate
    )  # over a second of spoken answer


STUCK_TOOLS = """
import time


def get_time() -> str:
    \"\"\"The time.\"\"\"
    time.sleep(3600)
    return "never"


def get_weather(city: str) -> dict:
    \"\"\"The weather.\"\"\"
    return {"city": city, "sky": "clear"}
"""


@pytest.mark.e2e
async def test_a_stuck_tool_gets_an_error_and_the_next_question_its_answer(tmp_path: Path) -> None:
    """A blocking tool that never returns: the model is told at --tool-timeout, the user's next
    question is answered, and the script still exits at once (the stuck thread does not hold it)."""
    (tmp_path / "stuck_tools.py").write_text(STUCK_TOOLS, encoding="utf-8")
    first = await speak("What time is it?", tmp_path / "q1.wav", pad_ms=500)
    second = await speak("What is the weather in Paris?", tmp_path / "q2.wav", pad_ms=500)
    pcm1, rate = read_wav(first)
    pcm2, _ = read_wav(second)
    both = write_wav(
        tmp_path / "in.wav", np.concatenate([pcm1, np.zeros(rate * 6, np.int16), pcm2]).tobytes()
    )
    result = await run(
        tmp_path,
        "--local",
        "--model",
        "local",
        "--tools",
        str(tmp_path / "stuck_tools.py"),
        "--tool-timeout",
        "1",
        "--input-wav",
        str(both),
        "--output-wav",
        str(tmp_path / "out.wav"),
        "--log-dir",
        str(tmp_path / "logs"),
    )
    check_no_crash(result)
    assert result.code == 0, result.describe()
    said = [
        x
        for x in result.session_log()
        if x.startswith(("User Input:", "Tool Result:", "Agent Audio Response:"))
    ]
    assert said == [
        "User Input: What time is it?",
        'Tool Result: get_time: {"error": "get_time did not answer within 1 s"}',
        "Agent Audio Response: Sorry, the tool failed: get_time did not answer within 1 s",
        "User Input: What is the weather in Paris?",
        'Tool Result: get_weather: {"city": "Paris", "sky": "clear"}',
        "Agent Audio Response: The tool returned: city Paris, sky clear",
    ], "\n".join(result.session_log()[3:]) + result.tech_log()[-4000:]
    assert transcript_lines(result.session_log())[-1].endswith("city Paris, sky clear")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (None, "--tools: 'nowhere.py' not found"),
        (
            "def when(at: 'datetime.datetime') -> str: ...\nimport datetime\n",
            "no JSON schema for datetime",
        ),
        ("import no_such_dependency_xyz\n", "No module named 'no_such_dependency_xyz'"),
        ("X = 1\n", "has no public functions"),
    ],
)
async def test_a_bad_tools_module_is_one_line_before_connecting(
    tmp_path: Path, source: str | None, expected: str
) -> None:
    spec = "nowhere.py"
    if source is not None:
        (tmp_path / "bad_tools.py").write_text(source, encoding="utf-8")
        spec = str(tmp_path / "bad_tools.py")
    code, out, err = await run_unconnected(
        tmp_path,
        [
            "--endpoint",
            "{url}",
            "--api-key",
            "k",
            "--model",
            "m",
            "--tools",
            spec,
            "--log-dir",
            str(tmp_path / "logs"),
        ],
    )
    assert_one_line(code, out, err, expected)


async def test_agent_mode_says_its_tools_run_on_the_service() -> None:
    argv = ["--local", "--agent-id", "a", "--project-name", "p", "--tools", str(ROOT / EXAMPLE)]
    parsed = await run_to_end(
        "-c",
        "import sys; from pipelines.config import parse_config; "
        "c, _ = parse_config(sys.argv[1:], env={}, dotenv_path=None); "
        "print(c.tools, c.session_config.tools)",
        *argv,
        timeout=30,
    )
    assert parsed.code == 0, parsed.stderr
    assert parsed.stdout.split() == ["None", "None"]  # nothing declared, nothing registered
    notes = [line for line in parsed.stderr.splitlines() if line.strip() and "Pipecat" not in line]
    assert notes == [
        "note: --tools is for model mode: an agent runs its own tools on the service side, "
        "so get_time, get_date, get_weather, roll_dice are not declared"
    ]
