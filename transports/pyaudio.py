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

The output stream is opened on StartFrame and run by a :class:`transports.streams.OutputDriver`:
its control thread starts the stream when audio is queued (no executor hop, no pre-buffered
silence ahead of the first audio), aborts it on an ``InterruptionFrame`` right after the buffer is
emptied (so what PortAudio and PulseAudio still hold is dropped too: silent at the speaker within
a few ms), and aborts it once the buffer has been idle for ``end_padding_secs`` (the host latency
plus a period, at least 150 ms, so no tail is clipped): a listening-only session costs no output
callbacks. The played counts are what the callback handed out, so after a barge-in they include
the few ms the abort dropped from the host.

``frames_per_buffer`` is the period (default: 10 ms for the speaker, 40 ms for the mic). A
shorter output period makes first audio faster (bounded by one period plus the host's own
buffering; PortAudio keeps about three periods queued in PulseAudio) at the cost
of more callbacks per second (CPU) and a higher risk of underruns on a busy machine; a longer one
is the reverse. The mic period only delays what the server's VAD hears, by at most one period,
and the service sends 40 ms appends anyway, so 40 ms halves the mic's wake-ups for free.

Devices are chosen with :mod:`transports.devices` at construction time, so a missing, busy or
unsuitable device fails before the pipeline runs, with one :class:`TransportError` line.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pyaudio
from loguru import logger
from pipecat.frames.frames import CancelFrame, EndFrame, InputAudioRawFrame, StartFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_transport import TransportParams

from transports.audio_process import AudioProcess, OpenedDevice
from transports.buffered_output import BufferedOutputTransport
from transports.pcm import PcmResampler
from transports.pipecat_internals import queue_input_audio
from transports.shared_playback import SharedPlayback
from transports.shm_ring import IN_HOST_OVERFLOWS, IN_OVERFLOWS, STARTS, UNDERFLOWS
from transports.streams import CAPTURED_AT, INPUT, Device, OutputDriver, device_time

DEVICE_CALL_TIMEOUT_S = 3.0  # longest wait for PortAudio to stop or close a stream


async def _blocking(
    fn: Callable[[], None], what: str, timeout: float = DEVICE_CALL_TIMEOUT_S
) -> None:
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
    except TimeoutError:
        logger.warning(
            f"the audio device did not {what} within {timeout:.0f} s; going on without it"
        )


def _audio_process(option: AudioProcess | bool | None) -> tuple[AudioProcess | None, bool]:
    """(the audio process to use, whether this transport owns it) for an ``audio_process`` arg."""
    if isinstance(option, AudioProcess):
        return option, False
    return (AudioProcess(), True) if option else (None, False)


def _open_in_child(audio: AudioProcess, owned: bool, *args) -> OpenedDevice:
    try:
        return audio.open_device(*args)
    except BaseException:
        if owned:
            audio.close()
        raise


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
        audio_process: run the stream in an audio child process
            (:class:`~transports.audio_process.AudioProcess`): ``True`` for one of its own, or
            one shared with the output transport.
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        sample_rate: int = 24000,
        preferred_rate: int | None = None,
        frames_per_buffer: int | None = None,
        params: TransportParams | None = None,
        audio_process: AudioProcess | bool = False,
        **kwargs,
    ):
        self._audio, owned = _audio_process(audio_process)
        rate = preferred_rate or sample_rate
        if self._audio is not None:
            opened = _open_in_child(self._audio, owned, "input", device, rate, frames_per_buffer)
            self._device = None
            info, device_rate = opened.info, opened.rate
        else:
            self._device = Device(device, "input", rate, frames_per_buffer)
            info, device_rate = self._device.info, self._device.rate
        params = (params or TransportParams()).model_copy(
            update={
                "audio_in_enabled": True,
                "audio_in_sample_rate": sample_rate,
                "audio_in_channels": 1,
            }
        )
        super().__init__(params, **kwargs)
        self.device = info
        """The :class:`AudioDevice` in use."""
        self.device_rate = device_rate
        self._overflows = 0
        # LQ: 6 ms of delay and near-steady 20 ms frames; HQ delays 30 ms and delivers 40 ms
        # bursts every other callback (soxr's block size), which a microphone should not do.
        self._resampler = (
            PcmResampler(self.device_rate, sample_rate, quality="LQ")
            if self.device_rate != sample_rate
            else None
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._period_bytes = 2 * (
            opened.frames_per_buffer if self._audio else self._device.frames_per_buffer
        )
        self._released = False

    @property
    def overflows(self) -> int:
        """Captured buffers lost (the host, or the audio process's ring, overflowed)."""
        if self._audio is not None:
            h = self._audio.shared.h
            return h[IN_OVERFLOWS] + h[IN_HOST_OVERFLOWS]
        return self._overflows

    async def setup(self, setup: FrameProcessorSetup):
        """Open the stream (not started yet)."""
        await super().setup(setup)
        self._loop = asyncio.get_running_loop()
        if self._audio is not None:
            self._audio.on_mic = self._on_mic
            self._audio.attach(self._loop)
        else:
            await asyncio.to_thread(self._device.open, self._callback, False)

    async def start(self, frame: StartFrame):
        """Create pipecat's audio queue, then start capturing."""
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._audio is not None:
            self._audio.send(b"i")
        else:
            await asyncio.to_thread(self._device.start)

    async def stop(self, frame: EndFrame):
        """Stop capturing and release the device."""
        await self._close()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame):
        """Stop capturing and release the device."""
        await self._close()
        await super().cancel(frame)

    async def cleanup(self):
        """Release the device even if the pipeline never started or ended abruptly."""
        await self._close()
        await super().cleanup()

    async def _close(self) -> None:
        if self._audio is None:
            await _blocking(self._device.close, "close")
        elif not self._released:
            self._released = True
            self._audio.on_mic = None
            await self._audio.aclose()

    def _on_mic(self) -> None:
        """Loop thread: the audio process captured more; push it a period at a time, each
        with when it was captured (the child's ADC times, as in one process)."""
        shared = self._audio.shared
        start, data = shared.in_read()
        step, bytes_per_s = self._period_bytes, 2 * self.device_rate
        for at in range(0, len(data), step):
            self._on_audio(data[at : at + step], shared.in_captured_at(start + at, bytes_per_s))

    def _callback(self, in_data, frame_count, time_info, status):
        """PortAudio thread: hand the bytes to the loop, nothing else."""
        if status & pyaudio.paInputOverflow:
            self._overflows += 1
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_audio, in_data, device_time(time_info, INPUT))
        return None, pyaudio.paContinue

    def _on_audio(self, data: bytes, captured_at: float | None = None) -> None:
        """Loop thread: resample if needed and queue the frame for pipecat's audio task
        (``captured_at``: when the ADC captured its first frame, in its metadata)."""
        if self._resampler:
            data = self._resampler.resample(data)
            if not data:
                return
        frame = InputAudioRawFrame(audio=data, sample_rate=self.sample_rate, num_channels=1)
        if captured_at is not None:
            frame.metadata[CAPTURED_AT] = captured_at
        if not queue_input_audio(self, frame):  # no task per period once pipecat's queue exists
            self.create_task(self.push_audio_frame(frame))


class PyAudioOutputTransport(BufferedOutputTransport):
    """A speaker: a callback stream draining :attr:`playback` (see the module docstring).

    Args:
        device: the device index, a name substring, or ``None`` for the default output.
        preferred_rate: the device rate to try first (else the device's default rate is used
            and incoming audio is resampled to it before it is queued).
        frames_per_buffer: the period in device frames (default 10 ms).
        max_seconds: how much audio :attr:`playback` may hold.
        params: extra pipecat transport parameters.
        audio_process: run the stream in an audio child process
            (:class:`~transports.audio_process.AudioProcess`): ``True`` for one of its own, or
            one shared with the input transport. :attr:`playback` is then a
            :class:`~transports.shared_playback.SharedPlayback` over its shared memory.
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        preferred_rate: int = 24000,
        frames_per_buffer: int | None = None,
        max_seconds: float = 600.0,
        params: TransportParams | None = None,
        audio_process: AudioProcess | bool = False,
        **kwargs,
    ):
        self._audio, owned = _audio_process(audio_process)
        self._driver: OutputDriver | None = None
        if self._audio is not None:
            self._opened = _open_in_child(
                self._audio, owned, "output", device, preferred_rate, frames_per_buffer
            )
            self._device = None
            info, rate, fpb = self._opened.info, self._opened.rate, self._opened.frames_per_buffer
        else:
            self._device = Device(device, "output", preferred_rate, frames_per_buffer)
            info, rate, fpb = self._device.info, self._device.rate, self._device.frames_per_buffer
        super().__init__(sample_rate=rate, max_seconds=max_seconds, params=params, **kwargs)
        self.device = info
        """The :class:`AudioDevice` in use."""
        self.frames_per_buffer = fpb
        if self._audio is not None:
            self.playback = SharedPlayback(
                self._audio.shared, self._audio.send, rate, max_seconds=max_seconds
            )
        else:
            self._driver = OutputDriver(self._device, self.playback, name="pyaudio-out")
        self._released = False

    @property
    def latency(self) -> float:
        """PortAudio's reported output latency of the open stream, in seconds."""
        return self._opened.latency if self._audio is not None else self._device.latency

    @property
    def device_underflows(self) -> int:
        """Callbacks whose status reported an output underflow (host-side)."""
        if self._audio is not None:
            return self._audio.shared.h[UNDERFLOWS]
        return self._driver.underflows

    @property
    def stream_starts(self) -> int:
        """Times the stream was started (once per stretch of audio)."""
        if self._audio is not None:
            return self._audio.shared.h[STARTS]
        return self._driver.starts

    async def _open_device(self) -> None:
        if self._audio is not None:
            self._audio.on_speaker = self.playback.on_child_event
            self._audio.attach(asyncio.get_running_loop())
            period = self.frames_per_buffer / self.playback.sample_rate
            padding = self._opened.latency + period
        else:
            await asyncio.to_thread(self._driver.open)
            padding = self._driver.end_padding_secs
        self.end_padding_secs = max(self.end_padding_secs, padding)

    def _queue_audio(self, pcm: bytes, item_id: str | None) -> None:
        super()._queue_audio(pcm, item_id)  # a SharedPlayback wakes the audio process itself
        if self._driver is not None:
            self._driver.wake()

    def _flush_playback(self) -> int:
        dropped = self.playback.clear()  # a SharedPlayback asks the audio process to flush
        if self._driver is not None:
            self._driver.flush()
        return dropped

    async def _close_device(self, abort: bool) -> None:
        await self._close()

    async def cleanup(self):
        """Release the device (and PyAudio) even if the pipeline never started."""
        await super().cleanup()
        await self._close()

    async def _close(self) -> None:
        if self._audio is None:
            await _blocking(lambda: self._driver.close(DEVICE_CALL_TIMEOUT_S), "close")
        elif not self._released:
            self._released = True
            self._audio.on_speaker = None
            await self._audio.aclose()
