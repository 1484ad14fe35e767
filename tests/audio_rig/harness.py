"""Run transports in a real, lean pipecat pipeline and watch the frames that come out of it.

``PipelineHarness(processors)`` wraps them as ``[head, *processors, tail]`` in a
``PipelineWorker`` (no RTVI, no turn tracking, no idle cancel) run by a ``WorkerRunner`` in a
background task. ``head`` records frames arriving upstream, ``tail`` frames arriving downstream;
tests wait on them with timeouts instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from pipecat.frames.frames import CancelFrame, EndFrame, Frame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner


class FrameLog(FrameProcessor):
    """Forwards everything and records frames travelling in one direction."""

    def __init__(self, direction: FrameDirection):
        super().__init__(enable_direct_mode=True)
        self.direction = direction
        self.frames: list[Frame] = []
        self._changed = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if direction == self.direction:
            self.frames.append(frame)
            self._changed.set()
        await self.push_frame(frame, direction)

    def of_type(self, *types: type) -> list[Frame]:
        return [f for f in self.frames if isinstance(f, types)]

    async def wait_for(self, predicate: Callable[[list[Frame]], bool], timeout: float) -> None:
        """Wait until ``predicate(frames)`` holds; raise TimeoutError otherwise."""

        async def _wait():
            while not predicate(self.frames):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    async def wait_for_type(self, frame_type: type, count: int = 1, timeout: float = 5.0) -> Frame:
        await self.wait_for(
            lambda frames: len([f for f in frames if isinstance(f, frame_type)]) >= count, timeout
        )
        return self.of_type(frame_type)[count - 1]


class PipelineHarness:
    """An async context manager running ``processors`` until :meth:`end` or exit (cancel)."""

    def __init__(self, processors: Sequence[FrameProcessor], *, sample_rate: int = 24000):
        self.head = FrameLog(FrameDirection.UPSTREAM)
        self.tail = FrameLog(FrameDirection.DOWNSTREAM)
        self.worker = PipelineWorker(
            Pipeline([self.head, *processors, self.tail]),
            params=PipelineParams(
                audio_in_sample_rate=sample_rate, audio_out_sample_rate=sample_rate
            ),
            enable_rtvi=False,
            enable_turn_tracking=False,
            cancel_on_idle_timeout=False,
            idle_timeout_secs=None,
        )
        self._started = asyncio.Event()
        self.worker.add_event_handler("on_pipeline_started", self._on_started)
        self._task: asyncio.Task | None = None

    async def _on_started(self, worker, frame) -> None:
        self._started.set()

    async def __aenter__(self) -> PipelineHarness:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        self._task = asyncio.create_task(runner.run())
        started = asyncio.create_task(self._started.wait())
        await asyncio.wait({started, self._task}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if not self._started.is_set():
            started.cancel()
            if self._task.done():
                self._task.result()  # re-raise what stopped it
            raise TimeoutError("pipeline did not start")
        return self

    async def __aexit__(self, *exc) -> None:
        if self._task and not self._task.done():
            await self.worker.queue_frame(CancelFrame())
            await asyncio.wait_for(self._task, 20)

    async def send(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        await self.worker.queue_frame(frame, direction)

    async def end(self, timeout: float = 10.0) -> None:
        """Queue an EndFrame and wait for the pipeline to finish."""
        await self.worker.queue_frame(EndFrame())
        await asyncio.wait_for(self._task, timeout)
