"""The batch worker process: imports once, then runs the conversations the parent hands it (at
most ``--per-worker`` at a time: the parent counts them) on one loop.

It talks to the parent over one duplex pipe (pickled tuples):

* parent -> worker: ``("run", job)``, ``("permit", n)`` (a connect may go ahead), ``("cancel",)``
  (cancel every running conversation: logs still complete, sockets closed 1000), ``("stop",)``;
* worker -> parent: ``("ready", pid)``, ``("started", name)``, ``("done", result)``,
  ``("permit?", n, name)`` (asks before every WebSocket connect of conversation ``name``, so the
  parent paces connects across all workers).

It is started with :func:`pipelines.processes.start_child`: Ctrl-C is the parent's business,
and the worker cannot outlive its parent. When the parent closes the pipe the worker cancels
what it runs (logs complete, sockets closed 1000) and exits.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

# The conversation a connect belongs to (the tasks pipecat creates inherit it): the parent kept
# a place for each conversation's first connect when it dispatched it.
_JOB: contextvars.ContextVar[str] = contextvars.ContextVar("batch_job")


class _Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self.running: dict[str, asyncio.Task[Any]] = {}
        self.cancelled = asyncio.Event()
        self.stopping = asyncio.Event()
        self.permits: dict[int, asyncio.Future[None]] = {}
        self._permit_ids = 0

    def send(self, *message: Any) -> None:
        try:
            self.conn.send(message)
        except (OSError, EOFError):  # the parent is gone
            self._parent_gone()

    def _parent_gone(self) -> None:
        self.cancelled.set()
        self.stopping.set()

    def on_readable(self) -> None:
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            self.loop.remove_reader(self.conn.fileno())
            self._parent_gone()
            return
        kind = message[0]
        if kind == "run":
            job = message[1]
            self.send("started", job.name)
            self.running[job.name] = self.loop.create_task(self._run(job))
        elif kind == "permit":
            future = self.permits.pop(message[1], None)
            if future is not None and not future.done():
                future.set_result(None)
        elif kind == "cancel":
            self.cancelled.set()
        elif kind == "stop":
            self.stopping.set()

    async def connect_permit(self) -> None:
        """Wait for the parent's go-ahead for one WebSocket connect."""
        self._permit_ids += 1
        n = self._permit_ids
        future: asyncio.Future[None] = self.loop.create_future()
        self.permits[n] = future
        self.send("permit?", n, _JOB.get(""))
        await future

    async def _run(self, job: Any) -> None:
        from pipelines.batch.conversation import run_conversation
        from pipelines.batch.jobs import Result

        _JOB.set(job.name)
        try:
            result = await run_conversation(job, self.cancelled)
        except BaseException as exc:  # never leave the parent waiting for this one
            result = Result(job.name, False, f"{exc.__class__.__name__}: {exc}")
        result.worker_pid = os.getpid()
        self.running.pop(job.name, None)
        self.send("done", result)


async def _serve(conn: Connection) -> None:
    worker = _Worker(conn)
    from processors.voicelive import connection as vl_connection

    vl_connection.set_connect_gate(worker.connect_permit)
    worker.loop.add_reader(conn.fileno(), worker.on_readable)
    worker.loop.add_signal_handler(signal.SIGTERM, worker._parent_gone)
    worker.send("ready", os.getpid())
    await worker.stopping.wait()
    if worker.running:
        worker.cancelled.set()
        await asyncio.wait(list(worker.running.values()), timeout=10.0)


def worker_main(conn: Connection) -> None:
    """Entry point of a worker process (started by :func:`pipelines.processes.start_child`)."""
    from loguru import logger

    logger.remove()  # the parent owns the console; per-conversation files get their own sinks
    import pipelines.agent  # noqa: F401  -- the imports are paid once per worker, here
    import pipelines.batch.conversation  # noqa: F401

    logger.remove()  # pipelines.agent's import may re-add pipecat's default sink
    asyncio.run(_serve(conn))
