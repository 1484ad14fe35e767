"""The default pipeline with a processor in its own process leaves no process behind: after a
normal end, Ctrl-C (SIGINT), SIGTERM, and even a SIGKILLed pipeline process (its children notice
and exit by themselves)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from tests.multiprocess.test_child_failures import ProcessWatch
from tests.multiprocess.test_in_own_process_session import AGENT, mp_command
from tests.support.replay_server import ReplayServer
from tests.support.scenarios import barge_in_scenario
from tests.support.script_run import ScriptRun, check_no_crash, run_script, send_signal


async def session(
    tmp: Path, sig: signal.Signals | None
) -> tuple[ScriptRun, ProcessWatch, list[float]]:
    watch = ProcessWatch()
    sent: list[float] = []

    async def signal_mid_conversation(proc: asyncio.subprocess.Process) -> None:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and proc.returncode is None:
            logs = list((tmp / "logs").glob("session_*.log")) if (tmp / "logs").exists() else []
            if watch.spawned() and logs and "User Input:" in logs[0].read_text(encoding="utf-8"):
                sent.append(time.monotonic())
                send_signal(proc, sig)
                return
            await asyncio.sleep(0.05)

    async def during(proc: asyncio.subprocess.Process) -> None:
        await asyncio.gather(watch(proc), *([signal_mid_conversation(proc)] if sig else []))

    async with ReplayServer(barge_in_scenario()) as server:
        run = await run_script(
            server.url,
            tmp,
            *AGENT,
            input_s=5.0,
            command=mp_command("Passthrough"),
            during=during,
            timeout=60,
        )
    assert watch.spawned(), (
        f"the processor never got a process of its own (seen: {watch.cmdlines})\n{run.describe()}"
    )
    return run, watch, sent


async def test_nothing_left_after_a_normal_end(tmp_path: Path) -> None:
    run, watch, _ = await session(tmp_path, None)
    check_no_crash(run)
    assert run.code == 0, run.describe()
    assert not watch.left_behind()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_nothing_left_after_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    run, watch, sent = await session(tmp_path, sig)
    assert sent, f"the conversation never started\n{run.describe()}"
    check_no_crash(run)
    assert run.code in (0, 128 + sig), run.describe()
    assert run.ended - sent[0] < 3.0, f"took {run.ended - sent[0]:.2f} s to stop"
    assert not watch.left_behind()


async def test_nothing_left_after_the_pipeline_process_is_sigkilled(tmp_path: Path) -> None:
    run, watch, sent = await session(tmp_path, signal.SIGKILL)
    assert sent and run.code == -signal.SIGKILL, run.describe()
    assert not watch.left_behind(), "a process outlived the SIGKILLed pipeline process"
