"""The default agent pipeline in this process against the embedded local server, for tests.

:func:`local_session` starts the local server, builds the pipeline with WAV transports (a silent
microphone unless a WAV is given, the speaker recorded to ``out.wav``) and a :class:`FrameWatch`
that tests wait on (never sleeping), runs it in a task, and ends it cleanly on exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from localserver.server import start_local_server
from pipelines.agent import AgentPipeline, build_agent_pipeline
from pipelines.config import parse_config
from processors.voicelive.endpoint import Endpoint
from tests.support.audio import write_wav
from transports.wav import WavInputTransport, WavOutputTransport


class FrameWatch(FrameProcessor):
    """Passes every frame on and keeps the downstream ones, to wait on."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []
        self._changed = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            self.frames.append(frame)
            self._changed.set()
        await self.push_frame(frame, direction)

    def of_type(self, *types: type) -> list[Frame]:
        return [f for f in self.frames if isinstance(f, types)]

    async def wait_for(
        self, predicate: Callable[[list[Frame]], bool], timeout: float = 30.0
    ) -> None:
        """Wait until ``predicate(frames)`` holds; TimeoutError otherwise."""

        async def wait() -> None:
            while not predicate(self.frames):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)


@dataclass
class LocalSession:
    app: AgentPipeline
    watch: FrameWatch
    dir: Path

    @property
    def session_log(self) -> str:
        return next((self.dir / "logs").glob("session_*.log")).read_text(encoding="utf-8")

    @property
    def events_path(self) -> Path:
        return next((self.dir / "logs").glob("events_*.jsonl"))


@asynccontextmanager
async def local_session(
    tmp: Path,
    argv: list[str] | None = None,
    *,
    input_wav: Path | None = None,
    processors: list[FrameProcessor] | None = None,
) -> AsyncIterator[LocalSession]:
    """Run the default pipeline (``--local`` plus ``argv``) until the block ends, then end it."""
    server = await start_local_server()
    try:
        if input_wav is None:
            input_wav = write_wav(tmp / "silence.wav", bytes(2 * 24000))
        config, _ = parse_config(["--local", "--log-dir", str(tmp / "logs"), *(argv or [])], env={})
        watch = FrameWatch()
        app = build_agent_pipeline(
            config,
            input=WavInputTransport(input_wav),
            output=WavOutputTransport(tmp / "out.wav"),
            processors=[*(processors or []), watch],
            endpoint=Endpoint.parse(server.url),
        )
        run = asyncio.create_task(app.run(end_after_input=False))
        try:
            yield LocalSession(app, watch, tmp)
        finally:
            await app.end()
            await asyncio.wait_for(run, 20)
    finally:
        await server.close()
