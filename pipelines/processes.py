"""Child processes of a pipeline: spawned, watched, logged and stopped the same way everywhere.

:func:`start_child` runs ``target(*args, **kwargs)`` in a *spawned* child process (a fresh
interpreter: no inherited event loop, threads or locks) and returns a :class:`ChildProcess`:

- **No orphans.** The child exits by itself as soon as its parent is gone, even a SIGKILLed
  parent: a thread in the child waits on the pipe multiprocessing keeps to the parent (EOF when the
  parent dies), and on Linux ``PR_SET_PDEATHSIG`` kills it too when the parent was started from
  the main thread. The parent stops every child it still has at interpreter exit.
- **Ctrl-C belongs to the parent.** A terminal's Ctrl-C reaches the whole process group; children
  ignore SIGINT (blocked from the fork on, so not even a child still importing can print a
  ``KeyboardInterrupt`` traceback) and are stopped by their parent instead.
- **One log.** Every loguru record of the child (and stdlib ``logging``, forwarded into loguru) is
  sent to the parent over a pipe and re-emitted there with its own level, time, module, function
  and line, so it reaches the parent's sinks (the technical log, the console) as if logged there.
  The pipe is drained until the child's end, so nothing logged before a crash is lost.
- **A missing main guard is one error, not a spawn loop.** A spawned child imports the parent's
  main module; one that starts a pipeline at import time would start another child from inside
  the child. :func:`exit_if_importing_main` (called by :func:`start_child` and by anything that
  would spawn at construction) ends such a child with :data:`EXIT_NO_MAIN_GUARD`, which
  :meth:`ChildProcess.exit_cause` turns into one line saying what to fix.

This module imports neither pipecat nor the Voice Live code, so lean children (an audio process)
can use it; ``pipelines.multiprocess`` builds the pipeline boundary on it.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any, NoReturn

from loguru import logger

SPAWN = multiprocessing.get_context("spawn")
EXIT_NO_MAIN_GUARD = 78
"""Exit code of a child that was asked to spawn while still importing the main module."""
EXIT_PARENT_GONE = 79
"""Exit code of a child whose parent died."""
EXIT_CRASHED = 70
"""Exit code of a child whose target raised."""

NO_MAIN_GUARD = (
    "the main module starts the pipeline when it is imported, and a spawned process imports it: "
    'put that code under `if __name__ == "__main__":`'
)
_PR_SET_PDEATHSIG = 1
NOTHING_LEVEL = 100  # above CRITICAL: a child forwards no record
_children: set[ChildProcess] = set()
"""Children not stopped yet (kept alive here: the parent may have dropped its last reference)."""


def exit_without_finalizing(code: int) -> NoReturn:
    """End this process with ``code`` once its work is done, skipping interpreter finalization.

    The exit hooks still run (children stopped, multiprocessing's clean-up, log files closed) and
    the standard streams are flushed; what is skipped is the last garbage collections over a
    pipeline's object graph (0.3-0.7 s of a Ctrl-C on a loaded machine) and, with them, C
    extensions' shutdown reports: soxr's nanobind prints "leaked instances" for every resampler a
    reference cycle still holds, which is noise on stderr, not a failure.
    """
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def exit_if_importing_main() -> None:
    """In a spawned child still importing the parent's main module, exit now with
    :data:`EXIT_NO_MAIN_GUARD` (its parent reports it); elsewhere do nothing."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        sys.stderr.flush()
        os._exit(EXIT_NO_MAIN_GUARD)


class ChildProcess:
    """A running child started by :func:`start_child`."""

    def __init__(self, name: str, process: BaseProcess, log_thread: threading.Thread) -> None:
        self.name = name
        self.process = process
        self._log_thread = log_thread
        self._exited: asyncio.Future[None] | None = None
        self.stopping = False
        """Set once the parent asked the child to stop: its exit is then expected."""

    @property
    def pid(self) -> int:
        """The child's process id (0 before it started)."""
        return self.process.pid or 0

    @property
    def exitcode(self) -> int | None:
        """The child's exit code; ``None`` while it runs (negative: the signal that ended it)."""
        return self.process.exitcode

    def is_alive(self) -> bool:
        """Whether the child process is still running."""
        return self.process.is_alive()

    def _exit_future(self) -> asyncio.Future[None]:
        """Resolved once the child's sentinel (a pipe it holds) closes: one reader per loop."""
        loop = asyncio.get_running_loop()
        if self._exited is None or self._exited.get_loop() is not loop:
            exited: asyncio.Future[None] = loop.create_future()
            sentinel = self.process.sentinel

            def ready() -> None:
                loop.remove_reader(sentinel)
                if not exited.done():
                    exited.set_result(None)

            loop.add_reader(sentinel, ready)
            self._exited = exited
        return self._exited

    def exit_cause(self) -> str:
        """Why the child ended, as the end of a sentence ("exited with code 3", "was killed by
        SIGKILL", ...)."""
        code = self.process.exitcode
        if code is None:
            return "is still running"
        if code == EXIT_NO_MAIN_GUARD:
            return f"could not start: {NO_MAIN_GUARD}"
        if code == EXIT_PARENT_GONE:
            return "exited because its parent was gone"
        if code < 0:
            try:
                sig = signal.Signals(-code).name
            except ValueError:
                sig = f"signal {-code}"
            verb = (
                "crashed with"
                if -code
                in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL)
                else "was killed by"
            )
            return f"{verb} {sig}"
        return f"exited with code {code}"

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait (without blocking the loop) until the child has exited; False on timeout. Any
        number of tasks may wait at once."""
        if self.process.exitcode is not None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._exit_future()), timeout)
        except TimeoutError:
            return False
        # The pipe closes while the child exits, a moment before it can be reaped.
        for _ in range(1000):
            if self.process.exitcode is not None:
                return True
            await asyncio.sleep(0.001)
        return self.process.exitcode is not None

    async def stop(self, grace: float = 1.0) -> None:
        """Wait up to ``grace`` seconds for the child to exit by itself, then SIGTERM, then
        SIGKILL; reap it and wait (bounded) until every log line it sent has been emitted."""
        self.stopping = True
        if not await self.wait(grace):
            self.process.terminate()
            if not await self.wait(0.5):
                self.process.kill()
                await self.wait(2.0)
        await asyncio.to_thread(self._log_thread.join, 1.0)
        _children.discard(self)

    def stop_now(self, grace: float = 0.5) -> None:
        """:meth:`stop` for code without an event loop (interpreter exit): blocks up to ~3 s."""
        self.stopping = True
        self.process.join(grace)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(0.5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2.0)
        self._log_thread.join(1.0)
        _children.discard(self)


def start_child(
    target: Callable[..., Any], *args: Any, name: str, handles: tuple[Any, ...] = (), **kwargs: Any
) -> ChildProcess:
    """Start ``target(*handles, *args, **kwargs)`` in a spawned child process named ``name``.

    ``target`` must be importable (a module-level function or class) and the arguments picklable;
    a :class:`TypeError` saying which is raised here otherwise. ``handles`` (sockets,
    ``multiprocessing`` connections) are passed to the child as file descriptors. ``target`` and
    its arguments are unpickled in the child only once its log forwarding is in place, so even
    what their imports log reaches the parent's sinks. The child's exit code is 0 when
    ``target`` returns, :data:`EXIT_CRASHED` when it raises (one error line, forwarded).
    """
    exit_if_importing_main()
    try:
        payload = pickle.dumps((target, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - pickling raises anything the objects raise
        raise TypeError(f"{name}: the target and its arguments must be picklable ({exc})") from None
    log_reader, log_writer = SPAWN.Pipe(duplex=False)
    main_thread = threading.current_thread() is threading.main_thread()
    process = SPAWN.Process(
        target=_child_main,
        name=name,
        daemon=False,
        args=(payload, handles, log_writer, name, min(_min_level(), 10), main_thread, os.getpid()),
    )
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        log_writer.close()
    thread = threading.Thread(
        target=_emit_records, args=(log_reader, name), name=f"{name}-log", daemon=True
    )
    thread.start()
    child = ChildProcess(name, process, thread)
    _children.add(child)
    # multiprocessing's own exit hook joins non-daemonic children forever; ours must run first
    # (exit hooks run last-registered first), so it is (re-)registered after every start.
    atexit.unregister(_stop_children_at_exit)
    atexit.register(_stop_children_at_exit)
    return child


def _min_level() -> int:
    """The lowest level any of the parent's loguru sinks accepts (records below are not sent)."""
    try:
        level = logger._core.min_level  # type: ignore[attr-defined]
    except AttributeError:
        return 0
    if level == float("inf"):  # the parent has no sink at all: nothing is worth sending
        return NOTHING_LEVEL
    try:
        return int(level)
    except (TypeError, ValueError):
        return 0


# -- the child side -----------------------------------------------------------------------------


def _child_main(
    payload: bytes,
    handles: tuple[Any, ...],
    log_writer: multiprocessing.connection.Connection,
    name: str,
    min_level: int,
    parent_main_thread: bool,
    parent_pid: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if parent_main_thread and sys.platform.startswith("linux"):
        _set_parent_death_signal()
    parent = multiprocessing.parent_process()
    if os.getppid() != parent_pid or parent is None:
        os._exit(EXIT_PARENT_GONE)
    threading.Thread(
        target=_exit_with_parent, args=(parent.sentinel,), name="parent-watch", daemon=True
    ).start()
    logger.remove()
    logger.add(
        _ForwardingSink(log_writer),
        level=min_level,
        format="{message}",
        colorize=False,
        backtrace=False,
        diagnose=False,
        catch=False,
    )
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.DEBUG, force=True)
    try:
        target, args, kwargs = pickle.loads(payload)
        target(*handles, *args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - the child's last word, whatever ended it
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f" ({tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})" if tb is not None else ""
        logger.error(f"{name} crashed: {type(exc).__name__}: {exc}{where}")
        log_writer.close()
        sys.stdout.flush()
        os._exit(EXIT_CRASHED)
    log_writer.close()
    exit_without_finalizing(0)  # the last collections over a pipeline's objects took seconds


def _set_parent_death_signal() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the parent watch thread still ends the child


def _exit_with_parent(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(EXIT_PARENT_GONE)


class _ForwardingSink:
    """A loguru sink (in the child) sending each record to the parent."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def __call__(self, message: Any) -> None:
        record = message.record
        text = record["message"]
        if record["exception"] is not None:
            import traceback

            kind, value, tb = record["exception"]
            text += "\n" + "".join(traceback.format_exception(kind, value, tb)).rstrip("\n")
        extra = {
            k: v
            for k, v in record["extra"].items()
            if isinstance(v, (str, int, float, bool, type(None)))
        }
        item = (
            record["level"].name,
            record["level"].no,
            text,
            record["name"],
            record["function"],
            record["line"],
            record["time"],
            extra,
        )
        with self._lock:
            try:
                self._conn.send(item)
            except (OSError, ValueError):
                pass  # the parent is gone: the parent watch ends this process


class _InterceptHandler(logging.Handler):
    """stdlib ``logging`` in the child -> loguru (-> the parent)."""

    def emit(self, record: logging.LogRecord) -> None:
        level = (
            record.levelname
            if record.levelname in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
            else "INFO"
        )
        logger.bind(origin=record.name).patch(lambda r: r.update(name=record.name)).log(
            level, record.getMessage()
        )


# -- the parent side ----------------------------------------------------------------------------


def _emit_records(conn: multiprocessing.connection.Connection, name: str) -> None:
    """Re-emit the child's records in the parent until the child closes its end."""
    while True:
        try:
            level, level_no, text, module, function, line, time, extra = conn.recv()
        except (EOFError, OSError):
            break
        except Exception as exc:  # noqa: BLE001 - a record that cannot be read is skipped
            logger.warning(f"{name}: a log record from the child could not be read ({exc})")
            continue

        def patch(
            record: Any,
            module: str = module,
            function: str = function,
            line: int = line,
            time: Any = time,
        ) -> None:
            record.update(name=module, function=function, line=line, time=time)

        try:
            logger.level(level)
        except ValueError:
            level = level_no
        logger.patch(patch).bind(**extra).log(level, text)
    conn.close()


def _stop_children_at_exit() -> None:
    """Stop the children still running at interpreter exit, so none outlives the parent."""
    for child in list(_children):
        child.stop_now()
