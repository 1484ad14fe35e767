"""The default agent pipeline: ``build_agent_pipeline(...)`` for composition and ``main()``.

::

    input transport -> [recorder, input processors] -> VoiceLiveAgentService
        -> SessionLogProcessor -> TechnicalLogProcessor -> SessionReportProcessor
        -> [your processors] -> output transport

``python -m pipelines.agent`` (console script ``voicelive-agent``) runs it from the microphone to
the speaker, or from ``--input-wav`` to ``--output-wav``. It quits on ``q`` + Enter, Ctrl-C and
SIGTERM (socket closed with 1000, logs flushed); with ``--input-wav`` it ends by itself once the
input is over and the agent has been idle for ``--idle-grace`` seconds.
"""

from __future__ import annotations

from loguru import logger

logger.remove()  # pipecat logs to stderr at DEBUG on import; the script configures its own sinks

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, NoReturn  # noqa: E402

from pipecat.frames.frames import EndFrame, ErrorFrame, InputTextRawFrame  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameProcessor  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from pipelines.config import AgentConfig, parse_config, shorten  # noqa: E402
from pipelines.console import LiveView, wants_live_view  # noqa: E402
from pipelines.processes import exit_without_finalizing  # noqa: E402
from processors.console import error, install_last_resort, say  # noqa: E402
from processors.echo_reference import EchoReference  # noqa: E402
from processors.logsetup import configure_console  # noqa: E402
from processors.recorder import ConversationRecorder  # noqa: E402
from processors.session_log import SessionLogProcessor, session_timestamp  # noqa: E402
from processors.session_report import SessionReportProcessor, report_path, save_report  # noqa: E402
from processors.technical_log import TechnicalLogProcessor  # noqa: E402
from processors.voicelive.connection import ConnectionSettings, Credentials  # noqa: E402
from processors.voicelive.endpoint import Endpoint, Model  # noqa: E402
from processors.voicelive.errors import ConfigError  # noqa: E402
from processors.voicelive.service import VoiceLiveAgentService  # noqa: E402
from processors.voicelive.wire import session_update  # noqa: E402

SAMPLE_RATE = 24000
STOP_DEADLINE_S = 1.0  # Ctrl-C, SIGTERM or q end the process within this, whatever the state


@dataclass
class AgentPipeline:
    """A built pipeline, its worker and the pieces a caller may want to reach."""

    pipeline: Pipeline
    worker: PipelineWorker
    service: VoiceLiveAgentService
    session_log: SessionLogProcessor
    technical_log: TechnicalLogProcessor
    input: FrameProcessor
    output: FrameProcessor
    transport_failure: str | None = None
    """Why a transport, or another processor with a ``failure`` (one in its own process), stopped
    working (e.g. the output WAV could not be written, the child process crashed), or None."""
    report: SessionReportProcessor | None = None
    recorder: ConversationRecorder | None = None

    @property
    def failure(self) -> str | None:
        """The one-line reason the session failed, or None."""
        return self.service.failure or self.transport_failure

    async def _on_pipeline_error(self, worker: PipelineWorker, frame: ErrorFrame) -> None:
        """A transport (or a processor in its own process) that can no longer do its job ends
        the session: going on would only lose what the user says and hears."""
        processor = frame.processor
        reason = getattr(processor, "failure", None)
        if processor is not self.service and reason and self.transport_failure is None:
            self.transport_failure = reason
            await self.cancel(reason)

    async def run(self, *, end_after_input: bool | None = None, idle_grace_s: float = 1.5) -> int:
        """Run until the worker ends; 0 on a clean end, 1 after a fatal error.

        With ``end_after_input`` (default: when the input has an ``input_done`` event), end once
        the input is over and the agent has been idle for ``idle_grace_s``.
        """
        for processor in self.pipeline.processors:
            wait_ready = getattr(processor, "wait_ready", None)  # a processor in its own process
            if wait_ready is not None and not await wait_ready():
                self.transport_failure = processor.failure
                for other in self.pipeline.processors:
                    if hasattr(other, "wait_ready"):
                        await other.shutdown()
                return 1
        # Every task the run creates inherits the session key: its lines reach its own log only.
        with logger.contextualize(session=self.technical_log.session):
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(self.worker)
            done = getattr(self.input, "input_done", None)
            watcher = None
            if (end_after_input is None and done is not None) or end_after_input:
                watcher = asyncio.create_task(self._end_when_idle(done, idle_grace_s))
            try:
                await runner.run()
            finally:
                if watcher is not None:
                    watcher.cancel()
        return 0 if self.failure is None else 1

    async def _end_when_idle(self, done: asyncio.Event | None, grace: float) -> None:
        if done is not None:
            await done.wait()
            self.service.input_finished()
        playback = getattr(self.output, "playback", None)
        idle_since: float | None = None
        while True:
            idle = not self.service.busy and (playback is None or playback.is_idle)
            now = time.monotonic()
            if not idle:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since >= grace:
                break
            await asyncio.sleep(0.05)
        logger.info("Input finished and the agent is idle: ending the session")
        await self.end()

    def say(self, text: str) -> None:
        """Send ``text`` as a typed user turn (``InputTextRawFrame``); the agent answers it."""
        asyncio.ensure_future(self.worker.queue_frame(InputTextRawFrame(text=text)))

    async def end(self) -> None:
        """End gracefully: queued audio plays out, the socket closes with 1000, logs flush."""
        await self.worker.queue_frame(EndFrame())

    async def cancel(self, reason: str = "stopped") -> None:
        """Stop now (Ctrl-C, SIGTERM): the socket still closes with 1000 and logs flush."""
        await self.worker.cancel(reason=reason)


def build_agent_pipeline(
    config: AgentConfig,
    *,
    input: FrameProcessor,
    output: FrameProcessor,
    processors: list[FrameProcessor] | None = None,
    endpoint: Endpoint | None = None,
    timestamp: str | None = None,
    input_processors: list[FrameProcessor] | None = None,
) -> AgentPipeline:
    """Assemble the default agent pipeline around ``input`` and ``output`` transports.

    ``processors`` go between the logging processors and the output; ``input_processors``
    between the input and the service (they see the microphone audio). ``endpoint`` overrides the
    configured one (the embedded local server passes its own). If the output has a ``playback``
    buffer, the service uses it to truncate interrupted answers at what was really heard.
    """
    ep = endpoint or config.endpoint
    if ep is None:
        raise ConfigError(
            "no endpoint: set AZURE_VOICE_LIVE_ENDPOINT, pass --endpoint, or use --local"
        )
    settings = ConnectionSettings(
        endpoint=ep,
        target=config.target,
        api_version=config.api_version,
        credentials=Credentials(api_key=config.api_key),
        debug=config.debug,
        client_echo_reference=config.session_config.client_echo_reference,
    )
    playback = getattr(output, "playback", None)
    service = VoiceLiveAgentService(
        settings,
        config.session_config,
        playback=playback,
        greeting=config.greeting,
        tool_timeout_s=config.tool_timeout_s,
    )
    for name, handler in (config.tools.handlers() if config.tools else {}).items():
        service.register_function(name, handler)
    stamp = timestamp or session_timestamp()
    session_log = SessionLogProcessor(
        config.log_dir,
        agent=config.agent_label,
        project=config.project_name,
        session_config=session_update(config.session_config.to_wire()),
        timestamp=stamp,
    )
    technical_log = TechnicalLogProcessor(
        Path(config.log_dir) / "voicelive.log",
        level="DEBUG" if config.verbose or config.debug else "INFO",
        frames=config.debug,
        session=stamp.rpartition("_")[2] or None,
    )
    model = config.target.model if isinstance(config.target, Model) else None
    report = SessionReportProcessor(agent=config.agent_label, model=model)
    taps = list(input_processors or [])
    recorder = ConversationRecorder(config.record, playback) if config.record is not None else None
    taps = [recorder, *taps] if recorder is not None else taps
    if config.session_config.client_echo_reference:  # stereo: the microphone + what was played
        taps.append(EchoReference(playback))
    pipeline = Pipeline(
        [input, *taps, service, session_log, technical_log, report, *(processors or []), output]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        enable_rtvi=False,
        enable_turn_tracking=False,
        idle_timeout_secs=None,
        cancel_on_idle_timeout=False,
        cancel_timeout_secs=STOP_DEADLINE_S,  # pipecat's 20 s would outlast a Ctrl-C's patience
    )
    app = AgentPipeline(
        pipeline,
        worker,
        service,
        session_log,
        technical_log,
        input,
        output,
        report=report,
        recorder=recorder,
    )
    worker.add_event_handler("on_pipeline_error", app._on_pipeline_error)
    return app


def make_transports(config: AgentConfig) -> tuple[FrameProcessor, FrameProcessor]:
    """WAV transports where a WAV path is given, PyAudio ones otherwise (with
    ``--audio-process``, both PyAudio streams run in one lean audio child process)."""
    from transports.wav import WavInputTransport, WavOutputTransport

    audio = None
    if config.audio_process and (config.input_wav is None or config.output_wav is None):
        from transports.audio_process import AudioProcess

        audio = AudioProcess()
    try:
        if config.input_wav is not None:
            input_t: FrameProcessor = WavInputTransport(
                config.input_wav, sample_rate=config.session_config.input_sample_rate
            )
        else:
            from transports.pyaudio import PyAudioInputTransport

            # the microphone at the session's rate when the device can do it: resampled once at most
            input_t = PyAudioInputTransport(
                device=config.input_device,
                audio_process=audio or False,
                sample_rate=config.session_config.input_sample_rate,
            )
        if config.output_wav is not None:
            output_t: FrameProcessor = WavOutputTransport(config.output_wav)
        else:
            from transports.pyaudio import PyAudioOutputTransport

            output_t = PyAudioOutputTransport(
                device=config.output_device, audio_process=audio or False
            )
    except BaseException:
        if audio is not None:
            audio.close()
        raise
    return input_t, output_t


def _watch_keyboard(loop: asyncio.AbstractEventLoop, quit_cb: Any, text_cb: Any = None) -> None:
    """'q' + Enter quits, and so does Ctrl-D on a terminal; any other non-empty line is handed to
    ``text_cb`` (a typed user turn). A closed, absent or redirected stdin (``</dev/null``, a pipe)
    never quits by ending."""

    def read() -> None:
        try:
            tty = sys.stdin.isatty()
            for line in sys.stdin:
                if line.strip().lower() == "q":
                    break
                if line.strip() and text_cb is not None:
                    loop.call_soon_threadsafe(text_cb, line.strip())
            else:
                if not tty:
                    return
        except (OSError, ValueError):
            return
        loop.call_soon_threadsafe(quit_cb)

    if sys.stdin is not None and not sys.stdin.closed:
        threading.Thread(target=read, name="keyboard", daemon=True).start()


class _Stopper:
    """Ctrl-C, SIGTERM and ``q``: the first stops the session gracefully, bounded by a watchdog;
    a second signal exits at once (it is never ignored).

    Exit codes follow the shell's convention for a run ended by a signal, 128 + its number: 130
    after Ctrl-C, 143 after SIGTERM; ``q`` is an ordinary end (0).
    """

    def __init__(self, app: AgentPipeline, loop: asyncio.AbstractEventLoop) -> None:
        self._app = app
        self._loop = loop
        self.exit_code = 0
        self._requested = False
        self._signalled = False
        self.finished = False
        """Set once the session is over and its logs closed: only the interpreter's exit remains."""

    def on_signal(self, signum: int, _frame: object = None) -> None:
        """A ``signal.signal`` handler (main thread, between two bytecodes)."""
        code = 128 + signum
        if self._signalled or self._requested:
            self._exit_now(code, "a second stop request: exiting at once")
        self._signalled = True
        try:
            self._loop.call_soon_threadsafe(self.request, signal.Signals(signum).name, code)
        except RuntimeError:  # the loop is closed: the session is over, only the exit remains
            self._exit_now(code, None)

    def request(self, reason: str, code: int) -> None:
        if self._requested:
            return
        self._requested = True
        self.exit_code = code
        # A thread, not the event loop: the deadline must hold even if the loop is stuck.
        watchdog = threading.Timer(STOP_DEADLINE_S, self._deadline, (code,))
        watchdog.daemon = True
        watchdog.start()
        asyncio.ensure_future(self._app.cancel(reason))

    def _deadline(self, code: int) -> None:
        late = (
            None
            if self.finished
            else f"the session did not stop within {STOP_DEADLINE_S:.0f} s: exiting now"
        )
        self._exit_now(code, late)

    @staticmethod
    def _exit_now(code: int, why: str | None) -> None:
        sys.stdout.flush()
        if why:
            error(why)
        os._exit(code)


async def run_agent(config: AgentConfig, processors: list[FrameProcessor] | None = None) -> int:
    """Run the default script's session (``processors`` between the logging processors and the
    output); returns the process exit code."""
    from transports.errors import TransportError

    async with contextlib.AsyncExitStack() as stack:
        endpoint = config.endpoint
        if config.local:  # in its own process: its VAD/STT/TTS never compete with our audio
            from localserver.process import LocalServerError, local_endpoint

            try:
                endpoint = await stack.enter_async_context(local_endpoint())
            except LocalServerError as exc:
                error(str(exc))
                return 1
        try:
            input_t, output_t = make_transports(config)
        except TransportError as exc:
            error(str(exc))
            return 2
        view = LiveView() if wants_live_view(config.plain) else None
        app = build_agent_pipeline(
            config,
            input=input_t,
            output=output_t,
            endpoint=endpoint,
            input_processors=view.input_processors() if view else None,
            processors=[*(processors or []), *(view.processors() if view else [])],
        )
        if view is not None:
            view.attach(app)
        try:
            app.technical_log.attach()
            app.session_log.open_logs()
        except OSError as exc:
            error(
                f"cannot write the logs in '{config.log_dir}' ({exc.strerror or exc}): "
                "choose another --log-dir"
            )
            return 2
        if config.agent_label is not None:
            say(f"Using agent: {config.agent_label}")
            say(f"Project name: {config.project_name}")
        loop = asyncio.get_running_loop()
        stop = _Stopper(app, loop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Not loop.add_signal_handler: that one is removed when the loop closes, and a
            # second Ctrl-C during the teardown would then be a KeyboardInterrupt.
            signal.signal(sig, stop.on_signal)

        def quit_by_user() -> None:
            say("Quitting the chat...")  # the quickstart's line, with or without the live view
            stop.request("quit by user", 0)

        if view is None or not view.watch_keyboard(loop, quit_by_user, app.say):
            _watch_keyboard(loop, quit_by_user, app.say)
        say("Starting the chat ...")
        if config.input_wav is None:
            say("Press 'q' and Enter to quit the chat; type anything else to say it to the agent.")
        try:
            if view is not None:
                view.start()
            code = await app.run(idle_grace_s=config.idle_grace_s)
        finally:
            if view is not None:
                view.stop()
        if app.failure is not None:
            error(app.failure)
        say("Chat done.")
        report_file = report_path(app.session_log.session_log_path)
        say(await save_report(app.report, report_file, app.failure))
        lost_logs = app.session_log.write_errors
        lost_logs += [app.technical_log.write_error] if app.technical_log.write_error else []
        if app.recorder is not None and app.recorder.recording.error:
            error(app.recorder.recording.error)
            lost_logs.append(app.recorder.recording.error)
        stop.finished = True
        return code or (1 if lost_logs else stop.exit_code)


def main(
    argv: list[str] | None = None, processors: Callable[[], list[FrameProcessor]] | None = None
) -> int:
    """Entry point of ``python -m pipelines.agent`` / ``voicelive-agent``; ``processors`` builds
    extra processors for the default pipeline once the configuration is valid."""
    install_last_resort()
    configure_console()
    try:
        config, args = parse_config(argv)
    except ConfigError as exc:
        error(shorten(str(exc)))
        return 2
    if args.list_devices:
        from transports.devices import print_devices
        from transports.errors import TransportError

        try:
            print_devices()
        except TransportError as exc:
            error(str(exc))
            return 2
        return 0
    if args.check_devices:
        from pipelines.devcheck import check_devices

        return check_devices(config.input_device, config.output_device)
    configure_console(verbose=config.verbose)
    try:
        code = asyncio.run(run_agent(config, processors() if processors is not None else None))
    except KeyboardInterrupt:
        return 130
    return code


def cli() -> NoReturn:
    """The console script ``voicelive-agent``: :func:`main`, then an exit that spares the
    interpreter's finalization (see :func:`pipelines.processes.exit_without_finalizing`)."""
    exit_without_finalizing(main())


if __name__ == "__main__":
    cli()
