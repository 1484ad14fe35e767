"""``--local`` runs the embedded server in a second process: it listens there (not in the
pipeline process), serves the whole session, and is stopped at the end, on SIGTERM, when the
pipeline process is SIGKILLed, and reported when it dies itself; nothing is left behind."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import pytest

from tests.integration.test_localserver_session import spoken_input
from tests.multiprocess.test_child_failures import ProcessWatch
from tests.support.script_run import io_flags, kill, script, send_signal


class Listeners(ProcessWatch):
    """Also records which of the script's processes listen on a TCP port."""

    def __init__(self) -> None:
        super().__init__()
        self.listening: dict[int, set[int]] = {}
        self.script_pid = 0

    async def __call__(self, proc: asyncio.subprocess.Process) -> None:
        self.script_pid = proc.pid
        watcher = asyncio.create_task(super().__call__(proc))
        while proc.returncode is None:
            for pid in [proc.pid, *self.spawned()]:
                try:
                    conns = psutil.Process(pid).net_connections("tcp")
                except psutil.Error:
                    continue
                ports = {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}
                self.listening.setdefault(pid, set()).update(ports)
            await asyncio.sleep(0.05)
        await watcher

    def server_pids(self) -> list[int]:
        return [pid for pid in self.spawned() if self.listening.get(pid)]


Action = Callable[[asyncio.subprocess.Process, Listeners], Awaitable[None]]


async def local_run(tmp: Path, action: Action | None = None) -> tuple[int, str, str, Listeners]:
    in_wav = spoken_input(tmp)
    watch = Listeners()
    async with script("-m", "pipelines.agent", "--local", *io_flags(tmp, in_wav), cwd=tmp) as s:
        tasks = [asyncio.create_task(watch(s.proc))]
        if action is not None:
            tasks.append(asyncio.create_task(action(s.proc, watch)))
        run = await s.finish(90)
    await asyncio.gather(*tasks)
    assert not run.timed_out, run.describe()
    return run.code, run.stdout, run.stderr, watch


def when_talking(
    tmp: Path, then: Callable[[asyncio.subprocess.Process, Listeners], None]
) -> Action:
    """Once the server process listens and the user's first words are logged, do ``then``."""

    async def action(proc: asyncio.subprocess.Process, watch: Listeners) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.returncode is None:
            logs = list((tmp / "logs").glob("session_*.log")) if (tmp / "logs").exists() else []
            talking = logs and "User Input:" in logs[0].read_text(encoding="utf-8")
            if watch.server_pids() and talking:
                then(proc, watch)
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the session never got going")

    return action


async def test_local_runs_the_server_in_a_second_process(tmp_path: Path) -> None:
    code, out, err, watch = await local_run(tmp_path)
    assert code == 0, err
    (server,) = watch.server_pids()
    assert watch.listening[server], "the server process never listened"
    assert not watch.listening.get(watch.script_pid), "the pipeline process listens itself"
    (log,) = (tmp_path / "logs").glob("session_*.log")
    said = [x for x in log.read_text(encoding="utf-8").splitlines() if x.startswith("User Input:")]
    assert said[:2] == ["User Input: Tell me a story.", "User Input: Stop."]
    assert "Traceback" not in out + err
    assert err == "", (
        f"a clean session printed on stderr (a C extension's exit report?): {err[:300]}"
    )
    assert not watch.left_behind()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
async def test_local_server_stops_with_the_script(tmp_path: Path, sig: signal.Signals) -> None:
    code, out, err, watch = await local_run(
        tmp_path, when_talking(tmp_path, lambda p, _: send_signal(p, sig))
    )
    assert code in (0, 128 + sig), err
    assert "Traceback" not in out + err
    assert watch.server_pids() and not watch.left_behind()


async def test_local_server_ends_when_the_script_is_sigkilled(tmp_path: Path) -> None:
    code, _, _, watch = await local_run(tmp_path, when_talking(tmp_path, lambda p, _: kill(p)))
    assert code == -signal.SIGKILL
    assert watch.server_pids() and not watch.left_behind()


async def test_a_dead_local_server_ends_the_session_with_one_line(tmp_path: Path) -> None:
    def kill_server(_: asyncio.subprocess.Process, watch: Listeners) -> None:
        psutil.Process(watch.server_pids()[0]).kill()

    code, out, err, watch = await local_run(tmp_path, when_talking(tmp_path, kill_server))
    assert code == 1, out + err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in out + err
    assert not watch.left_behind()
