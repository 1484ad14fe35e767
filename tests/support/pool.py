"""Run a test module's subprocess sessions side by side, so the module costs about its slowest one.

A session of the default script mostly waits (real-time WAV input, backoff, keepalive timeouts),
so running them one after another wastes minutes. A module registers its sessions by name, marks
each test with :func:`uses`, and gets a module-scoped :class:`SessionPool` that starts, at once,
only the sessions the selected tests need (``pytest -k`` stays cheap); each test then awaits its
own outcome and asserts on it.

    pytestmark = pytest.mark.asyncio(loop_scope="module")
    SESSIONS = {"drop": run_drop, ...}          # name -> async (tmp: Path) -> outcome

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    async def pool(request, tmp_path_factory):
        async with SessionPool.for_module(request, SESSIONS, tmp_path_factory) as p:
            yield p

    @uses("drop")
    async def test_drop(pool): outcome = await pool.get("drop")
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])
SessionRun = Callable[[Path], Awaitable[Any]]


def uses(*names: str) -> Callable[[F], F]:
    """Declare which registered sessions a test reads."""

    def mark(fn: F) -> F:
        fn.__sessions__ = names  # type: ignore[attr-defined]
        return fn

    return mark


class SessionPool:
    """Starts sessions concurrently (at most ``limit`` at a time) and hands out their outcomes."""

    def __init__(
        self, sessions: dict[str, SessionRun], tmp_factory: pytest.TempPathFactory, limit: int = 5
    ) -> None:
        self._sessions = sessions
        self._tmp = tmp_factory
        self._limit = asyncio.Semaphore(limit)
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    @classmethod
    def for_module(
        cls,
        request: pytest.FixtureRequest,
        sessions: dict[str, SessionRun],
        tmp_factory: pytest.TempPathFactory,
        limit: int = 5,
    ) -> SessionPool:
        pool = cls(sessions, tmp_factory, limit)
        wanted: list[str] = []
        for item in request.session.items:
            if getattr(item, "module", None) is request.module:
                for name in getattr(getattr(item, "function", None), "__sessions__", ()):
                    if name not in wanted:
                        wanted.append(name)
        pool.start(*wanted)
        return pool

    def start(self, *names: str) -> None:
        for name in names:
            if name not in self._tasks:
                self._tasks[name] = asyncio.ensure_future(self._run(name))

    async def _run(self, name: str) -> Any:
        async with self._limit:
            return await self._sessions[name](self._tmp.mktemp(name.replace("/", "_")))

    async def get(self, name: str, timeout: float = 90.0) -> Any:
        """The outcome of session ``name`` (started now if it was not yet)."""
        self.start(name)
        return await asyncio.wait_for(asyncio.shield(self._tasks[name]), timeout)

    async def __aenter__(self) -> SessionPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
