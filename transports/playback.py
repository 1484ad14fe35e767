"""The playback model shared by every output transport: what was queued, what the device took.

A :class:`PlaybackBuffer` is a thread-safe FIFO of output PCM (int16, at the device rate) where
each piece is tagged with the response item id it belongs to. The asyncio loop fills it
(:meth:`PlaybackBuffer.write`); a "device side" drains it (:meth:`PlaybackBuffer.read`): a
PortAudio callback thread, or the clock thread of the WAV recorder. Because the device takes
exactly what it plays, the buffer knows, per item, how many frames a listener was handed. After
an interruption (:meth:`PlaybackBuffer.clear`) that is the number to send in
``conversation.item.truncate``::

    since = playback.flush_count          # before the interruption is broadcast
    ...
    if await playback.wait_flushed(since, timeout=1.0):
        audio_end_ms = playback.played_ms(item_id)

Notifications to the loop (device started handing out audio, queue drained, queue flushed) cross
threads with ``loop.call_soon_threadsafe`` and happen only on state changes, never per read.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

_MAX_TRACKED_ITEMS = 256


@dataclass(frozen=True)
class PlaybackStats:
    """Counters of one buffer since it was created (frames are per channel group)."""

    frames_played: int
    """Frames of queued audio handed to the device."""
    frames_read: int
    """Frames handed to the device in total, silence padding included."""
    underruns: int
    """Times the device found the buffer dry while a response was still streaming."""
    underrun_frames: int
    """Frames of silence the device got while a response was still streaming."""
    overflows: int
    """Writes that pushed the queue past ``max_seconds`` (the oldest audio was dropped)."""
    overflow_frames: int
    flush_count: int
    flushed_frames: int


class PlaybackBuffer:
    """Thread-safe FIFO of output PCM, tagged by response item id, with per-item play counts.

    Loop side: :meth:`write`, :meth:`clear`, :meth:`mark_stream_end`, :meth:`wait_flushed`,
    :meth:`wait_drained`. Device side: :meth:`read` only. The internal lock is held only while
    references are moved; joins and zero padding happen outside it.
    """

    def __init__(self, sample_rate: int = 24000, channels: int = 1, max_seconds: float = 600.0):
        if sample_rate <= 0 or channels <= 0 or max_seconds <= 0:
            raise ValueError("sample_rate, channels and max_seconds must be positive")
        self.sample_rate = sample_rate
        self.channels = channels
        self.frame_bytes = 2 * channels
        self.max_frames = int(max_seconds * sample_rate)

        self._lock = threading.Lock()
        self._chunks: deque[list] = deque()  # [item_id, bytes, offset]
        self._queued_bytes = 0
        self._received: dict[str | None, int] = {}
        self._played: dict[str | None, int] = {}
        self._first_played_at: dict[str | None, float] = {}
        self._last_played_at: dict[str | None, float] = {}
        self._last_audio_at = 0.0
        self._handing_audio = False  # the previous read handed out queued audio
        self._streaming = False  # a response is mid-stream (reset by mark_stream_end/clear)
        self._dry = False  # already counted the current underrun
        self._frames_played = 0
        self._frames_read = 0
        self._underruns = 0
        self._underrun_frames = 0
        self._overflows = 0
        self._overflow_frames = 0
        self._flushed_frames = 0
        self.flush_count = 0

        self._loop: asyncio.AbstractEventLoop | None = None
        self._flushed_event = asyncio.Event()
        self._drained_event = asyncio.Event()
        self._taps: list[Callable[[bytes, float], None]] = []
        self.on_playing: Callable[[], None] | None = None
        """Called on the loop when the device starts handing out queued audio."""
        self.on_drained: Callable[[], None] | None = None
        """Called on the loop when the device has taken everything that was queued."""

    # ----------------------------------------------------------------- loop side

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver device notifications to ``loop`` (done implicitly by writes and waits)."""
        self._loop = loop

    def write(self, pcm: bytes, item_id: str | None) -> None:
        """Queue ``pcm`` (whole frames, at ``sample_rate``) for item ``item_id``.

        Never blocks beyond the lock. Past ``max_seconds`` the oldest audio is dropped and an
        overflow is counted.
        """
        if self._loop is None:
            self._bind_running_loop()
        usable = len(pcm) - len(pcm) % self.frame_bytes
        if usable <= 0:
            return
        data = bytes(pcm[:usable])
        frames = usable // self.frame_bytes
        with self._lock:
            if item_id not in self._received:
                self._track_new_item(item_id)
            self._received[item_id] += frames
            self._chunks.append([item_id, data, 0])
            self._queued_bytes += usable
            self._streaming = True
            self._dry = False
            excess = self._queued_bytes // self.frame_bytes - self.max_frames
            if excess > 0:
                self._drop_oldest(excess * self.frame_bytes)
                self._overflows += 1
                self._overflow_frames += excess

    def clear(self) -> int:
        """Drop everything queued; return the frames dropped. Wakes :meth:`wait_flushed`."""
        with self._lock:
            dropped = self._queued_bytes // self.frame_bytes
            self._chunks.clear()
            self._queued_bytes = 0
            self._streaming = False
            self._dry = False
            self._handing_audio = False
            self._flushed_frames += dropped
            self.flush_count += 1
        self._notify(self._on_flushed)
        return dropped

    def mark_stream_end(self) -> None:
        """Say the current response sent its last audio: running dry from now on is no underrun."""
        with self._lock:
            self._streaming = False

    async def wait_flushed(self, since_count: int, timeout: float) -> bool:
        """Wait until :attr:`flush_count` exceeds ``since_count``; False on timeout."""
        return await self._wait_until(
            self._flushed_event, lambda: self.flush_count > since_count, timeout
        )

    async def wait_drained(self, timeout: float) -> bool:
        """Wait until the device has taken everything queued; False on timeout."""
        return await self._wait_until(self._drained_event, lambda: self.is_idle, timeout)

    # --------------------------------------------------------------- device side

    def read(self, n_frames: int, at: float | None = None) -> bytes:
        """Hand the device exactly ``n_frames`` frames: queued audio first, then silence.
        ``at`` is when the device will play them (``time.monotonic()``; default: now), for the
        taps."""
        need = n_frames * self.frame_bytes
        parts: list[memoryview] = []
        got = 0
        now = time.monotonic()
        with self._lock:
            chunks = self._chunks
            while got < need and chunks:
                chunk = chunks[0]
                item_id, data, offset = chunk
                take = min(need - got, len(data) - offset)
                parts.append(memoryview(data)[offset : offset + take])
                got += take
                frames = take // self.frame_bytes
                self._played[item_id] = self._played.get(item_id, 0) + frames
                self._last_played_at[item_id] = now
                self._first_played_at.setdefault(item_id, now)
                if offset + take == len(data):
                    chunks.popleft()
                else:
                    chunk[2] = offset + take
            self._queued_bytes -= got
            got_frames = got // self.frame_bytes
            self._frames_played += got_frames
            self._frames_read += n_frames
            started = got > 0 and not self._handing_audio
            drained = got > 0 and not chunks
            self._handing_audio = got > 0 and bool(chunks)
            if got:
                self._last_audio_at = now
            if got < need and self._streaming:
                self._underrun_frames += n_frames - got_frames
                if not self._dry:
                    self._underruns += 1
                    self._dry = True
        if started:
            self._notify(self._on_started, threadsafe=True)
        if drained:
            self._notify(self._on_drained_from_device, threadsafe=True)
        if got == need and len(parts) == 1:
            block = parts[0].tobytes()
        else:
            if got < need:
                parts.append(memoryview(bytes(need - got)))
            block = b"".join(parts)
        for tap in self._taps:
            tap(block, now if at is None else at)
        return block

    def peek(self, n_frames: int) -> tuple[int, bytes]:
        """(frames handed out so far, silence included; the next up to ``n_frames`` frames
        queued for the device): what the device will take next, in order, unless it is
        cleared first. For a tap that needs what plays a moment ahead of what it was handed."""
        want = n_frames * self.frame_bytes
        parts: list[memoryview] = []
        got = 0
        with self._lock:  # views only: the copy is made outside the lock the device needs
            for _, data, offset in self._chunks:
                if got >= want:
                    break
                piece = memoryview(data)[offset : offset + want - got]
                parts.append(piece)
                got += len(piece)
            read = self._frames_read
        return read, b"".join(parts)

    @property
    def frames_read(self) -> int:
        """Frames handed to the device so far (queued audio and silence)."""
        return self._frames_read

    def add_tap(self, tap: Callable[[bytes, float], None]) -> None:
        """Call ``tap(block, at)`` with every block handed to the device (silence included) and
        the ``time.monotonic()`` at which the device plays it (its DAC time where PortAudio
        gives one, else the read's). It runs on the device side, so it must only hand
        the bytes on (append to a deque): a recorder or a level meter does the rest elsewhere."""
        self._taps.append(tap)

    # ------------------------------------------------------------------ queries

    def played_frames(self, item_id: str | None) -> int:
        """Frames of ``item_id`` handed to the device so far."""
        return self._played.get(item_id, 0)

    def played_ms(self, item_id: str | None) -> int:
        """Milliseconds of ``item_id`` handed to the device (floor), for a truncate."""
        return self.played_frames(item_id) * 1000 // self.sample_rate

    def received_frames(self, item_id: str | None) -> int:
        """Frames of ``item_id`` written into the buffer so far (after resampling)."""
        return self._received.get(item_id, 0)

    def queued_frames(self) -> int:
        """Frames waiting for the device."""
        return self._queued_bytes // self.frame_bytes

    @property
    def is_idle(self) -> bool:
        """Nothing is queued."""
        return self._queued_bytes == 0

    def first_played_at(self, item_id: str | None) -> float | None:
        """``time.monotonic()`` of the read that handed out the first frame of ``item_id``."""
        return self._first_played_at.get(item_id)

    def last_played_at(self, item_id: str | None) -> float | None:
        """``time.monotonic()`` of the read that handed out the latest frame of ``item_id``."""
        return self._last_played_at.get(item_id)

    @property
    def last_audio_at(self) -> float:
        """``time.monotonic()`` of the latest read that handed out queued audio (0 if none)."""
        return self._last_audio_at

    @property
    def streaming(self) -> bool:
        """Audio was written since the last :meth:`mark_stream_end` or :meth:`clear`."""
        return self._streaming

    @property
    def stats(self) -> PlaybackStats:
        """A snapshot of the counters."""
        with self._lock:
            return PlaybackStats(
                frames_played=self._frames_played,
                frames_read=self._frames_read,
                underruns=self._underruns,
                underrun_frames=self._underrun_frames,
                overflows=self._overflows,
                overflow_frames=self._overflow_frames,
                flush_count=self.flush_count,
                flushed_frames=self._flushed_frames,
            )

    # ---------------------------------------------------------------- internals

    def _track_new_item(self, item_id: str | None) -> None:
        self._received[item_id] = 0
        if len(self._received) > _MAX_TRACKED_ITEMS:
            oldest = next(iter(self._received))
            for table in (
                self._received,
                self._played,
                self._first_played_at,
                self._last_played_at,
            ):
                table.pop(oldest, None)

    def _drop_oldest(self, nbytes: int) -> None:
        while nbytes > 0 and self._chunks:
            chunk = self._chunks[0]
            left = len(chunk[1]) - chunk[2]
            if left <= nbytes:
                self._chunks.popleft()
                self._queued_bytes -= left
                nbytes -= left
            else:
                chunk[2] += nbytes
                self._queued_bytes -= nbytes
                nbytes = 0

    def _bind_running_loop(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass

    def _notify(self, callback: Callable[[], None], threadsafe: bool = False) -> None:
        """Run ``callback`` on the loop: directly when already on it, else thread-safely."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if not threadsafe:
            try:
                if asyncio.get_running_loop() is loop:
                    callback()
                    return
            except RuntimeError:
                pass
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # loop closed between the check and the call
            pass

    def _on_flushed(self) -> None:
        self._flushed_event.set()
        self._drained_event.set()
        if self.on_drained:
            self.on_drained()

    def _on_started(self) -> None:
        if self.on_playing:
            self.on_playing()

    def _on_drained_from_device(self) -> None:
        if self.is_idle:
            self._drained_event.set()
            if self.on_drained:
                self.on_drained()

    async def _wait_until(
        self, event: asyncio.Event, done: Callable[[], bool], timeout: float
    ) -> bool:
        if self._loop is None:
            self._bind_running_loop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            event.clear()
            if done():
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return done()
        return True
