"""The batch runner's pool of prewarmed worker processes (the parent side).

``WorkerPool(jobs, ...).run()`` spawns ``workers`` processes (each imports the pipeline once,
then runs up to ``per_worker`` conversations at a time), hands each job to the least-loaded
ready worker, and collects one :class:`Result` per job:

* connects are paced across all workers by the sliding window the reconnect policy uses
  (:class:`processors.voicelive.reconnect.ConnectRate`; the service allows 30 new connections a
  minute per resource): a job is dispatched only when a
  connect is allowed (so its audio does not start long before its session; its place in the
  window moves to the moment it really connects), and every later connect (a reconnect, a
  renewal) asks the parent first;
* a worker that dies (crash, kill) or grows past ``memory_mb`` fails its running conversations
  with that cause, is replaced, and the rest go on;
* :meth:`drain` (first Ctrl-C) starts nothing new and lets the running ones finish;
  :meth:`cancel` (second Ctrl-C, SIGTERM) cancels them: their logs still complete and their
  sockets close with 1000. No worker outlives :meth:`run`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from pipelines.batch.jobs import Job, Result
from pipelines.batch.worker import worker_main
from pipelines.processes import SPAWN, ChildProcess, start_child
from processors.voicelive.reconnect import ConnectRate

WINDOW_S = 60.0
MEMORY_POLL_S = 0.5
STOP_TIMEOUT_S = 5.0


@dataclass
class _Slot:
    """One worker process and what it is running."""

    child: ChildProcess
    conn: Connection
    pid: int | None = None
    ready: bool = False
    running: dict[str, Job] = field(default_factory=dict)
    kill_reason: str | None = None


class WorkerPool:
    """Runs jobs over worker processes (see the module docstring)."""

    def __init__(
        self,
        jobs: list[Job],
        *,
        workers: int,
        per_worker: int,
        memory_mb: float | None = None,
        connects_per_minute: int = 30,
        on_event: Callable[[str, Any], None] | None = None,
        window_s: float = WINDOW_S,
    ) -> None:
        self.pending: deque[Job] = deque(jobs)
        self.total = len(jobs)
        self.workers = max(1, workers)
        self.per_worker = max(1, per_worker)
        self.memory_mb = memory_mb
        self.pacer = ConnectRate(connects_per_minute, window_s)
        self.on_event = on_event or (lambda kind, data: None)
        self.results: dict[str, Result] = {}
        self.draining = False
        self.cancelling = False
        self.replaced = 0
        self._slots: list[_Slot] = []
        self._permit_waiters: deque[tuple[_Slot, int]] = deque()
        self._reserved: dict[str, float] = {}  # job -> when its first connect was reserved
        self._permit_timer: asyncio.TimerHandle | None = None
        self._dispatch_timer: asyncio.TimerHandle | None = None
        self._finished: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- public -------------------------------------------------------------------------------

    @property
    def running(self) -> int:
        """How many conversations are running now, over all workers."""
        return sum(len(s.running) for s in self._slots)

    def drain(self) -> None:
        """Start nothing new; the running conversations finish."""
        self.draining = True
        while self.pending:
            job = self.pending.popleft()
            self._record(Result(job.name, False, "not started: the batch was stopped (Ctrl-C)"))
        self._check_finished()

    def cancel(self) -> None:
        """Cancel the running conversations too (their logs complete, sockets close 1000)."""
        self.drain()
        self.cancelling = True
        for slot in self._slots:
            self._send(slot, "cancel")

    async def run(self) -> list[Result]:
        """Run every job; returns the results in the jobs' order."""
        self._loop = asyncio.get_running_loop()
        self._finished = asyncio.Event()
        order = [job.name for job in self.pending]
        for _ in range(min(self.workers, max(1, len(self.pending)))):
            self._spawn()
        watcher = asyncio.create_task(self._watch_memory())
        try:
            self._check_finished()
            await self._finished.wait()
        finally:
            watcher.cancel()
            await self._stop_all()
        return [self.results[name] for name in order if name in self.results]

    # -- workers ------------------------------------------------------------------------------

    def _spawn(self) -> None:
        assert self._loop is not None
        parent, child_end = SPAWN.Pipe(duplex=True)
        child = start_child(worker_main, name="voicelive-batch-worker", handles=(child_end,))
        child_end.close()
        slot = _Slot(child, parent, pid=child.pid)
        self._slots.append(slot)
        self._loop.add_reader(parent.fileno(), self._on_readable, slot)

    def _send(self, slot: _Slot, *message: Any) -> None:
        try:
            slot.conn.send(message)
        except (OSError, EOFError, ValueError):
            pass  # its death is handled when the pipe reports EOF

    def _on_readable(self, slot: _Slot) -> None:
        try:
            message = slot.conn.recv()
        except (EOFError, OSError):
            self._worker_died(slot)
            return
        kind = message[0]
        if kind == "ready":
            slot.ready = True
            self.on_event("worker-ready", slot.pid)
            self._dispatch()
        elif kind == "started":
            self.on_event("started", message[1])
        elif kind == "done":
            result: Result = message[1]
            slot.running.pop(result.name, None)
            self._reserved.pop(result.name, None)
            self._record(result)
            self._dispatch()
        elif kind == "permit?":
            reserved_at = self._reserved.pop(message[2], None) if len(message) > 2 else None
            if reserved_at is not None:  # a job's first connect: its place was kept at dispatch
                self.pacer.retime(reserved_at, time.monotonic())
                self._send(slot, "permit", message[1])
            else:
                self._permit_waiters.append((slot, message[1]))
                self._grant_permits()

    def _worker_died(self, slot: _Slot) -> None:
        assert self._loop is not None
        self._loop.remove_reader(slot.conn.fileno())
        slot.child.process.join(1.0)
        cause = slot.kill_reason or slot.child.exit_cause()
        slot.conn.close()
        self._slots.remove(slot)
        self._permit_waiters = deque(w for w in self._permit_waiters if w[0] is not slot)
        for job in slot.running.values():
            self._reserved.pop(job.name, None)
            self._record(Result(job.name, False, f"worker {slot.pid} {cause}", worker_pid=slot.pid))
        self.on_event("worker-died", f"worker {slot.pid} {cause}")
        if self.pending and not self.draining:
            self.replaced += 1
            self._spawn()
        self._check_finished()

    async def _watch_memory(self) -> None:
        if not self.memory_mb:
            return
        import psutil

        while True:
            await asyncio.sleep(MEMORY_POLL_S)
            for slot in list(self._slots):
                try:
                    rss_mb = psutil.Process(slot.pid).memory_info().rss / 1e6
                except (psutil.Error, TypeError):
                    continue
                if rss_mb > self.memory_mb and slot.kill_reason is None:
                    slot.kill_reason = (
                        f"used {rss_mb:.0f} MB, over --worker-memory-mb {self.memory_mb:g}"
                    )
                    slot.child.process.kill()

    async def _stop_all(self) -> None:
        for slot in self._slots:
            if self._loop is not None:
                self._loop.remove_reader(slot.conn.fileno())  # their exit is expected now
            self._send(slot, "stop")
        await asyncio.gather(*(slot.child.stop(grace=STOP_TIMEOUT_S) for slot in self._slots))
        for slot in self._slots:
            slot.conn.close()
        self._slots.clear()

    # -- dispatch and pacing ------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Hand pending jobs to the least-loaded ready workers, as fast as connects allow."""
        assert self._loop is not None
        while self.pending and not self.draining:
            free = [
                s
                for s in self._slots
                if s.ready and s.kill_reason is None and len(s.running) < self.per_worker
            ]
            if not free:
                return
            wait = self.pacer.wait(time.monotonic())
            if wait > 0:
                if self._dispatch_timer is None:
                    self._dispatch_timer = self._loop.call_later(wait, self._dispatch_later)
                return
            now = time.monotonic()
            self.pacer.record(now)
            slot = min(free, key=lambda s: len(s.running))
            job = self.pending.popleft()
            self._reserved[job.name] = now
            slot.running[job.name] = job
            self._send(slot, "run", job)

    def _dispatch_later(self) -> None:
        self._dispatch_timer = None
        self._dispatch()

    def _grant_permits(self) -> None:
        assert self._loop is not None
        while self._permit_waiters:
            wait = self.pacer.wait(time.monotonic())
            if wait > 0:
                if self._permit_timer is None:
                    self._permit_timer = self._loop.call_later(wait, self._grant_later)
                return
            slot, n = self._permit_waiters.popleft()
            self.pacer.record(time.monotonic())
            self._send(slot, "permit", n)

    def _grant_later(self) -> None:
        self._permit_timer = None
        self._grant_permits()
        self._dispatch()

    # -- results ------------------------------------------------------------------------------

    def _record(self, result: Result) -> None:
        if result.name in self.results:
            return
        self.results[result.name] = result
        self.on_event("done", result)
        self._check_finished()

    def _check_finished(self) -> None:
        if self._finished is not None and len(self.results) >= self.total:
            self._finished.set()
