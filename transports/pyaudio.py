"""Microphone and speaker transports on PyAudio in callback mode.

Both streams run PortAudio callbacks on PortAudio's own thread, and the callbacks only move bytes:

* :class:`PyAudioInputTransport` — the callback hands each captured buffer to the loop with one
  ``loop.call_soon_threadsafe`` (no coroutine per callback); on the loop the buffer is resampled
  (when the device could not open at the pipeline rate) and queued as an ``InputAudioRawFrame``.
* :class:`PyAudioOutputTransport` — the callback returns ``playback.read(frame_count)``: a copy
  from the :class:`PlaybackBuffer`, silence when it is empty. Audio is resampled to the device
  rate on the loop before it enters the buffer, so the callback stays a copy. An
  ``InterruptionFrame`` clears the buffer, so the device is silent from its next period on; the
  per-item played counts are what the service truncates with.

The output stream is opened on StartFrame and started by the first queued audio (starting costs
~1 ms on PulseAudio, and the first callback follows at once): no pre-buffering, and the first
audio is not queued behind silence the host had already buffered. Once the buffer has been idle
for ``end_padding_secs`` (the host latency plus a period, at least 150 ms, so no tail is clipped)
the stream is stopped again, so a listening-only session costs no output callbacks.

``frames_per_buffer`` is the period (default: 10 ms for the speaker, 40 ms for the mic). A
shorter output period makes barge-in and first audio faster (both are bounded by one period plus
the host's own buffering; PortAudio keeps about three periods queued in PulseAudio) at the cost
of more callbacks per second (CPU) and a higher risk of underruns on a busy machine; a longer one
is the reverse. The mic period only delays what the server's VAD hears, by at most one period,
and the service sends 40 ms appends anyway, so 40 ms halves the mic's wake-ups for free.

Devices are chosen with :mod:`transports.devices` at construction time, so a missing, busy or
unsuitable device fails before the pipeline runs, with one :class:`TransportError` line.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pyaudio
from loguru import logger
from pipecat.frames.frames import CancelFrame, EndFrame, InputAudioRawFrame, StartFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_transport import TransportParams

from transports.buffered_output import BufferedOutputTransport
from transports.errors import TransportError
from transports.devices import (
    AudioDevice,
    Direction,
    choose_format,
    device_error,
    open_pyaudio,
    quiet_stderr,
    resolve_device,
)
from transports.resample import PcmResampler


# Default periods: the speaker's bounds how fast a barge-in silences it (bench: 10 ms gives the
# stock transport's stop time at the speaker with a better p99, 20 ms doubled it); the mic's only
# adds to the server VAD's own reaction, so it can be longer and cheaper (fewer callbacks).
DEFAULT_PERIOD_MS: dict[Direction, int] = {"input": 40, "output": 10}


RETRY_DEFAULT_DEVICE_S = 0.3  # before looking for a missing default device again
DEVICE_CALL_TIMEOUT_S = 3.0  # longest wait for PortAudio to stop or close a stream


def _abort(stream: pyaudio.Stream) -> None:
    """Pa_AbortStream: stop now, dropping what is queued (PyAudio's Stream does not expose it)."""
    pyaudio._portaudio.abort_stream(stream._stream)  # type: ignore[attr-defined]


async def _blocking(fn: Callable[[], None], what: str, timeout: float = DEVICE_CALL_TIMEOUT_S) -> None:
    """Run a blocking PortAudio call in a daemon thread; give up waiting after ``timeout``.

    A PortAudio call that never returns must not hang the pipeline's end (or, through the
    default executor, the interpreter's exit): the call is left behind with one warning.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if not done.done():
            done.set_exception(error) if error else done.set_result(None)

    def run() -> None:
        error: BaseException | None = None
        try:
            fn()
        except BaseException as exc:  # handed to the loop, raised there
            error = exc
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:  # the loop is gone: nobody is waiting any more
            pass

    threading.Thread(target=run, name=f"pyaudio-{what}", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout)
    except asyncio.TimeoutError:
        logger.warning(f"the audio device did not {what} within {timeout:.0f} s; going on without it")


class _Device:
    """A PyAudio instance, one resolved device and at most one stream on it."""

    def __init__(self, spec: int | str | None, direction: Direction, preferred_rate: int,
                 frames_per_buffer: int | None):
        self.direction = direction
        for attempt in (1, 2):
            self.pa = open_pyaudio()
            try:
                self.info: AudioDevice = resolve_device(self.pa, spec, direction)
                self.rate = choose_format(self.pa, self.info, direction, preferred_rate)
                break
            except TransportError:
                self.pa.terminate()
                if attempt == 2 or spec not in (None, ""):
                    raise
                # PortAudio lists devices once, at start: a sound server that was slow to
                # answer (seen once in ~25 runs on PulseAudio) gets a second look.
                time.sleep(RETRY_DEFAULT_DEVICE_S)
            except BaseException:
                self.pa.terminate()
                raise
        period_ms = DEFAULT_PERIOD_MS[direction]
        self.frames_per_buffer = frames_per_buffer or self.rate * period_ms // 1000
        self.stream: pyaudio.Stream | None = None
        self._terminated = False
        # stop(), cancel() and cleanup() may each close from their own worker thread; PortAudio
        # deadlocks if terminate() closes a stream another thread is closing.
        self._close_lock = threading.Lock()

    def open(self, callback, start: bool) -> None:
        """Open the callback stream (blocking: call it in a thread)."""
        kwargs = {"input": True, "input_device_index": self.info.index} \
            if self.direction == "input" else \
            {"output": True, "output_device_index": self.info.index}
        try:
            with quiet_stderr():
                self.stream = self.pa.open(format=pyaudio.paInt16, channels=1, rate=self.rate,
                                           frames_per_buffer=self.frames_per_buffer,
                                           stream_callback=callback, start=start, **kwargs)
        except (OSError, ValueError) as e:
            raise device_error(e, self.info, self.direction) from None

    def start(self) -> None:
        try:
            self.stream.start_stream()
        except OSError as e:
            raise device_error(e, self.info, self.direction) from None

    def pause(self) -> None:
        """Stop the stream, letting what the host already holds play out (blocking)."""
        if self.stream is not None and not self.stream.is_stopped():
            self.stream.stop_stream()

    def close(self) -> None:
        """Abort and close the stream, terminate PyAudio (blocking; idempotent; thread-safe).

        Aborting rather than stopping: Pa_StopStream waits for PortAudio's callback thread to
        end by itself, and with ALSA's pulse plugin that wait was seen to never end. Whatever
        the output still had to play has been played by then (``end_padding_secs``).
        """
        with self._close_lock:
            if self.stream is not None:
                stream, self.stream = self.stream, None
                try:
                    if not stream.is_stopped():
                        _abort(stream)
                finally:
                    stream.close()
            if not self._terminated:
                self._terminated = True
                self.pa.terminate()

    @property
    def latency(self) -> float:
        """PortAudio's reported stream latency in seconds (0 when no stream is open)."""
        if self.stream is None:
            return 0.0
        return (self.stream.get_input_latency() if self.direction == "input"
                else self.stream.get_output_latency())


class PyAudioInputTransport(BaseInputTransport):
    """A microphone: pushes ``InputAudioRawFrame`` s of ``frames_per_buffer`` each.

    Args:
        device: the device index, a name substring, or ``None`` for the default input.
        sample_rate: the rate of the pushed frames.
        preferred_rate: the device rate to try first (default: ``sample_rate``); if the device
            cannot do it, its default rate is used. Either way audio is resampled to
            ``sample_rate`` when the rates differ.
        frames_per_buffer: the period in device frames (default 40 ms).
        params: extra pipecat transport parameters (audio input is always enabled).
    """

    def __init__(self, device: int | str | None = None, *, sample_rate: int = 24000,
                 preferred_rate: int | None = None, frames_per_buffer: int | None = None,
                 params: TransportParams | None = None, **kwargs):
        self._device = _Device(device, "input", preferred_rate or sample_rate, frames_per_buffer)
        params = (params or TransportParams()).model_copy(update={
            "audio_in_enabled": True, "audio_in_sample_rate": sample_rate,
            "audio_in_channels": 1})
        super().__init__(params, **kwargs)
        self.device = self._device.info
        """The :class:`AudioDevice` in use."""
        self.device_rate = self._device.rate
        self.overflows = 0
        """Callbacks that reported lost input (the loop or the host fell behind)."""
        # LQ: 6 ms of delay and near-steady 20 ms frames; HQ delays 30 ms and delivers 40 ms
        # bursts every other callback (soxr's block size), which a microphone should not do.
        self._resampler = (PcmResampler(self.device_rate, sample_rate, quality="LQ")
                           if self.device_rate != sample_rate else None)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def setup(self, setup: FrameProcessorSetup):
        """Open the stream (not started yet)."""
        await super().setup(setup)
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._device.open, self._callback, False)

    async def start(self, frame: StartFrame):
        """Create pipecat's audio queue, then start capturing."""
        await super().start(frame)
        await self.set_transport_ready(frame)
        await asyncio.to_thread(self._device.start)

    async def stop(self, frame: EndFrame):
        """Stop capturing and release the device."""
        await _blocking(self._device.close, "close")
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame):
        """Stop capturing and release the device."""
        await _blocking(self._device.close, "close")
        await super().cancel(frame)

    async def cleanup(self):
        """Release the device even if the pipeline never started or ended abruptly."""
        await _blocking(self._device.close, "close")
        await super().cleanup()

    def _callback(self, in_data, frame_count, time_info, status):
        """PortAudio thread: hand the bytes to the loop, nothing else."""
        if status & pyaudio.paInputOverflow:
            self.overflows += 1
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_audio, in_data)
        return None, pyaudio.paContinue

    def _on_audio(self, data: bytes) -> None:
        """Loop thread: resample if needed and queue the frame for pipecat's audio task."""
        if self._resampler:
            data = self._resampler.resample(data)
            if not data:
                return
        frame = InputAudioRawFrame(audio=data, sample_rate=self.sample_rate, num_channels=1)
        # push_audio_frame() is a coroutine that only does this: avoid a task per callback.
        queue = getattr(self, "_audio_in_queue", None)
        if queue is None:
            self.create_task(self.push_audio_frame(frame))
        elif self._params.audio_in_enabled and not self._paused:
            queue.put_nowait(frame)


class PyAudioOutputTransport(BufferedOutputTransport):
    """A speaker: a callback stream draining :attr:`playback` (see the module docstring).

    Args:
        device: the device index, a name substring, or ``None`` for the default output.
        preferred_rate: the device rate to try first (else the device's default rate is used
            and incoming audio is resampled to it before it is queued).
        frames_per_buffer: the period in device frames (default 10 ms).
        max_seconds: how much audio :attr:`playback` may hold.
        params: extra pipecat transport parameters.
    """

    def __init__(self, device: int | str | None = None, *, preferred_rate: int = 24000,
                 frames_per_buffer: int | None = None, max_seconds: float = 600.0,
                 params: TransportParams | None = None, **kwargs):
        self._device = _Device(device, "output", preferred_rate, frames_per_buffer)
        super().__init__(sample_rate=self._device.rate, max_seconds=max_seconds,
                         params=params, **kwargs)
        self.device = self._device.info
        """The :class:`AudioDevice` in use."""
        self.frames_per_buffer = self._device.frames_per_buffer
        self.device_underflows = 0
        """Callbacks whose status reported an output underflow (host-side)."""
        self.stream_starts = 0
        self._running = False
        self._stream_task: asyncio.Task | None = None

    @property
    def latency(self) -> float:
        """PortAudio's reported output latency of the open stream, in seconds."""
        return self._device.latency

    async def _open_device(self) -> None:
        await asyncio.to_thread(self._device.open, self._callback, False)
        # pitfall: ALSA->pulse drops the last ~40-60 ms if stopped right after the last buffer
        period = self.frames_per_buffer / self.playback.sample_rate
        self.end_padding_secs = max(self.end_padding_secs, self.latency + period)
        self._sync_stream()

    # The stream runs only while there is audio to play (plus end_padding_secs of silence):
    # starting takes ~1 ms and the host's buffer is empty then, so the first audio is not queued
    # behind buffered silence, and an idle speaker costs no callbacks.

    def _queue_audio(self, pcm: bytes, item_id: str | None) -> None:
        super()._queue_audio(pcm, item_id)
        if not self._running:
            self._sync_stream()

    def _playback_idle(self) -> None:
        self._sync_stream()

    def _sync_stream(self) -> None:
        if self._device_open or self._device.stream is not None:
            if self._stream_task is None or self._stream_task.done():
                self._stream_task = self.create_task(self._run_stream_state())

    async def _run_stream_state(self) -> None:
        """Start the stream when audio is queued; stop it once idle for end_padding_secs."""
        while True:
            if not self.playback.is_idle and not self._running:
                await asyncio.to_thread(self._device.start)
                self._running = True
                self.stream_starts += 1
            elif self.playback.is_idle and self._running:
                await asyncio.sleep(self.end_padding_secs)
                if not self.playback.is_idle:
                    continue
                await _blocking(self._device.pause, "stop")
                self._running = False
            else:
                return

    async def _close_device(self, abort: bool) -> None:
        if self._stream_task:
            await self.cancel_task(self._stream_task)
            self._stream_task = None
        if self._running and not abort:
            # The last samples are still in the host's buffers: let them out (the stream is
            # aborted on close, which drops whatever is still queued).
            await asyncio.sleep(self.end_padding_secs)
        self._running = False
        await _blocking(self._device.close, "close")

    async def cleanup(self):
        """Release the device (and PyAudio) even if the pipeline never started."""
        await super().cleanup()
        if self._stream_task:
            await self.cancel_task(self._stream_task)
        await _blocking(self._device.close, "close")

    def _callback(self, in_data, frame_count, time_info, status):
        """PortAudio thread: copy the next period out of the playback buffer."""
        if status & pyaudio.paOutputUnderflow:
            self.device_underflows += 1
        return self.playback.read(frame_count), pyaudio.paContinue
