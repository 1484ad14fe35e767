"""Any pipecat processor in its own process: ``in_own_process(factory, *args, **kwargs)``.

::

    pipeline = Pipeline([input, service, in_own_process(Recogniser, "model.bin"), output])

returns a :class:`OwnProcessProcessor`, a ``FrameProcessor`` placed in the pipeline like any other.
The real processor, ``factory(*args, **kwargs)``, runs in a spawned child process on its own event
loop and GIL (``pipelines.processor_child``), so a processor that holds the GIL or blocks its loop
no longer delays the audio, the WebSocket or barge-in of the pipeline process. ``factory`` must be
importable (a module-level class or function) and its arguments picklable.

What crosses, and how (``pipelines.frame_wire``): every frame, both ways, with its direction; system
frames (``InterruptionFrame``, ``CancelFrame``, errors, microphone audio) on their own channel, so
they overtake queued data frames; an interruption drops the interruptible data frames still in
flight, as it drops queued frames inside one process. ``StartFrame``: the child is spawned when
this processor is built (it imports while the pipeline is being set up), its processor starts
with the pipeline and the ``StartFrame`` goes on only once it has. ``EndFrame``: everything sent
before it is processed and comes back first, then the child ends. ``CancelFrame``: the child is
cancelled and stopped (SIGTERM, then SIGKILL, within ~1.5 s).

Failures are one line each, the processor's :attr:`~OwnProcessProcessor.failure` (printed by the
default script), plus a permanent ``ErrorFrame`` upstream and the session cancelled: a child
that crashes, is killed, stops answering (no heartbeat for ``hang_timeout_s``), cannot build the
processor, or a frame that cannot be pickled (named by its type). The child's logs reach this
process's loguru sinks; no child outlives this process (``pipelines.processes``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    CancelWorkerFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    PipelineFlushFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipelines.frame_wire import FrameEncodeError, FrameLink, ParkedFrame
from pipelines.processes import ChildProcess, exit_if_importing_main, start_child
from pipelines.processor_child import serve


def in_own_process(
    factory: Callable[..., FrameProcessor], *args: Any, **kwargs: Any
) -> OwnProcessProcessor:
    """A processor standing for ``factory(*args, **kwargs)`` run in its own process (defaults:
    see :class:`OwnProcessProcessor` for the timeouts)."""
    return OwnProcessProcessor(factory, args, kwargs)


def _describe(factory: Callable[..., Any]) -> str:
    return getattr(factory, "__qualname__", None) or repr(factory)


class OwnProcessProcessor(FrameProcessor):
    """Stands in the pipeline for a processor running in a child process (see the module doc).

    ``start_timeout_s`` bounds the child's start (imports, the factory, the processor's own
    start); ``hang_timeout_s`` is how long a started child may stay silent (it sends a heartbeat
    every 0.25 s from its event loop, so a processor blocking that loop longer counts as hung);
    ``end_timeout_s`` bounds the drain after an ``EndFrame``.
    """

    def __init__(
        self,
        factory: Callable[..., FrameProcessor],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        start_timeout_s: float = 30.0,
        hang_timeout_s: float = 5.0,
        end_timeout_s: float = 10.0,
    ) -> None:
        exit_if_importing_main()
        qualname = _describe(factory)
        self.label = f"in_own_process({qualname})"
        if "<locals>" in qualname or "<lambda>" in qualname:
            raise TypeError(
                f"{self.label}: the factory must be importable (a module-level class or function)"
            )
        super().__init__(name=name or self.label)
        self.failure: str | None = None
        """Why the processor stopped working (one line naming it and the cause), or None."""
        self.start_timeout_s, self.hang_timeout_s, self.end_timeout_s = (
            start_timeout_s,
            hang_timeout_s,
            end_timeout_s,
        )
        parent_sys, child_sys = socket.socketpair()
        parent_data, child_data = socket.socketpair()
        self._link = FrameLink(parent_sys, parent_data)
        try:
            self._child: ChildProcess = start_child(
                serve,
                factory,
                tuple(args),
                dict(kwargs or {}),
                self.label,
                name=self.label,
                handles=(child_sys, child_data),
            )
        except TypeError:
            self._link.close()
            raise
        finally:
            child_sys.close()
            child_data.close()
        self._ready = asyncio.Event()
        self._started = asyncio.Event()
        self._ended = asyncio.Event()
        self._failed = asyncio.Event()
        self._last_heard = time.monotonic()
        self._tasks: list[asyncio.Task] = []
        self._stopped = False
        self._opened = False
        self._error_origins: dict[int, FrameProcessor] = {}
        self._parked: dict[int, Frame] = {}
        self._stop_task: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._child.pid

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Start, end or cancel the child with the pipeline; send every other frame to it."""
        if isinstance(frame, InterruptionFrame):  # the child starts interrupting first
            if self.failure is None and not self._stopped:
                await self._send(frame, direction)
            await super().process_frame(frame, direction)
            return
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self._start()
            await self.push_frame(frame, direction)
        elif isinstance(frame, EndFrame):
            await self._end(frame, direction)
            await self.push_frame(frame, direction)
            await self._stop_child(grace=5.0)  # it is ending by itself: reaped, its logs drained
        elif isinstance(frame, CancelFrame):
            self._child.stopping = True
            self._link.send_control(("cancel", frame.reason or "cancelled"))
            await self.push_frame(frame, direction)
            await self._stop_child(grace=1.0)
        elif self.failure is None and not self._stopped:
            if isinstance(frame, PipelineFlushFrame):  # its event belongs to this process
                self._parked[frame.id] = frame
                frame = ParkedFrame(frame.id)
            await self._send(frame, direction)

    async def _send(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, ErrorFrame) and frame.processor is not None:
            self._error_origins[frame.id] = frame.processor  # put back when it comes out
        try:
            self._link.send_frame(frame, direction)
        except FrameEncodeError as exc:
            await self._fail(f"{self.label}: {exc}")
            return
        try:
            await self._link.drain()
        except (ConnectionError, OSError):
            pass  # the child is gone: the watch reports why

    # -- lifecycle ------------------------------------------------------------------------------

    async def wait_ready(self) -> bool:
        """Wait until the child has imported what it needs and built the processor (bounded by
        ``start_timeout_s``); False if it failed. Call it before starting the pipeline worker
        (``AgentPipeline.run`` does) so that a slow start delays the session, not the first
        frames: an input transport starts producing as soon as the pipeline starts."""
        if self._link.closed:
            return False
        if not self._opened:
            self._opened = True
            await self._link.open()
            self._tasks = [
                asyncio.ensure_future(
                    self._link.receive(self._deliver, self._control, system=True)
                ),
                asyncio.ensure_future(
                    self._link.receive(self._deliver, self._control, system=False)
                ),
                asyncio.ensure_future(self._watch()),
            ]
        return await self._wait_for(self._ready, self.start_timeout_s, "did not start")

    async def _start(self) -> None:
        if not await self.wait_ready():
            return
        setup = self.processor_setup
        self._link.send_control(
            (
                "start",
                {
                    "audio_in_sample_rate": setup.audio_in_sample_rate,
                    "audio_out_sample_rate": setup.audio_out_sample_rate,
                    "enable_metrics": setup.enable_metrics,
                    "enable_usage_metrics": setup.enable_usage_metrics,
                    "report_only_initial_ttfb": setup.report_only_initial_ttfb,
                },
            )
        )
        await self._wait_for(self._started, self.start_timeout_s, "did not start its processor")

    async def _end(self, frame: EndFrame, direction: FrameDirection) -> None:
        if self.failure is None and not self._stopped:
            await self._send(frame, direction)
            await self._wait_for(
                self._ended, self.end_timeout_s, "did not finish after the end of the pipeline"
            )

    async def _wait_for(self, event: asyncio.Event, timeout: float, what: str) -> bool:
        """Wait for ``event``; a failure meanwhile returns False, a timeout fails the processor."""
        waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._failed.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if event.is_set():
            return True
        if self.failure is None:
            await self._fail(f"{self.label} (pid {self.pid}) {what} within {timeout:g} s")
        return False

    async def _stop_child(self, grace: float) -> None:
        """Stop the child once (later calls wait for the same stop, which a cancelled caller,
        such as the process task at cleanup, does not cut short)."""
        self._stopped = True
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop(grace))
        await asyncio.shield(self._stop_task)

    async def _stop(self, grace: float) -> None:
        self._child.stopping = True
        await self._child.stop(grace=grace)
        self._link.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)

    async def cleanup(self) -> None:
        """Stop the child process (if still running) once the pipeline is done."""
        await super().cleanup()
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop the child now (for a pipeline that will not run after all); idempotent."""
        await self._stop_child(grace=0.5)

    # -- from the child -------------------------------------------------------------------------

    async def _deliver(self, frame: Frame, direction: FrameDirection) -> None:
        self._last_heard = time.monotonic()
        if isinstance(frame, ErrorFrame):  # its own, or one that passed through the child
            frame.processor = self._error_origins.pop(frame.id, self)
        elif isinstance(frame, ParkedFrame):  # a flush probe back from its trip through the child
            original = self._parked.pop(frame.token, None)
            if original is None:
                return
            frame = original
        await self.push_frame(frame, direction)

    async def _control(self, message: tuple[Any, ...]) -> None:
        self._last_heard = time.monotonic()
        kind = message[0]
        if kind == "ready":
            self._ready.set()
        elif kind == "started":
            self._started.set()
        elif kind == "ended":
            self._child.stopping = True
            self._ended.set()
        elif kind == "failed":
            self._child.stopping = True
            await self._fail(f"{self.label} could not start: {message[1]}")
        elif kind == "cannot_send":
            await self._fail(f"{self.label}: {message[2]}")
        elif kind == "undecodable":
            await self._fail(
                f"{self.label}: a frame from the child process could not be read ({message[1]})"
            )

    async def _watch(self) -> None:
        """Until the child exits: report an exit nobody asked for, and a silent (hung) child."""
        while not await self._child.wait(0.25):
            silent = time.monotonic() - self._last_heard
            if self._ready.is_set() and not self._child.stopping and silent > self.hang_timeout_s:
                await self._fail(
                    f"{self.label} (pid {self.pid}) stopped responding "
                    f"(no heartbeat for {silent:.1f} s): killed"
                )
                self._child.process.kill()
        if not self._child.stopping:
            await self._fail(f"{self.label} (pid {self.pid}) {self._child.exit_cause()}")

    async def _fail(self, message: str) -> None:
        """Report once, make the processor unusable, end the session; the child is killed."""
        if self.failure is not None:
            return
        self.failure = message
        self._failed.set()
        self._child.stopping = True
        if self._child.is_alive():
            self._child.process.kill()
        logger.bind(console=False).error(message)  # the default script prints it once, last
        await self.push_error(message, force_treat_as_permanent=True)
        await self.push_frame(CancelWorkerFrame(reason=message), FrameDirection.UPSTREAM)
