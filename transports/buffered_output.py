"""Base for output transports that play from a :class:`PlaybackBuffer` drained by a device thread.

pipecat's ``BaseOutputTransport`` sends audio through its ``MediaSender``: it re-chunks audio into
40 ms frames (losing ``TTSAudioRawFrame.context_id``), writes each chunk from an asyncio task,
pads with silence on ``TTSStoppedFrame`` and, on an interruption, only drops its own queue while
whatever the device already buffered keeps playing. :class:`BufferedOutputTransport` keeps
pipecat's lifecycle (Start/End/Cancel, ``OutputTransportReadyFrame``, non-audio frames still go
through the media sender) but takes audio out of that path:

* every downstream ``OutputAudioRawFrame`` goes straight into :attr:`playback`, tagged with its
  ``context_id`` (the Voice Live response item id), resampled with a streaming soxr resampler
  to the device rate, and is then pushed on downstream, as pipecat does after a write;
* an ``InterruptionFrame`` clears the buffer before anything else happens, so the device is
  silent from its next period on;
* ``BotStartedSpeakingFrame`` / ``BotSpeakingFrame`` / ``BotStoppedSpeakingFrame`` follow what
  the device actually takes: started when it first hands out queued audio, stopped when the
  buffer is drained and the response ended (``TTSStoppedFrame``), or after 0.35 s dry;
* on ``EndFrame`` the queued audio plays out (bounded by its duration + 1 s) and the device runs
  :attr:`end_padding_secs` of silence before it stops, so the tail is not clipped;
  ``CancelFrame`` stops the device at once.

Subclasses implement :meth:`_open_device` and :meth:`_close_device`. Not supported on this path:
``audio_out_mixer``, ``audio_out_filter``, volume frames and uninterruptible audio frames (an
interruption drops all queued audio).
"""

from __future__ import annotations

import asyncio
import time

from pipecat.frames.frames import (
    BotSpeakingFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

from transports.pcm import PcmResampler
from transports.pipecat_internals import process_frame_bypassing_media_sender
from transports.playback import PlaybackBuffer

BOT_SPEAKING_PERIOD_SECS = 0.2
BOT_DRY_STOP_SECS = 0.35


class BufferedOutputTransport(BaseOutputTransport):
    """An output transport whose device side drains :attr:`playback` (see the module docstring)."""

    end_padding_secs: float = 0.15
    """Silence the device plays after the last queued sample before it is stopped on EndFrame."""

    def __init__(
        self,
        *,
        sample_rate: int = 24000,
        channels: int = 1,
        max_seconds: float = 600.0,
        params: TransportParams | None = None,
        **kwargs,
    ):
        params = (params or TransportParams()).model_copy(
            update={
                "audio_out_enabled": True,
                "audio_out_sample_rate": sample_rate,
                "audio_out_channels": channels,
                "audio_out_end_silence_secs": 0,
            }
        )
        super().__init__(params, **kwargs)
        self.playback = PlaybackBuffer(
            sample_rate=sample_rate, channels=channels, max_seconds=max_seconds
        )
        """The buffer the device drains; the service reads per-item played counts from it."""
        self._resampler: PcmResampler | None = None
        self._item_id: str | None = None
        self._device_open = False
        self._bot_speaking = False
        self._playing_seen = False
        self._last_speaking_frame = 0.0
        self._flushed_at = 0.0
        self._speech_wakeup = asyncio.Event()
        self._speech_task: asyncio.Task | None = None

    # ------------------------------------------------------------ device hooks

    async def _open_device(self) -> None:
        """Start the device side draining :attr:`playback` (called on StartFrame)."""
        raise NotImplementedError

    async def _close_device(self, abort: bool) -> None:
        """Stop the device side; ``abort`` on CancelFrame. Called at most once per open."""
        raise NotImplementedError

    def _flush_playback(self) -> int:
        """Empty the playback buffer on an interruption; returns the frames dropped."""
        return self.playback.clear()

    def _playback_idle(self) -> None:
        """Called on the loop when the bot stopped speaking (buffer drained or flushed)."""

    # --------------------------------------------------------------- lifecycle

    async def start(self, frame: StartFrame):
        """Open the device, then announce readiness as pipecat transports do."""
        await super().start(frame)
        self.playback.attach_loop(asyncio.get_running_loop())
        self.playback.on_playing = self._on_device_playing
        self.playback.on_drained = self._speech_wakeup.set
        await self._open_device()
        self._device_open = True
        if not self._speech_task:
            self._speech_task = self.create_task(self._speech_task_handler())
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame):
        """Play out what is queued, pad with silence, then stop the device."""
        if self._device_open:
            queued_secs = self.playback.queued_frames() / self.playback.sample_rate
            await self.playback.wait_drained(timeout=queued_secs + 1.0)
            if self.end_padding_secs > 0:
                await asyncio.sleep(self.end_padding_secs)
        await super().stop(frame)
        await self._shutdown(abort=False)

    async def cancel(self, frame: CancelFrame):
        """Stop the device at once."""
        await self._shutdown(abort=True)
        await super().cancel(frame)

    async def cleanup(self):
        """Release the device if the pipeline ended without End/Cancel reaching us."""
        await self._shutdown(abort=True)
        await super().cleanup()

    async def _shutdown(self, abort: bool) -> None:
        if self._speech_task:
            await self.cancel_task(self._speech_task)
            self._speech_task = None
        if self._device_open:
            self._device_open = False
            await self._close_device(abort)
        if self._bot_speaking and not abort:
            await self._set_bot_speaking(False)

    # ------------------------------------------------------------------ frames

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Route audio into the playback buffer; flush it first thing on an interruption."""
        if isinstance(frame, InterruptionFrame):
            self._flush_playback()
            self._flushed_at = time.monotonic()
            if self._resampler:
                self._resampler.reset()
            self._speech_wakeup.set()
        elif direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, OutputAudioRawFrame):
                await process_frame_bypassing_media_sender(self, frame, direction)
                self._write_audio(frame)
                await self.push_frame(frame, direction)
                return
            if isinstance(frame, TTSStoppedFrame):
                self._end_stream()
        await super().process_frame(frame, direction)

    def _write_audio(self, frame: OutputAudioRawFrame) -> None:
        item_id = getattr(frame, "context_id", None)
        if item_id != self._item_id:
            self._end_stream()
            self._item_id = item_id
        audio = frame.audio
        rate = self.playback.sample_rate
        if frame.sample_rate != rate:
            if self._resampler is None or self._resampler.in_rate != frame.sample_rate:
                self._end_stream()
                self._resampler = PcmResampler(frame.sample_rate, rate, self.playback.channels)
            audio = self._resampler.resample(audio)
        self._queue_audio(audio, item_id)

    def _queue_audio(self, pcm: bytes, item_id: str | None) -> None:
        """Put device-rate PCM into the playback buffer (a subclass may sync its clock first)."""
        self.playback.write(pcm, item_id)

    def _end_stream(self) -> None:
        """The current response's audio is complete: queue the resampler tail, stop counting
        dry reads as underruns."""
        if self._resampler:
            self._queue_audio(self._resampler.flush(), self._item_id)
        self.playback.mark_stream_end()
        self._speech_wakeup.set()

    # ------------------------------------------------------------ bot speaking

    def _on_device_playing(self) -> None:
        self._playing_seen = True
        self._speech_wakeup.set()

    async def _speech_task_handler(self) -> None:
        while True:
            timeout = BOT_SPEAKING_PERIOD_SECS if self._bot_speaking else None
            try:
                await asyncio.wait_for(self._speech_wakeup.wait(), timeout)
            except TimeoutError:
                pass
            self._speech_wakeup.clear()
            await self._update_bot_speaking()

    async def _update_bot_speaking(self) -> None:
        playback = self.playback
        now = time.monotonic()
        if not self._bot_speaking:
            # A "playing" notice queued just before a flush describes audio that was dropped.
            fresh = self._playing_seen and playback.last_audio_at > self._flushed_at
            self._playing_seen = False
            if not fresh:
                return
            await self._set_bot_speaking(True)
        if playback.is_idle and (
            not playback.streaming or now - playback.last_audio_at >= BOT_DRY_STOP_SECS
        ):
            await self._set_bot_speaking(False)
        elif now - self._last_speaking_frame >= BOT_SPEAKING_PERIOD_SECS:
            self._last_speaking_frame = now
            await self.broadcast_frame(BotSpeakingFrame)

    async def _set_bot_speaking(self, speaking: bool) -> None:
        self._bot_speaking = speaking
        self._playing_seen = False
        self._last_speaking_frame = time.monotonic()
        await self.broadcast_frame(BotStartedSpeakingFrame if speaking else BotStoppedSpeakingFrame)
        if not speaking:
            self._playback_idle()
