"""A processor in its own process inside the default pipeline (WAV transports, the replay server
playing a turn, a barge-in and another turn): the session is the same as with the processor in
the pipeline process, the processor really runs elsewhere, and interruptions cross to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psutil

from tests.support.audio import RATE, contains_any_chunk, find, matching_run, read_wav
from tests.support.replay_server import ReplayServer
from tests.support.scenarios import BargeInScenario, barge_in_scenario
from tests.support.script_run import ScriptRun, check_no_crash, run_script

AGENT = ("--api-key", "K-mp-key-5e8d2a", "--model", "gpt-realtime")


def mp_command(
    factory: str, *args: str, own: bool = True, hang_timeout: float = 5.0
) -> tuple[str, ...]:
    flags = ("--own-process", "--hang-timeout", str(hang_timeout)) if own else ()
    return ("-m", "tests.support.mp_agent", *flags, factory, *args, "--")


async def converse(
    tmp: Path, scenario: BargeInScenario, command: tuple[str, ...]
) -> tuple[ScriptRun, object]:
    async with ReplayServer(scenario) as server:
        run = await run_script(server.url, tmp, *AGENT, input_s=5.0, command=command, timeout=60)
    check_no_crash(run)
    assert run.code == 0, run.describe()
    (conn,) = server.connections
    assert "script_done" in conn.marks, "the client ended before the conversation was over"
    return run, conn


def heard(run: ScriptRun, scenario: BargeInScenario, marks: dict[str, float]) -> float:
    """Check the speaker's timeline as the barge-in test does; the ms of turn 2 heard."""
    wav, rate = read_wav(run.out_wav)
    assert rate == RATE
    for turn in (scenario.turn1, scenario.turn3):
        start = find(wav, turn.audio)
        assert start >= 0 and matching_run(wav, start, turn.audio) == len(turn.audio) // 2
    start2 = find(wav, scenario.turn2.audio)
    played2 = matching_run(wav, start2, scenario.turn2.audio)
    assert np.all(wav[start2 + played2 : start2 + played2 + RATE // 10] == 0), (
        "audio follows the cut"
    )
    assert not contains_any_chunk(wav, scenario.late_audio), (
        "a late delta of the interrupted answer was played"
    )
    heard_ms = played2 * 1000 / RATE
    expected_ms = (marks["barge_in"] - marks["turn2_first_delta"]) * 1000
    # Not heard past the barge-in (a late interruption would show here). Less than expected only
    # means the output started late: that happens on this loaded 2-core box with or without a
    # process boundary (the barge-in test asks for +-20 ms on a quiet machine).
    assert heard_ms <= expected_ms + 30, (
        f"heard {heard_ms:.1f} ms, barge-in came at {expected_ms:.1f} ms"
    )
    return heard_ms


async def test_a_processor_in_its_own_process_changes_nothing_but_its_pid(tmp_path: Path) -> None:
    scenario = barge_in_scenario()
    runs = {}
    for own in (False, True):
        tmp = tmp_path / ("own" if own else "inline")
        record = tmp / "pid.txt"
        tmp.mkdir()
        command = mp_command("PidRecorder", str(record), own=own)
        run, conn = await converse(tmp, scenario, command)
        heard(run, scenario, conn.marks)
        lines = record.read_text(encoding="utf-8").splitlines()
        runs[own] = (run, lines, conn)
    inline, own = runs[False], runs[True]
    # The session log is the same, line for line.
    assert own[0].session_log() == inline[0].session_log()
    # The processor ran in a child process of the pipeline process, not in it.
    (inline_pid,) = [int(x.split("=")[1]) for x in inline[1] if x.startswith("pid=")]
    (own_pid,) = [int(x.split("=")[1]) for x in own[1] if x.startswith("pid=")]
    script_pids = {inline_pid}
    assert own_pid not in script_pids and own_pid != inline_pid
    # The barge-in's InterruptionFrame crossed into the child, after the agent's audio of turn 2.
    interruptions = [x for x in own[1] if x.startswith("interruption")]
    assert (
        interruptions
        and interruptions
        == [x for x in inline[1] if x.startswith("interruption")][: len(interruptions)]
    )
    # Its log lines reached the technical log of the pipeline process.
    assert f"PidRecorder started in pid {own_pid}" in own[0].tech_log()
    assert not psutil.pid_exists(own_pid), "the child outlived the session"
