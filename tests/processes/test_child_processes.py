"""pipelines.processes with real spawned children: their logs reach the parent's sinks, a crash is
one line with its cause, no child outlives its parent (even a SIGKILLed one), Ctrl-C is the
parent's, and a main module without a ``__main__`` guard is one clear error, not a spawn loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from loguru import logger

from pipelines.processes import EXIT_CRASHED, NO_MAIN_GUARD, start_child
from tests.conftest import ROOT
from tests.support import children


@pytest.fixture
def records() -> list[dict]:
    seen: list[dict] = []
    sink = logger.add(lambda m: seen.append(m.record), level="DEBUG", format="{message}")
    yield seen
    logger.remove(sink)


async def test_child_logs_reach_the_parents_sinks_with_their_origin(records: list[dict]) -> None:
    child = start_child(children.log_then_return, 50, name="logger-child")
    assert await child.wait(30)
    await child.stop()
    assert child.exitcode == 0
    ours = [r for r in records if r["name"] == "tests.support.children"]
    assert [r["message"] for r in ours] == [f"line {i} from pid {child.pid}" for i in range(50)]
    assert all(
        r["function"] == "log_then_return" and r["extra"]["origin"] == "child-test" for r in ours
    )
    assert child.pid != os.getpid()
    (stdlib,) = [r for r in records if r["message"] == "a stdlib warning"]
    assert stdlib["name"] == "child.stdlib" and stdlib["level"].name == "WARNING"


async def test_a_raising_target_is_one_line_with_its_cause_and_nothing_lost(
    records: list[dict],
) -> None:
    child = start_child(children.log_then_raise, name="failing-child")
    assert await child.wait(30)
    await child.stop()
    assert child.exitcode == EXIT_CRASHED
    assert child.exit_cause() == f"exited with code {EXIT_CRASHED}"
    messages = [
        r["message"]
        for r in records
        if "failing-child" in r["message"] or r["message"] == "about to fail"
    ]
    assert messages[0] == "about to fail"
    (line,) = messages[1:]
    assert (
        line.startswith("failing-child crashed: ValueError: the target failed on purpose (")
        and "\n" not in line
    )


async def test_a_killed_child_is_named_and_stop_reaps_it() -> None:
    child = start_child(children.sleep_forever, name="sleeper")
    assert not await child.wait(0.2)
    os.kill(child.pid, signal.SIGKILL)
    assert await child.wait(5)
    assert child.exit_cause() == "was killed by SIGKILL"
    await child.stop()
    assert (
        not psutil.pid_exists(child.pid)
        or psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE
    )


async def test_stop_ends_a_child_that_does_not_end_by_itself() -> None:
    child = start_child(children.sleep_forever, name="sleeper")
    started = time.monotonic()
    await child.stop(grace=0.2)
    assert time.monotonic() - started < 3
    assert child.exit_cause() == "was killed by SIGTERM"
    assert not psutil.pid_exists(child.pid)


def _start_parent(mode: str) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(
        [sys.executable, "-m", "tests.support.children", mode],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = parent.stdout.readline()
    assert line.startswith("child="), parent.stderr.read() if parent.poll() is not None else line
    return parent, int(line.split("=")[1])


@pytest.mark.parametrize("mode", ["main-thread", "other-thread"])
def test_no_child_outlives_a_sigkilled_parent(mode: str) -> None:
    """From the main thread PR_SET_PDEATHSIG applies; from another thread only the parent watch
    (EOF on the pipe to the parent) can notice: both must end the child."""
    parent, child_pid = _start_parent(mode)
    child = psutil.Process(child_pid)
    assert child.ppid() == parent.pid
    parent.kill()
    parent.wait(5)
    gone, alive = psutil.wait_procs([child], timeout=5)
    assert not alive, f"the child {child_pid} outlived its SIGKILLed parent"


def test_ctrl_c_is_for_the_parent_the_child_ignores_it() -> None:
    parent, child_pid = _start_parent("main-thread")
    child = psutil.Process(child_pid)
    try:
        os.killpg(parent.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
        parent.wait(10)
        gone, alive = psutil.wait_procs([child], timeout=5)
        assert not alive, "the child survived its parent's Ctrl-C"
        assert parent.returncode == 0
        err = parent.stderr.read()
        assert "KeyboardInterrupt" not in err and "Traceback" not in err, err
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_main_module_without_guard_is_one_error_not_a_spawn_loop(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import asyncio\n"
        "from pipelines.processes import start_child\n"
        "from tests.support.children import log_then_return\n"
        "async def main():\n"
        "    child = start_child(log_then_return, 1, name='unguarded-child')\n"
        "    await child.wait(30)\n"
        "    print('cause:', child.exit_cause())\n"
        "asyncio.run(main())\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines() == [f"cause: could not start: {NO_MAIN_GUARD}"]
    assert "Traceback" not in run.stderr and "bootstrapping" not in run.stderr, run.stderr
