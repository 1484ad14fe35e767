"""Run one conversation of a batch inside a worker process, and write its files.

``<out>/<name>/`` receives what the default script writes for a session (session log, events
JSONL, technical log) plus ``reply.wav`` (the agent as heard: the speaker's timeline) and
``report.json`` (the turns, with latency, answer length, interruptions; reconnects, errors and the
usage totals). A WAV conversation is played as the microphone in real time; a ``.txt``
conversation sends one typed user turn per line, each once the previous answer has played.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame, InputTextRawFrame, StartFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipelines.agent import AgentPipeline, build_agent_pipeline
from pipelines.batch.jobs import Job, Result
from processors.logfiles import make_private_dir
from processors.session_report import write_report
from transports.wav import WavInputTransport, WavOutputTransport

ANSWER_START_TIMEOUT_S = 15.0  # a typed turn whose answer has not begun by then is skipped
ANSWER_END_TIMEOUT_S = 120.0  # an answer still running after this is not waited for


class TypedTurns(FrameProcessor):
    """The input side of a ``.txt`` conversation: one ``InputTextRawFrame`` per line, each sent
    once the session is ready and the previous answer has played out."""

    def __init__(self, lines: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lines = lines
        self.input_done = asyncio.Event()
        self.app: AgentPipeline | None = None
        self._task: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass every frame on; the ``StartFrame`` starts feeding the lines."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame) and self._task is None:
            self._task = self.create_task(self._feed(), name="typed-turns")

    async def cleanup(self) -> None:
        """Stop feeding lines (the pipeline is ending)."""
        if self._task is not None:
            await self.cancel_task(self._task, timeout=1.0)
        await super().cleanup()

    async def _wait(self, condition: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _feed(self) -> None:
        assert self.app is not None
        service, playback = self.app.service, getattr(self.app.output, "playback", None)
        if not await self._wait(lambda: service.session.ready, ANSWER_START_TIMEOUT_S):
            self.input_done.set()
            return
        for line in self.lines:
            before = service.session.active_response
            await self.push_frame(InputTextRawFrame(text=line))
            started = await self._wait(
                lambda before=before: service.session.active_response not in (None, before),
                ANSWER_START_TIMEOUT_S,
            )
            if not started:
                logger.warning(f"no answer began within {ANSWER_START_TIMEOUT_S:.0f} s of {line!r}")
                continue

            def answered() -> bool:
                return service.session.active_response is None and (
                    playback is None or playback.is_idle
                )

            await self._wait(answered, ANSWER_END_TIMEOUT_S)
        self.input_done.set()


def _build(job: Job) -> AgentPipeline:
    make_private_dir(job.out_dir)  # it holds the conversation's logs
    config = dataclasses.replace(
        job.config, log_dir=job.out_dir, input_wav=None, output_wav=job.out_dir / "reply.wav"
    )
    input_t: FrameProcessor
    if job.kind == "wav":
        input_t = WavInputTransport(job.path)
    else:
        input_t = TypedTurns(job.lines)
    output_t = WavOutputTransport(job.out_dir / "reply.wav")
    app = build_agent_pipeline(config, input=input_t, output=output_t)
    if isinstance(input_t, TypedTurns):
        input_t.app = app
    return app


async def run_conversation(job: Job, cancelled: asyncio.Event) -> Result:
    """Run ``job`` to its end (or until ``cancelled`` is set); never raises."""
    started = time.monotonic()
    try:
        app = _build(job)
        app.technical_log.attach()
        app.session_log.open_logs()
    except Exception as exc:  # a conversation that cannot even start is one failed row
        return Result(job.name, False, f"{exc.__class__.__name__}: {exc}", seconds=0.0)
    watcher = asyncio.create_task(_cancel_when(cancelled, app))
    try:
        code = await app.run(idle_grace_s=job.config.idle_grace_s)
        reason = app.failure or (None if code == 0 else f"ended with code {code}")
        if cancelled.is_set() and reason is None:
            reason = "cancelled (Ctrl-C)"
    except Exception as exc:
        reason = f"{exc.__class__.__name__}: {exc}"
    finally:
        watcher.cancel()
    report = {
        "conversation": job.name,
        "input": str(job.path),
        "kind": job.kind,
        "ok": reason is None,
        **(app.report.report(failure=reason) if app.report is not None else {"failure": reason}),
    }
    try:
        await asyncio.to_thread(write_report, job.out_dir / "report.json", report)
    except OSError as exc:
        reason = reason or f"report.json cannot be written ({exc.strerror or exc})"
    return Result(
        job.name, reason is None, reason, report, seconds=round(time.monotonic() - started, 2)
    )


async def _cancel_when(cancelled: asyncio.Event, app: AgentPipeline) -> None:
    await cancelled.wait()
    await app.cancel("batch cancelled")
