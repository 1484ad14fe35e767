"""pipelines.processes with real spawned children: their logs reach the parent's sinks, a crash is
one line with its cause, no child outlives its parent (even a SIGKILLed one), Ctrl-C is the
parent's, and a main module without a ``__main__`` guard is one clear error, not a spawn loop."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psutil
import pytest
from loguru import logger

from pipelines.processes import EXIT_CRASHED, NO_MAIN_GUARD, start_child
from tests.support import children
from tests.support.script_run import Script, kill, run_to_end, script


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


@asynccontextmanager
async def _start_parent(mode: str) -> AsyncIterator[tuple[Script, int]]:
    """``python -m tests.support.children mode`` in its own session: it and its child's pid."""
    async with script("-m", "tests.support.children", mode, start_new_session=True) as parent:
        _, line = await parent.wait_for("", timeout=20)  # its first line
        assert line.startswith("child="), parent.printed()
        yield parent, int(line.split("=")[1])


@pytest.mark.parametrize("mode", ["main-thread", "other-thread"])
async def test_no_child_outlives_a_sigkilled_parent(mode: str) -> None:
    """From the main thread PR_SET_PDEATHSIG applies; from another thread only the parent watch
    (EOF on the pipe to the parent) can notice: both must end the child."""
    async with _start_parent(mode) as (parent, child_pid):
        child = psutil.Process(child_pid)
        assert child.ppid() == parent.proc.pid
        kill(parent.proc)
        await asyncio.wait_for(parent.proc.wait(), 5)
        gone, alive = await asyncio.to_thread(psutil.wait_procs, [child], timeout=5)
        assert not alive, f"the child {child_pid} outlived its SIGKILLed parent"


async def test_ctrl_c_is_for_the_parent_the_child_ignores_it() -> None:
    async with _start_parent("main-thread") as (parent, child_pid):
        child = psutil.Process(child_pid)
        os.killpg(parent.proc.pid, signal.SIGINT)  # what a terminal does: the foreground group
        await asyncio.wait_for(parent.proc.wait(), 10)
        gone, alive = await asyncio.to_thread(psutil.wait_procs, [child], timeout=5)
        assert not alive, "the child survived its parent's Ctrl-C"
        assert await parent.wait(5) == 0
        err = parent.stderr
        assert "KeyboardInterrupt" not in err and "Traceback" not in err, err


async def test_a_main_module_without_guard_is_one_error_not_a_spawn_loop(tmp_path: Path) -> None:
    unguarded = tmp_path / "unguarded.py"
    unguarded.write_text(
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
    run = await run_to_end(str(unguarded), cwd=tmp_path, timeout=60)
    assert run.code == 0, run.stderr
    assert run.stdout.strip().splitlines() == [f"cause: could not start: {NO_MAIN_GUARD}"]
    assert "Traceback" not in run.stderr and "bootstrapping" not in run.stderr, run.stderr
