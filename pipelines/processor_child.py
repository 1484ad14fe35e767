"""The child side of ``in_own_process``: a processor on its own event loop in its own process.

:func:`serve` runs in the spawned child (see ``pipelines.processes``). It builds the processor
with ``factory(*args, **kwargs)``, says ``ready`` (or ``failed`` with one line), and on the
parent's ``start`` runs a tiny pipecat pipeline around it::

    Inlet -> processor -> Outlet      (in a PipelineWorker, as in any pipeline)

Frames from the parent enter at the Inlet (downstream) or the Outlet (upstream); frames the
processor pushes out at either end go back to the parent with their direction. The parent's
``EndFrame`` goes through the worker, after every frame sent before it, and comes back as an
ordered ``ended``; a ``cancel`` cancels the worker. A heartbeat from this loop tells the parent
that the child is not stuck.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import CancelFrame, EndFrame, Frame, StartFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from pipelines.frame_wire import FrameEncodeError, FrameLink

HEARTBEAT_S = 0.25
_LIFECYCLE = (StartFrame, EndFrame, CancelFrame)


class _Edge(FrameProcessor):
    """An end of the child's pipeline: frames leaving the processor on this side go to the
    parent; lifecycle frames also go on to the worker."""

    def __init__(self, link: FrameLink, outward: FrameDirection, name: str) -> None:
        super().__init__(name=name, enable_direct_mode=True)
        self._link = link
        self._outward = outward

    async def queue_frame(
        self,
        frame: Frame,
        direction: FrameDirection = FrameDirection.DOWNSTREAM,
        callback: Any = None,
    ) -> None:
        """Frames leaving the processor go straight to the parent (the hot path: no pipecat
        processing here); lifecycle frames and frames entering take the ordinary way."""
        if direction == self._outward and callback is None and not isinstance(frame, _LIFECYCLE):
            await self._send(frame, direction)
        else:
            await super().queue_frame(frame, direction, callback)

    async def _send(self, frame: Frame, direction: FrameDirection) -> None:
        try:
            self._link.send_frame(frame, direction)
        except FrameEncodeError as exc:
            self._link.send_control(("cannot_send", exc.frame_type, str(exc)))
        await self._link.drain()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction != self._outward:
            await self.push_frame(frame, direction)  # from the worker, into the processor
            return
        if isinstance(frame, StartFrame):
            self._link.send_control(("started",))
        elif isinstance(frame, EndFrame):
            self._link.send_control(("ended",), ordered=True)
        await self.push_frame(frame, direction)  # lifecycle frames end at the worker


class _Child:
    def __init__(self, link: FrameLink, processor: FrameProcessor, label: str) -> None:
        self.link = link
        self.processor = processor
        self.label = label
        self.inlet = _Edge(link, FrameDirection.UPSTREAM, f"{label}::inlet")
        self.outlet = _Edge(link, FrameDirection.DOWNSTREAM, f"{label}::outlet")
        self.worker: PipelineWorker | None = None
        self.run_task: asyncio.Task | None = None
        self.done = asyncio.Event()

    async def on_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if self.worker is None:
            return
        if isinstance(frame, EndFrame):
            await self.worker.queue_frame(frame)
        else:  # into the processor, as its neighbour would push it
            await self.processor.queue_frame(frame, direction)

    async def on_control(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "start" and self.worker is None:
            params: dict[str, Any] = message[1]
            pipeline = Pipeline([self.inlet, self.processor, self.outlet])
            self.worker = PipelineWorker(
                pipeline,
                params=PipelineParams(**params),
                enable_rtvi=False,
                enable_turn_tracking=False,
                idle_timeout_secs=None,
                cancel_on_idle_timeout=False,
            )
            self.run_task = asyncio.create_task(self._run(self.worker))
        elif kind == "cancel":
            if self.worker is not None:
                await self.worker.cancel(reason=message[1])
            else:
                self.done.set()
        elif kind == "undecodable":
            logger.error(
                f"{self.label}: a frame from the pipeline could not be read ({message[1]})"
            )

    async def _run(self, worker: PipelineWorker) -> None:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        try:
            await runner.run()
        finally:
            self.done.set()

    async def heartbeat(self) -> None:
        while True:
            self.link.send_control(("heartbeat",))
            await asyncio.sleep(HEARTBEAT_S)


def serve(
    system: socket.socket,
    data: socket.socket,
    factory: Callable[..., FrameProcessor],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    label: str,
) -> None:
    """The child's main: run until the parent's pipeline ends, cancels, or goes away."""
    asyncio.run(_serve(FrameLink(system, data), factory, args, kwargs, label))


async def _serve(
    link: FrameLink,
    factory: Callable[..., FrameProcessor],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    label: str,
) -> None:
    await link.open()
    try:
        processor = factory(*args, **kwargs)
        if not isinstance(processor, FrameProcessor):
            raise TypeError(
                f"the factory returned {type(processor).__name__}, not a FrameProcessor"
            )
    except Exception as exc:  # noqa: BLE001 - reported to the parent as the one line
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f" ({tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})" if tb is not None else ""
        link.send_control(("failed", f"{type(exc).__name__}: {exc}{where}"))
        await link.drain()
        link.close()
        return
    child = _Child(link, processor, label)
    beat = asyncio.create_task(child.heartbeat())
    link.send_control(("ready",))
    system = asyncio.create_task(link.receive(child.on_frame, child.on_control, system=True))
    data = asyncio.create_task(link.receive(child.on_frame, child.on_control, system=False))
    ended = asyncio.create_task(child.done.wait())
    await asyncio.wait([system, ended], return_when=asyncio.FIRST_COMPLETED)
    if not ended.done() and child.worker is not None:  # the parent is gone: stop at once
        await child.worker.cancel(reason="the pipeline process went away")
        await asyncio.wait([ended], timeout=2.0)
    if child.run_task is not None:
        await asyncio.wait([child.run_task], timeout=2.0)
    await link.drain()
    for task in (beat, system, data, ended):
        task.cancel()
    link.close()
