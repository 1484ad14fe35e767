"""``ConversationRecorder``: both sides of a conversation in one stereo WAV (``--record``).

Left: the microphone as sent to the service (the processor sits between the input transport and
``VoiceLiveAgentService`` and taps every ``InputAudioRawFrame``). Right: the agent as actually
played: a tap on the output's :class:`PlaybackBuffer` receives every block the device (or the WAV
speaker's clock) takes, silence and cut-offs included, so an interrupted answer stops where the
listener stopped hearing it and nothing is recorded while the speaker is stopped.

Both taps only append ``(time, bytes)`` to a queue; a writer thread converts to 24 kHz mono,
places each block on one timeline by its monotonic timestamp (blocks that follow on within
``JOIN_TOLERANCE_S`` are joined seamlessly, so timestamp jitter and a busy loop never click or
stretch a side; a real gap becomes silence), interleaves the two channels ``WRITE_LAG_S``
behind real time and appends them to the
file. The header is patched about once a second and on close, so Ctrl-C, SIGTERM, a kill or a
full disk leave a valid WAV (after a failed write the header is fitted to what reached the disk
and the session goes on without recording, saying so once).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import wave
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from pipecat.frames.frames import Frame, InputAudioRawFrame, StartFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from transports.pcm import PcmResampler, downmix_samples
from transports.playback import PlaybackBuffer
from transports.wavfile import HEADER_PATCH_SECS, fit_header

RATE = 24000
# Blocks that follow on within this of where the last one ended are joined seamlessly. The
# microphone's blocks reach the loop late when it is busy (then in a burst), the speaker's are
# stamped on the device thread: the microphone needs the wider tolerance.
JOIN_TOLERANCE_S = (1.0, 0.06)
# Written this far behind real time: more than the microphone's tolerance, so a block that comes
# that late still lands at its place (written earlier, the file already held silence there and the
# block went after it, shifting the side).
WRITE_LAG_S = 1.5
TICK_S = 0.05
LEFT, RIGHT = 0, 1


class _Channel:
    """One side's samples not yet written, from the file position ``start`` on."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.length = 0
        self.started = False
        self.resampler: PcmResampler | None = None

    def to_mono_24k(self, pcm: bytes, rate: int, channels: int) -> np.ndarray:
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % (2 * channels)], dtype="<i2")
        samples = downmix_samples(samples, channels)
        if rate != RATE:
            if self.resampler is None or self.resampler.in_rate != rate:
                self.resampler = PcmResampler(rate, RATE)
            samples = self.resampler.resample_samples(samples)
        return samples

    def take(self, n: int) -> np.ndarray:
        """The first ``n`` samples (zero-padded), removed."""
        joined = np.concatenate(self.parts) if self.parts else np.zeros(0, np.int16)
        out = np.zeros(n, np.int16)
        out[: min(n, len(joined))] = joined[:n]
        rest = joined[n:]
        self.parts = [rest] if len(rest) else []
        self.length = len(rest)
        return out


class StereoRecording:
    """The writer behind :class:`ConversationRecorder`: a queue, a thread, a stereo WAV."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.error: str | None = None
        self.frames_written = 0
        self._queue: deque[tuple[int, float, bytes, int, int]] = deque()
        self._channels = (_Channel(), _Channel())
        self._written = 0  # samples per channel in the file
        self._t0 = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wav: wave.Wave_write | None = None
        self._file: Any = None

    def open(self) -> None:
        """Create the file and start the writer (blocking: call it in a thread); ``OSError``."""
        self._file = open(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        self._wav = wave.open(self._file, "wb")
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(RATE)
        self._wav.writeframes(b"")
        self._file.flush()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, name=f"record:{self.path.name}", daemon=True
        )
        self._thread.start()

    def add(
        self, channel: int, started_at: float, pcm: bytes, rate: int = RATE, channels: int = 1
    ) -> None:
        """Queue a block that began at ``started_at`` (monotonic); any thread, never blocks."""
        if self._wav is not None and self.error is None:
            self._queue.append((channel, started_at, pcm, rate, channels))

    def close(self) -> None:
        """Write everything queued, finalise the header (blocking: call it in a thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._wav is None:
            return
        try:
            self._place_queued()
            for side in self._channels:  # what a resampler still holds is the end of the audio
                if side.resampler is not None:
                    tail = np.frombuffer(side.resampler.flush(), dtype=np.int16)
                    side.parts.append(tail)
                    side.length += len(tail)
            self._write_until(max(self._written + c.length for c in self._channels))
            self._wav.close()
            self._wav = None
            self._file.close()
        except OSError as exc:
            self._failed(exc)

    def _run(self) -> None:
        next_patch = time.monotonic() + HEADER_PATCH_SECS
        while not self._stop.wait(TICK_S) and self._wav is not None:
            try:
                self._place_queued()
                self._write_until(int((time.monotonic() - self._t0 - WRITE_LAG_S) * RATE))
                if time.monotonic() >= next_patch:
                    next_patch += HEADER_PATCH_SECS
                    self._wav.writeframes(b"")  # patches the sizes in the header
                    self._file.flush()
            except OSError as exc:  # disk full, file too large: keep what is there, say so once
                self._failed(exc)
                return

    def _place_queued(self) -> None:
        queue = self._queue
        while queue:
            channel, started_at, pcm, rate, nch = queue.popleft()
            side = self._channels[channel]
            samples = side.to_mono_24k(pcm, rate, nch)
            end = self._written + side.length
            ideal = round((started_at - self._t0) * RATE)  # not int(): 0.1 s is 2399.99... samples
            tolerance = (
                JOIN_TOLERANCE_S[channel] * RATE if side.started else 0
            )  # the first block sets its place
            side.started = True
            if (
                ideal > end + tolerance
            ):  # the side's start, or a real gap (speaker stopped, mic paused)
                side.parts.append(np.zeros(ideal - end, np.int16))
                side.length += ideal - end
            side.parts.append(samples)
            side.length += len(samples)

    def _write_until(self, position: int) -> None:
        n = position - self._written
        if n <= 0 or self._wav is None:
            return
        stereo = np.empty((n, 2), np.int16)
        stereo[:, 0] = self._channels[LEFT].take(n)
        stereo[:, 1] = self._channels[RIGHT].take(n)
        self._wav.writeframesraw(stereo.astype("<i2").tobytes())
        self._written = position
        self.frames_written = position

    def _failed(self, exc: OSError) -> None:
        wav, self._wav = self._wav, None
        for closer in (wav, self._file):
            try:
                if closer is not None:
                    closer.close()
            except OSError:
                pass
        secs = fit_header(self.path, 4, RATE)
        reason = exc.strerror or exc
        self.error = f"recording '{self.path}' stopped ({reason}): the first {secs:.1f} s are kept"
        logger.bind(console=False).error(self.error)  # the script prints it once, at the end


class ConversationRecorder(FrameProcessor):
    """Records the conversation to a stereo WAV (see the module docstring).

    Place it between the input transport and the service; ``playback`` is the output's
    :class:`PlaybackBuffer` (``output.playback``); without one the right channel stays silent.
    """

    def __init__(self, path: Path | str, playback: PlaybackBuffer | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recording = StereoRecording(path)
        self._playback = playback
        self._opened = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Queue microphone audio for the left channel; open the file on ``StartFrame``."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            now = time.monotonic()
            duration = len(frame.audio) / (2 * frame.num_channels * frame.sample_rate)
            self.recording.add(
                LEFT, now - duration, frame.audio, frame.sample_rate, frame.num_channels
            )
        elif isinstance(frame, StartFrame):
            await self._open()
        await self.push_frame(
            frame, direction
        )  # closed in cleanup(): the output plays its tail first

    async def _open(self) -> None:
        if self._opened:
            return
        self._opened = True
        try:
            await asyncio.to_thread(self.recording.open)
        except OSError as exc:
            self.recording.error = (
                f"recording '{self.recording.path}' cannot be created ({exc.strerror or exc})"
            )
            logger.bind(console=False).error(self.recording.error)
            return
        add_tap = getattr(self._playback, "add_tap", None)
        if add_tap is None:  # an output without a playback buffer to tap
            logger.warning("--record: this output cannot be tapped, the right channel stays silent")
            return
        rate, channels = self._playback.sample_rate, self._playback.channels
        add = self.recording.add
        add_tap(lambda block, now: add(RIGHT, now, block, rate, channels))

    async def close(self) -> None:
        """Finish the file (idempotent)."""
        await asyncio.to_thread(self.recording.close)

    async def cleanup(self) -> None:
        """Finish the file once the pipeline is done (the output has played its tail)."""
        await super().cleanup()
        await self.close()
