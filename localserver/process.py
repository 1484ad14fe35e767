"""The embedded server in its own process, for ``python -m pipelines.agent --local``.

Its VAD, recogniser and synthesiser then never compete with the client's audio for the GIL or the
event loop. :meth:`LocalServerProcess.start` spawns the child (``pipelines.processes``: it ends
with its parent, even a SIGKILLed one, and logs into the parent's technical log), waits until the
server listens (bounded) and returns its URL; :meth:`LocalServerProcess.close` stops it (a stop
message, then SIGTERM, then SIGKILL) and reaps it. :func:`local_endpoint` is both for the length
of a block, as the default script and the batch runner use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.connection
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from loguru import logger

from pipelines.processes import SPAWN, ChildProcess, start_child

if TYPE_CHECKING:
    from processors.voicelive.endpoint import Endpoint

START_TIMEOUT_S = 60.0  # importing and warming the recogniser takes seconds on a loaded machine


class LocalServerError(Exception):
    """The local server process could not be started (one line)."""


class LocalServerProcess:
    """A running local server in a child process; ``url`` is the endpoint to give the client."""

    def __init__(
        self, child: ChildProcess, conn: multiprocessing.connection.Connection, url: str
    ) -> None:
        self.child = child
        self.url = url
        self._conn = conn

    @property
    def pid(self) -> int:
        """The child process's id."""
        return self.child.pid

    @classmethod
    async def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timeout: float = START_TIMEOUT_S,
        **options: Any,
    ) -> LocalServerProcess:
        """Spawn the server and return once it listens; raises :class:`LocalServerError`."""
        parent_conn, child_conn = SPAWN.Pipe()
        child = start_child(
            serve_in_child,
            host,
            port,
            options,
            name="local Voice Live server",
            handles=(child_conn,),
        )
        child_conn.close()
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(parent_conn.fileno(), lambda: readable.done() or readable.set_result(None))
        exited = asyncio.ensure_future(child.wait())
        try:
            await asyncio.wait(
                [readable, exited], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            loop.remove_reader(parent_conn.fileno())
            exited.cancel()
        url = None
        if readable.done():
            try:
                url = parent_conn.recv()
            except (EOFError, OSError):
                url = None
        if not isinstance(url, str):
            reason = (
                f"it {child.exit_cause()}"
                if not child.is_alive()
                else f"it did not listen within {timeout:g} s"
            )
            await child.stop(grace=0.5)
            parent_conn.close()
            raise LocalServerError(f"the local Voice Live server could not be started: {reason}")
        return cls(child, parent_conn, url)

    async def close(self, grace: float = 2.0) -> None:
        """Stop the server (its connections close) and reap the process; idempotent."""
        if self.child.exitcode is None and not self.child.stopping:
            try:
                self._conn.send("stop")
            except (OSError, ValueError):
                pass
        elif self.child.exitcode is not None and not self.child.stopping:
            logger.bind(console=False).warning(
                f"the local server process (pid {self.pid}) {self.child.exit_cause()}"
            )
        await self.child.stop(grace=grace)
        self._conn.close()


@contextlib.asynccontextmanager
async def local_endpoint() -> AsyncIterator[Endpoint]:
    """The endpoint of a local server running in its own process for the length of the block;
    raises :class:`LocalServerError` (one line) if it cannot start."""
    from processors.voicelive.endpoint import Endpoint

    local = await LocalServerProcess.start()
    logger.info(f"Started the local Voice Live server at {local.url} (pid {local.pid})")
    try:
        yield Endpoint.parse(local.url)
    finally:
        await local.close()


def serve_in_child(
    conn: multiprocessing.connection.Connection, host: str, port: int, options: dict[str, Any]
) -> None:
    """The child's main: serve until the parent says stop or goes away."""
    from processors.logsetup import send_to_technical_log_only

    send_to_technical_log_only("websockets.server", "localserver")
    asyncio.run(_serve(conn, host, port, options))


async def _serve(
    conn: multiprocessing.connection.Connection, host: str, port: int, options: dict[str, Any]
) -> None:
    from localserver.server import LocalServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(conn.fileno(), stop.set)  # "stop", or EOF: the parent is gone
    async with LocalServer(host, port, **options) as server:
        conn.send(server.url)
        await stop.wait()
    loop.remove_reader(conn.fileno())
