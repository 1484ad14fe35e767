"""The process boundary itself, driven frame by frame from this (test) process: frames cross both
ways with their direction and content, an interruption overtakes queued data frames and drops
them as it does inside one process, the lifecycle is honoured."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import pytest
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    StartFrame,
    TextFrame,
    TTSAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from pipelines.multiprocess import OwnProcessProcessor, in_own_process
from tests.support.mp_processors import Passthrough, SlowText


class Recorder(FrameProcessor):
    """Records the frames reaching it travelling ``direction``, passes everything on."""

    def __init__(self, direction: FrameDirection) -> None:
        super().__init__()
        self.direction = direction
        self.frames: list[Frame] = []
        self.arrived = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == self.direction and not isinstance(frame, StartFrame):
            self.frames.append(frame)
            self.arrived.set()
        await self.push_frame(frame, direction)


Script = Callable[[PipelineWorker, Recorder, Recorder], Awaitable[None]]


async def drive(processor: FrameProcessor, script: Script) -> tuple[list[Frame], list[Frame]]:
    """Run ``[upstream recorder, processor, downstream recorder]``; what reached either end."""
    up, down = Recorder(FrameDirection.UPSTREAM), Recorder(FrameDirection.DOWNSTREAM)
    worker = PipelineWorker(
        Pipeline([up, processor, down]),
        params=PipelineParams(),
        enable_rtvi=False,
        enable_turn_tracking=False,
        idle_timeout_secs=None,
        cancel_on_idle_timeout=False,
    )
    started = asyncio.Event()
    worker.add_event_handler("on_pipeline_started", lambda *_: started.set())
    if isinstance(processor, OwnProcessProcessor):
        assert await processor.wait_ready()
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    await asyncio.wait_for(started.wait(), 30)
    await script(worker, up, down)
    await worker.queue_frame(EndFrame())
    await asyncio.wait_for(run, 30)
    return up.frames, down.frames


def texts(frames: list[Frame]) -> list[str]:
    return [f.text if isinstance(f, TextFrame) else type(f).__name__ for f in frames]


async def wait_for(recorder: Recorder, predicate: Callable[[list[Frame]], bool]) -> None:
    async def until() -> None:
        while not predicate(recorder.frames):
            recorder.arrived.clear()
            await recorder.arrived.wait()

    await asyncio.wait_for(until(), 20)


async def test_frames_cross_both_ways_unchanged_with_their_direction() -> None:
    tts = TTSAudioRawFrame(os.urandom(1920), 24000, 1, context_id="ctx-7")
    mic = InputAudioRawFrame(os.urandom(1920), 24000, 1)
    tagged = TextFrame("with metadata")
    tagged.metadata["turn"] = 3

    async def script(worker: PipelineWorker, up: Recorder, down: Recorder) -> None:
        for frame in (tts, mic, tagged):
            await worker.queue_frame(frame)
        await worker.queue_frame(TextFrame("from below"), FrameDirection.UPSTREAM)
        await wait_for(down, lambda f: len(f) >= 3)
        await wait_for(up, lambda f: len(f) >= 1)

    child = in_own_process(Passthrough)
    up, down = await drive(child, script)
    by_type = {type(f): f for f in down}
    got_tts, got_mic = by_type[TTSAudioRawFrame], by_type[InputAudioRawFrame]
    assert (got_tts.audio, got_tts.context_id, got_tts.sample_rate, got_tts.id) == (
        tts.audio,
        "ctx-7",
        24000,
        tts.id,
    )
    assert (got_mic.audio, got_mic.num_frames, got_mic.name) == (mic.audio, 960, mic.name)
    assert by_type[TextFrame].metadata == {"turn": 3}
    assert texts(up) == ["from below"]
    assert isinstance(down[-1], EndFrame)
    assert not child._child.is_alive() and child._child.exitcode == 0


@pytest.mark.parametrize("own", [False, True], ids=["in-process", "own-process"])
async def test_an_interruption_overtakes_and_drops_queued_frames_as_in_one_process(
    own: bool,
) -> None:
    async def script(worker: PipelineWorker, up: Recorder, down: Recorder) -> None:
        for i in range(12):
            await worker.queue_frame(TextFrame(f"t{i}"))
        await wait_for(
            down, lambda f: len(f) >= 2
        )  # t0, t1 through; the rest queued in the processor
        await worker.queue_frame(InterruptionFrame())
        await wait_for(down, lambda f: any(isinstance(x, InterruptionFrame) for x in f))
        for i in range(3):
            await worker.queue_frame(TextFrame(f"reply:{i}"))
        await wait_for(down, lambda f: texts(f)[-1:] == ["reply:2"])
        await wait_for(up, lambda f: len(f) >= 3)

    processor = in_own_process(SlowText, 0.05) if own else SlowText(0.05)
    up, down = await drive(processor, script)
    seq = texts(down)
    cut = seq.index("InterruptionFrame")
    before = seq[:cut]
    assert before == [f"t{i}" for i in range(len(before))] and 2 <= len(before) < 12, seq
    assert seq[cut + 1 :] == ["reply:0", "reply:1", "reply:2", "EndFrame"], seq
    assert texts(up) == ["replied:0", "replied:1", "replied:2"]


async def test_a_frame_that_cannot_be_pickled_is_one_error_naming_it_at_the_boundary() -> None:
    from tests.support.mp_processors import LockedFrame

    async def script(worker: PipelineWorker, up: Recorder, down: Recorder) -> None:
        await worker.queue_frame(LockedFrame())
        await wait_for(up, lambda f: len(f) >= 1)

    child = in_own_process(Passthrough)
    up, _ = await drive(child, script)
    assert child.failure is not None and child.failure.startswith(
        "in_own_process(Passthrough): LockedFrame cannot be sent to another process ("
    )
    assert [type(f).__name__ for f in up][:1] == ["ErrorFrame"] and up[0].error == child.failure
    assert up[0].processor is child


async def test_an_error_passing_through_the_child_keeps_its_processor() -> None:
    """The output's ErrorFrame on its way up through the child still names the output (the
    default script ends the session on a transport's failure by looking at that processor)."""
    origin = Passthrough()
    origin.failure = "the output WAV cannot be written"

    async def script(worker: PipelineWorker, up: Recorder, down: Recorder) -> None:
        error = ErrorFrame(origin.failure, exception=_Unpicklable("no"))
        error.processor = origin
        await worker.queue_frame(error, FrameDirection.UPSTREAM)
        await wait_for(up, lambda f: len(f) >= 1)

    child = in_own_process(Passthrough)
    up, _ = await drive(child, script)
    (error,) = [f for f in up if isinstance(f, ErrorFrame)]
    assert error.processor is origin and error.error == origin.failure
    assert child.failure is None


class _Unpicklable(Exception):
    def __reduce__(self) -> None:
        raise TypeError("not this one")


async def test_a_flush_drains_through_the_child() -> None:
    """``PipelineWorker.flush_pipeline`` (what ``worker.end()`` does first) sends a probe holding
    an asyncio.Event: it travels through the child in its place in the order, and comes back."""
    flushed: list[bool] = []

    async def script(worker: PipelineWorker, up: Recorder, down: Recorder) -> None:
        for i in range(5):
            await worker.queue_frame(TextFrame(f"t{i}"))
        flushed.append(await worker.flush_pipeline(timeout=20))
        assert texts(down.frames)[:5] == [f"t{i}" for i in range(5)], "the flush returned first"

    child = in_own_process(SlowText, 0.02)
    await drive(child, script)
    assert flushed == [True] and child.failure is None
