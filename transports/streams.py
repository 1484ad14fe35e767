"""PortAudio streams without pipecat: one device, and the thread that starts and aborts a speaker.

Nothing here imports pipecat or asyncio, so the same code runs in the pipeline process
(:mod:`transports.pyaudio`) and in the lean audio child (:mod:`transports.audio_child`).

* :class:`Device` — a PyAudio instance, one resolved device and at most one callback stream.
* :class:`OutputDriver` — a speaker whose callback copies from a :class:`PcmSource` and whose
  stream is started and aborted by one persistent control thread:

  - started when audio is queued (:meth:`OutputDriver.wake`): the stream is opened at start-up
    and kept stopped while idle, so the first audio is not queued behind silence that the host
    already buffered, and a listening-only session costs no output callbacks; the control
    thread is already running, so starting it costs a thread wake-up (tens of µs) plus
    ``Pa_StartStream`` (~1 ms on PulseAudio), not an executor round trip through the loop;
  - aborted on a flush (:meth:`OutputDriver.flush`): ``Pa_AbortStream`` drops what
    PortAudio and PulseAudio still hold (about three periods), so a barge-in is silent at the
    speaker within a few ms instead of ~30; the stream starts again with the next audio;
  - aborted once the source has been idle for ``end_padding_secs`` (the host latency plus a
    period: the tail has reached the speaker by then). Pa_StopStream is never used: with ALSA's
    pulse plugin it was seen waiting forever for PortAudio's thread.

  Measured on the PulseAudio rig (10 ms periods): a running stream with three periods queued
  stops 36 ms after a flush and plays its first audio 37 ms after it is queued; lower-latency
  settings on a running stream (5 ms periods, ``PULSE_LATENCY_MSEC``) got down to 8-18 ms but
  underran (2-36 underflows in 12 trials); abort and restart: 6 ms and no underflow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import pyaudio

from transports.devices import (
    AudioDevice,
    Direction,
    choose_format,
    device_error,
    open_pyaudio,
    quiet_stderr,
    resolve_device,
)
from transports.errors import TransportError

# Default periods: the speaker's bounds how fast audio starts and stops; the mic's only adds to
# the server VAD's own reaction, so it can be longer and cheaper (fewer callbacks).
DEFAULT_PERIOD_MS: dict[Direction, int] = {"input": 40, "output": 10}
RETRY_DEFAULT_DEVICE_S = 0.3  # before looking for a missing default device again
MIN_END_PADDING_S = 0.15


def abort_stream(stream: pyaudio.Stream) -> None:
    """Pa_AbortStream: stop now, dropping what is queued (PyAudio's Stream does not expose it)."""
    pyaudio._portaudio.abort_stream(stream._stream)  # type: ignore[attr-defined]
    stream._is_running = False  # else PyAudio's start_stream() would think it still runs


INPUT, OUTPUT = "input_buffer_adc_time", "output_buffer_dac_time"
CAPTURED_AT = "captured_at"  # input frame metadata: time.monotonic() its first frame was captured


def device_time(time_info: dict | None, which: str) -> float | None:
    """The ``time.monotonic()`` at which a callback's buffer reaches the device's converter:
    PortAudio's ``which`` time (``INPUT``: the ADC captured its first frame; ``OUTPUT``: the DAC
    will play its first frame) moved onto the monotonic clock through the callback's
    ``current_time``. ``None`` when the host API gives no such times (zeros)."""
    if not time_info:
        return None
    stamp, current = time_info.get(which) or 0.0, time_info.get("current_time") or 0.0
    if stamp <= 0 or current <= 0 or abs(stamp - current) > 1.0:  # absent or not believable
        return None
    return time.monotonic() + (stamp - current)


class Device:
    """A PyAudio instance, one resolved device and at most one stream on it."""

    def __init__(
        self,
        spec: int | str | None,
        direction: Direction,
        preferred_rate: int,
        frames_per_buffer: int | None,
    ):
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
        # close() may be called from several threads; PortAudio deadlocks if terminate()
        # closes a stream another thread is closing.
        self._close_lock = threading.Lock()

    def open(self, callback: Callable, start: bool) -> None:
        """Open the callback stream (blocking)."""
        kwargs = (
            {"input": True, "input_device_index": self.info.index}
            if self.direction == "input"
            else {"output": True, "output_device_index": self.info.index}
        )
        try:
            with quiet_stderr():
                self.stream = self.pa.open(
                    format=pyaudio.paInt16,
                    channels=1,
                    rate=self.rate,
                    frames_per_buffer=self.frames_per_buffer,
                    stream_callback=callback,
                    start=start,
                    **kwargs,
                )
        except (OSError, ValueError) as e:
            raise device_error(e, self.info, self.direction) from None

    def start(self) -> None:
        """Start the stream (blocking, ~1 ms on PulseAudio)."""
        try:
            self.stream.start_stream()
        except OSError as e:
            raise device_error(e, self.info, self.direction) from None

    def abort(self) -> None:
        """Stop the stream now, dropping whatever the host still holds (blocking)."""
        stream = self.stream
        if stream is not None and not stream.is_stopped():
            abort_stream(stream)

    def close(self) -> None:
        """Abort and close the stream, terminate PyAudio (blocking; idempotent; thread-safe).

        Aborting rather than stopping: Pa_StopStream waits for PortAudio's callback thread to
        end by itself, and with ALSA's pulse plugin that wait was seen to never end.
        """
        with self._close_lock:
            if self.stream is not None:
                stream, self.stream = self.stream, None
                try:
                    if not stream.is_stopped():
                        abort_stream(stream)
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
        return (
            self.stream.get_input_latency()
            if self.direction == "input"
            else self.stream.get_output_latency()
        )


class PcmSource(Protocol):
    """What a speaker plays from: ``read`` exactly n frames (silence when dry)."""

    def read(self, n_frames: int, at: float | None = None) -> bytes:
        """Exactly ``n_frames`` frames: queued audio first, then silence (``at``: when the
        device plays them, ``time.monotonic()``, if it says)."""

    @property
    def is_idle(self) -> bool:
        """Nothing is queued."""

    @property
    def last_audio_at(self) -> float:
        """``time.monotonic()`` of the latest read that handed out queued audio."""


class OutputDriver:
    """A speaker stream fed by ``source`` and run by one control thread (see the module doc)."""

    def __init__(self, device: Device, source: PcmSource, name: str = "speaker"):
        self.device = device
        self.source = source
        self.name = name
        self.end_padding_secs = MIN_END_PADDING_S
        self.underflows = 0
        """Callbacks whose status reported an output underflow (host-side)."""
        self.starts = 0
        self.aborts = 0
        self.running = False
        """The stream is started (read by the loop for information only)."""
        self.error: BaseException | None = None
        """What made the control thread give up (a device that could not start)."""
        self._cond = threading.Condition()
        self._wake = self._flush = self._closing = False
        self._started_at = 0.0
        self._stopping = False  # the callback hands out silence while an abort is under way
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Open the stream stopped and start the control thread (blocking)."""
        self.device.open(self._callback, False)
        period = self.device.frames_per_buffer / self.device.rate
        # pitfall: ALSA->pulse drops the last ~40-60 ms if stopped right after the last buffer
        self.end_padding_secs = max(MIN_END_PADDING_S, self.device.latency + period)
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-control", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Audio was queued: start the stream if it is stopped (returns at once)."""
        if self.running:  # a stop racing with this write re-checks the source after it
            return
        with self._cond:
            self._wake = True
            self._cond.notify()

    def flush(self) -> None:
        """The source was emptied: drop what the host holds too (returns at once)."""
        with self._cond:
            self._flush = True
            self._cond.notify()

    def close(self, timeout: float) -> bool:
        """Stop the control thread, abort and close the stream (blocking, bounded by
        ``timeout`` for the thread); False if the thread did not end in time."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        self.device.close()
        return True

    def _callback(self, in_data, frame_count, time_info, status):
        """PortAudio thread: copy the next period out of the source."""
        if status & pyaudio.paOutputUnderflow:
            self.underflows += 1
        if self._stopping:  # whatever it took now would be dropped by the abort: leave it queued
            return bytes(2 * frame_count), pyaudio.paContinue
        return self.source.read(frame_count, at=device_time(time_info, OUTPUT)), pyaudio.paContinue

    def _run(self) -> None:
        while True:
            with self._cond:
                pending = self._wake or self._flush or self._closing
                if not pending and (self.running or self.source.is_idle):
                    self._cond.wait(self.end_padding_secs / 2 if self.running else None)
                wake, flush, closing = self._wake, self._flush, self._closing
                self._wake = self._flush = False
            if closing:
                return
            try:
                self._step(wake, flush)
            except TransportError as exc:
                self.error = exc
                return

    def _step(self, wake: bool, flush: bool) -> None:
        if flush and self.running:
            self._stop()
        if not self.source.is_idle:
            if not self.running:
                self.device.start()
                self.starts += 1
                self._started_at = time.monotonic()
                self._set_running(True)
        elif self.running:
            quiet_since = max(self.source.last_audio_at, self._started_at)
            if time.monotonic() - quiet_since >= self.end_padding_secs:
                self._stop()

    def _stop(self) -> None:
        self.aborts += 1
        self._stopping = True
        self._set_running(False)
        try:
            self.device.abort()
        finally:
            self._stopping = False

    def _set_running(self, running: bool) -> None:
        """Record the stream state (a subclass may publish it elsewhere too)."""
        self.running = running
