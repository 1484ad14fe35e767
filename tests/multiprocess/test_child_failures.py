"""A processor in its own process that crashes, is killed, hangs, cannot be built or emits a frame
that cannot cross: each ends the session with one line naming the processor and the cause
(exit 1, no traceback anywhere, nothing hangs), and no process is left behind."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.multiprocess.test_in_own_process_session import AGENT, mp_command
from tests.support.replay_server import ReplayServer
from tests.support.scenarios import barge_in_scenario
from tests.support.script_run import ScriptRun, check_no_crash, run_script


class ProcessWatch:
    """Records every descendant of the script while it runs (polled from the test)."""

    def __init__(self) -> None:
        self.seen: dict[int, psutil.Process] = {}
        self.cmdlines: dict[int, str] = {}

    async def __call__(self, proc: asyncio.subprocess.Process) -> None:
        try:
            parent = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while proc.returncode is None:
            try:
                children = parent.children(recursive=True)
            except psutil.Error:
                children = []
            for child in children:
                self.seen.setdefault(child.pid, child)
                try:  # read again each time: seen between fork and exec, it has its parent's
                    line = " ".join(child.cmdline())
                except psutil.Error:  # gone, or a zombie: keep what was read before
                    line = ""
                if line or child.pid not in self.cmdlines:
                    self.cmdlines[child.pid] = line
            await asyncio.sleep(0.05)

    def spawned(self) -> list[int]:
        """The pids of spawned children (not multiprocessing's resource tracker)."""
        return [pid for pid, cmd in self.cmdlines.items() if "spawn_main" in cmd]

    def left_behind(self, timeout: float = 5.0) -> list[str]:
        """The descendants still running after ``timeout`` s. An exited orphan stays a zombie
        until PID 1 reaps it (here PID 1 is a VM agent that does so lazily): that one is gone."""
        deadline = time.monotonic() + timeout
        while True:
            alive = []
            for pid, p in self.seen.items():
                try:
                    if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                        alive.append(f"{pid} {self.cmdlines[pid]}")
                except psutil.NoSuchProcess:
                    pass
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.05)


async def failing_run(
    tmp: Path, *command: str, during=None, timeout: float = 60
) -> tuple[ScriptRun, ProcessWatch]:
    watch = ProcessWatch()

    async def both(proc: asyncio.subprocess.Process) -> None:
        await asyncio.gather(watch(proc), *([during(proc)] if during else []))

    async with ReplayServer(barge_in_scenario()) as server:
        run = await run_script(
            server.url, tmp, *AGENT, input_s=5.0, command=command, during=both, timeout=timeout
        )
    check_no_crash(run)
    assert not watch.left_behind(), "processes left behind"
    assert watch.spawned(), "the processor never got a process of its own"
    return run, watch


def one_error_line(run: ScriptRun) -> str:
    errors = [line for line in (run.stdout + run.stderr).splitlines() if "error" in line.lower()]
    assert len(errors) == 1, run.describe()
    assert run.stderr.strip().splitlines() == errors, run.describe()
    return errors[0]


@pytest.mark.parametrize(
    ("how", "cause"),
    [
        ("exit", r"exited with code 3"),
        ("segv", r"crashed with SIGSEGV"),
    ],
)
async def test_a_crashing_child_is_one_line(tmp_path: Path, how: str, cause: str) -> None:
    run, _ = await failing_run(tmp_path, *mp_command("Misbehaving", how))
    assert run.code == 1, run.describe()
    line = one_error_line(run)
    assert re.fullmatch(rf"error: in_own_process\(Misbehaving\) \(pid \d+\) {cause}", line), line
    assert "Chat done." in run.stdout


async def test_a_killed_child_is_one_line(tmp_path: Path) -> None:
    async def kill_the_processor(proc: asyncio.subprocess.Process) -> None:
        """Once the user's first words are in the session log (the conversation is on)."""
        parent = psutil.Process(proc.pid)
        for _ in range(1200):
            kids = [c for c in parent.children() if "spawn_main" in " ".join(c.cmdline())]
            logs = (
                list((tmp_path / "logs").glob("session_*.log"))
                if (tmp_path / "logs").exists()
                else []
            )
            if kids and logs and "User Input:" in logs[0].read_text(encoding="utf-8"):
                kids[0].send_signal(signal.SIGKILL)
                return
            await asyncio.sleep(0.05)

    run, _ = await failing_run(tmp_path, *mp_command("Passthrough"), during=kill_the_processor)
    assert run.code == 1, run.describe()
    line = one_error_line(run)
    assert re.fullmatch(
        r"error: in_own_process\(Passthrough\) \(pid \d+\) was killed by SIGKILL", line
    ), line


async def test_a_hung_child_is_one_line_and_is_killed(tmp_path: Path) -> None:
    run, _ = await failing_run(tmp_path, *mp_command("Misbehaving", "hang", hang_timeout=1.0))
    assert run.code == 1, run.describe()
    line = one_error_line(run)
    assert re.fullmatch(
        r"error: in_own_process\(Misbehaving\) \(pid \d+\) stopped responding "
        r"\(no heartbeat for 1\.\d s\): killed",
        line,
    ), line


async def test_a_frame_that_cannot_cross_is_one_line_naming_its_type(tmp_path: Path) -> None:
    run, _ = await failing_run(tmp_path, *mp_command("Misbehaving", "unpicklable"))
    assert run.code == 1, run.describe()
    line = one_error_line(run)
    assert line.startswith(
        "error: in_own_process(Misbehaving): LockedFrame cannot be sent to another process ("
    ), line


async def test_a_factory_that_raises_is_one_line_before_the_session(tmp_path: Path) -> None:
    run, _ = await failing_run(tmp_path, *mp_command("failing_factory", "no-model-file"))
    assert run.code == 1, run.describe()
    line = one_error_line(run)
    assert re.fullmatch(
        r"error: in_own_process\(failing_factory\) could not start: ValueError: no-model-file "
        r"\(.*mp_processors\.py:\d+\)",
        line,
    ), line
