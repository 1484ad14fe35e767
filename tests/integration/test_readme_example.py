"""The README's composing example, run as written: WAV transports and a custom processor."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT
from tests.support.audio import find, matching_run, read_wav, write_wav
from tests.support.replay_server import ReplayServer, ServerConn
from tests.support.scenarios import barge_in_scenario, noise
from tests.support.script_run import ScriptRun, run_to_end


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- composing-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lost its composing example"
    return match.group(1)


async def run_example(
    tmp: Path, script_env: dict[str, str], url: str, timeout: float, **settings: str
) -> ScriptRun:
    """``python example.py`` in ``tmp``, configured as the README says: by the environment."""
    env = {
        **script_env,
        "AZURE_VOICE_LIVE_ENDPOINT": url,
        "AZURE_VOICE_LIVE_API_KEY": "example-key-123",
        **settings,
    }
    return await run_to_end("example.py", cwd=tmp, env=env, timeout=timeout)


async def test_readme_composing_example_runs(script_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(readme_example(), encoding="utf-8")
    write_wav(tmp_path / "question.wav", noise(5.0, seed=7, amplitude=200))
    scenario = barge_in_scenario()
    async with ReplayServer(scenario) as server:
        run = await run_example(
            tmp_path,
            script_env,
            server.url,
            60,
            AI_FOUNDRY_AGENT_ID="asst_example",
            AI_FOUNDRY_PROJECT_NAME="proj",
            AI_FOUNDRY_AGENT_ACCESS_TOKEN="example-token-456",
        )
    assert run.code == 0, run.stderr
    assert "Pipecat" not in run.stderr, "pipecat's import banner is noise on the user's stderr"
    words = int(re.search(r"The agent said (\d+) words\.", run.stdout).group(1))
    assert words >= len(scenario.turn1.agent_text.split()) + len(scenario.turn3.agent_text.split())
    wav, _ = read_wav(tmp_path / "answer.wav")
    start = find(wav, scenario.turn1.audio)
    assert (
        start >= 0
        and matching_run(wav, start, scenario.turn1.audio) == len(scenario.turn1.audio) // 2
    )
    assert list((tmp_path / "logs").glob("session_*.log")), (
        "the default logs are kept in a composed pipeline"
    )


async def test_readme_composing_example_prints_why_the_session_failed(
    script_env: dict[str, str], tmp_path: Path
) -> None:
    """It printed only "The agent said 0 words." when the session failed."""
    (tmp_path / "example.py").write_text(readme_example(), encoding="utf-8")
    write_wav(tmp_path / "question.wav", noise(5.0, seed=7, amplitude=200))

    async def reject(conn: ServerConn) -> None:
        await conn.send({"type": "session.created", "event_id": "e1", "session": {"id": "sess_x"}})
        update = await conn.wait_for("session.update")
        error = {
            "type": "invalid_request_error",
            "code": "invalid_value",
            "message": "Unsupported voice",
            "event_id": update["event_id"],
        }
        await conn.send({"type": "error", "event_id": "e2", "error": error})

    async with ReplayServer(reject) as server:
        run = await run_example(tmp_path, script_env, server.url, 60, AZURE_VOICE_LIVE_MODEL="m")
    assert run.code == 1
    assert (
        "error: Voice Live error invalid_value: session.update rejected: Unsupported voice"
        in run.stderr
    )
    assert "The agent said 0 words." in run.stdout


def own_process_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- own-process-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lost its in_own_process example"
    return match.group(1)


async def test_readme_own_process_example_runs_its_processor_in_another_process(
    script_env: dict[str, str], tmp_path: Path
) -> None:
    """The processor's pid differs from the pipeline's; the session is the same as without it."""
    (tmp_path / "example.py").write_text(own_process_example(), encoding="utf-8")
    write_wav(tmp_path / "question.wav", noise(5.0, seed=7, amplitude=200))
    scenario = barge_in_scenario()
    async with ReplayServer(scenario) as server:
        run = await run_example(tmp_path, script_env, server.url, 90, AZURE_VOICE_LIVE_MODEL="m")
    assert run.code == 0, run.stderr
    found = re.search(
        r"peak (\d+) measured in pid (\d+); the pipeline ran in pid (\d+)", run.stdout
    )
    assert found, run.stdout
    peak, child, parent = map(int, found.groups())
    assert child != parent and parent == run.pid
    heard = memoryview(scenario.turn1.audio + scenario.turn3.audio).cast("h")
    assert max(abs(int(x)) for x in heard) <= peak <= 8000  # the scenario's noise is within +-8000
    wav, _ = read_wav(tmp_path / "answer.wav")
    for turn in (scenario.turn1, scenario.turn3):
        start = find(wav, turn.audio)
        assert start >= 0 and matching_run(wav, start, turn.audio) == len(turn.audio) // 2
    (log,) = (tmp_path / "logs").glob("session_*.log")
    said = [
        x
        for x in log.read_text(encoding="utf-8").splitlines()
        if x.startswith(("User Input:", "Agent Audio"))
    ]
    assert said[:2] == [
        f"User Input: {scenario.turn1.user_text}",
        f"Agent Audio Response: {scenario.turn1.agent_text}",
    ]


async def test_the_example_without_its_main_guard_is_one_clear_error_not_a_spawn_loop(
    script_env: dict[str, str], tmp_path: Path
) -> None:
    example = own_process_example().replace('if __name__ == "__main__":', "if True:")
    (tmp_path / "example.py").write_text(example, encoding="utf-8")
    write_wav(tmp_path / "question.wav", noise(2.0, seed=7, amplitude=200))
    async with ReplayServer(barge_in_scenario()) as server:
        run = await run_example(tmp_path, script_env, server.url, 90, AZURE_VOICE_LIVE_MODEL="m")
    assert server.connections == [], "the session started although its processor could not"
    lines = run.stderr.strip().splitlines()
    pid = re.search(r"pid (\d+)", lines[0]).group(1)
    assert lines == [
        f"error: in_own_process(Loudness) (pid {pid}) could not start: the main module starts "
        "the pipeline when it is imported, and a spawned process imports it: "
        'put that code under `if __name__ == "__main__":`'
    ], run.stderr
