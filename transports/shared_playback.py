"""The loop side of a :class:`PlaybackBuffer` whose device side is the audio child.

:class:`SharedPlayback` has the ``PlaybackBuffer`` API the output transport and the service use
(``write``, ``clear``, ``flush_count`` / ``wait_flushed``, ``played_frames``, ...) over the
speaker ring of :mod:`transports.shm_ring`. Audio goes straight into shared memory, so the
child plays it whatever the pipeline process is doing.

Taps (:meth:`add_tap`: the client echo reference, the recording, the console's speaker meter)
get what the device played as in one process: the child records every block it hands the device,
with its DAC time, in the played ring (see :mod:`transports.shm_ring`) while someone taps, and
they are called here, on the loop, as the child's ``t`` events arrive. :meth:`peek` gives what
the device takes after the last block handed to the taps.

Per response item it keeps the ring stretches ``[start, end)`` it wrote; the child's read
position ``R`` says how much of each was handed to the device, and each applied flush says
where ``R`` was when the rest was skipped. So ``played_frames(item)`` is, as in one process,
what the device callback was handed, and it is final once the flush is confirmed
(:meth:`wait_flushed`). Differences: a full ring drops the newest audio (counted as an overflow)
instead of the oldest, and per-item hand-off times (``first_played_at``) are not tracked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from transports.playback import PlaybackBuffer, PlaybackStats
from transports.shm_ring import (
    FLUSH_ACK,
    FLUSH_SLOTS,
    FLUSH_TO,
    FRAMES_PLAYED,
    FRAMES_READ,
    LAST_AUDIO_NS,
    OUT_R,
    OUT_W,
    RUNNING,
    SKIP_FROM,
    STREAMING,
    TAP_ON,
    UNDERRUN_FRAMES,
    UNDERRUNS,
    SharedAudio,
)


class SharedPlayback(PlaybackBuffer):
    """``PlaybackBuffer`` over an audio child's speaker ring (see the module docstring).

    Args:
        shared: the mapped rings.
        send: sends a one-byte command to the child (``w`` start, ``f`` flush).
    """

    def __init__(
        self,
        shared: SharedAudio,
        send: Callable[[bytes], None],
        sample_rate: int,
        channels: int = 1,
        max_seconds: float = 600.0,
    ):
        super().__init__(sample_rate=sample_rate, channels=channels, max_seconds=max_seconds)
        self._shared = shared
        self._h = shared.h
        self._send = send
        self._segments: deque[list] = deque()  # [item_id, start, end] in ring bytes
        self._requested = 0  # flushes asked for
        self._settled = 0  # flushes whose played counts are settled
        self._cut = 0  # ring position of the latest flush asked for
        self._tapped_to = 0  # the speaker ring's read position after the last block tapped

    # ------------------------------------------------------------- loop side

    @property
    def flush_count(self) -> int:  # type: ignore[override]
        """Flushes asked for; :meth:`wait_flushed` waits until the child applied them."""
        return self._requested

    @flush_count.setter
    def flush_count(self, value: int) -> None:  # PlaybackBuffer.__init__ sets it to 0
        self._requested = value

    def write(self, pcm: bytes, item_id: str | None) -> None:
        """Queue ``pcm`` for ``item_id`` in the shared ring; wake the child's speaker."""
        if self._loop is None:
            self._bind_running_loop()
        usable = len(pcm) - len(pcm) % self.frame_bytes
        if usable <= 0:
            return
        start, written = self._shared.out_write(pcm[:usable] if usable < len(pcm) else pcm)
        if item_id not in self._received:
            self._track_new_item(item_id)
        if written:
            self._received[item_id] += written // self.frame_bytes
            self._segments.append([item_id, start, start + written])
        if written < usable:
            self._overflows += 1
            self._overflow_frames += (usable - written) // self.frame_bytes
        self._h[STREAMING] = 1
        if not self._h[RUNNING]:
            self._send(b"w")

    def clear(self) -> int:
        """Drop everything queued: the child skips it at once and aborts the stream."""
        dropped = self.queued_frames()
        self._requested = self._shared.request_flush()
        self._cut = self._h[OUT_W]
        self._h[STREAMING] = 0
        self._flushed_frames += dropped
        self._send(b"f")
        return dropped

    def mark_stream_end(self) -> None:
        """The response sent its last audio: running dry is no underrun from now on."""
        self._h[STREAMING] = 0

    async def wait_flushed(self, since_count: int, timeout: float) -> bool:
        """Wait until the child applied the flushes after ``since_count``; False on timeout."""
        target = max(since_count + 1, 1)
        return await self._wait_until(
            self._flushed_event, lambda: self._h[FLUSH_ACK] >= target, timeout
        )

    def add_tap(self, tap: Callable[[bytes, float], None]) -> None:
        """Call ``tap(block, at)`` with every block the device played (silence included) and
        when it played it; here on the loop, as the audio process reports the blocks."""
        super().add_tap(tap)
        self._h[TAP_ON] = 1

    def _take_played(self) -> None:
        """Hand the blocks the child recorded since the last call to the taps."""
        for at_ns, position, block in self._shared.tap_read():
            self._frames_read += len(block) // self.frame_bytes  # the blocks the taps got
            self._tapped_to = position
            at = at_ns / 1e9
            for tap in self._taps:
                tap(block, at)

    def peek(self, n_frames: int) -> tuple[int, bytes]:
        """(frames handed to the taps so far; up to ``n_frames`` frames the device takes after
        them), as :meth:`PlaybackBuffer.peek`. Here ``frames_read`` counts the blocks handed to
        the taps (the device's, silence included)."""
        self._take_played()
        ahead = self._shared.out_ahead(self._tapped_to, n_frames * self.frame_bytes)
        return self._frames_read, ahead

    def on_child_event(self, code: bytes) -> None:
        """The audio process's speaker events, on the loop."""
        if code == b"t":
            self._take_played()
        elif code == b"f":
            self._settle()
            self._on_flushed()
        elif code == b"p":
            self._on_started()
        elif code == b"d":
            self._on_drained_from_device()

    def read(self, n_frames: int, at: float | None = None) -> bytes:
        """Not available here: the audio process is the reader."""
        raise RuntimeError("the audio process reads this buffer")

    # ---------------------------------------------------------------- queries

    def _settle(self) -> None:
        """Fold the applied flushes and fully played stretches into the per-item counts."""
        h, fb, played = self._h, self.frame_bytes, self._played
        r = h[OUT_R]  # before FLUSH_ACK: the child stores the ack before it moves R
        ack = h[FLUSH_ACK]
        segments = self._segments
        for k in range(self._settled + 1, ack + 1):
            cut, skip = h[FLUSH_TO + k % FLUSH_SLOTS], h[SKIP_FROM + k % FLUSH_SLOTS]
            while segments and segments[0][2] <= cut:
                item, start, end = segments.popleft()
                played[item] = played.get(item, 0) + max(0, min(skip, end) - start) // fb
        self._settled = max(self._settled, ack)
        while segments and segments[0][2] <= r:  # R read before the ack: really played
            item, start, end = segments.popleft()
            played[item] = played.get(item, 0) + (end - start) // fb

    def played_frames(self, item_id: str | None) -> int:
        """Frames of ``item_id`` handed to the device so far (final after a confirmed flush)."""
        while True:
            self._settle()
            r = self._h[OUT_R]
            if self._h[FLUSH_ACK] == self._settled:  # else R may have jumped: settle again
                break
        live = sum(
            max(0, min(r, end) - start) for item, start, end in self._segments if item == item_id
        )
        return self._played.get(item_id, 0) + live // self.frame_bytes

    def queued_frames(self) -> int:
        """Frames written and not yet taken (nor skipped by a flush)."""
        h = self._h
        return max(0, h[OUT_W] - max(h[OUT_R], self._cut)) // self.frame_bytes

    @property
    def is_idle(self) -> bool:
        """Nothing is queued."""
        return self.queued_frames() == 0

    def first_played_at(self, item_id: str | None) -> float | None:
        """Not tracked across processes: None."""
        return None  # not tracked across processes

    def last_played_at(self, item_id: str | None) -> float | None:
        """Not tracked across processes: None."""
        return None

    @property
    def last_audio_at(self) -> float:
        """``time.monotonic()`` of the child's latest read that handed out audio."""
        return self._h[LAST_AUDIO_NS] / 1e9

    @property
    def streaming(self) -> bool:
        """A response is mid-stream (written since the last end or flush)."""
        return bool(self._h[STREAMING])

    @property
    def stats(self) -> PlaybackStats:
        """A snapshot of the counters (the device-side ones kept by the child)."""
        h = self._h
        return PlaybackStats(
            frames_played=h[FRAMES_PLAYED],
            frames_read=h[FRAMES_READ],
            underruns=h[UNDERRUNS],
            underrun_frames=h[UNDERRUN_FRAMES],
            overflows=self._overflows,
            overflow_frames=self._overflow_frames,
            flush_count=self._requested,
            flushed_frames=self._flushed_frames,
        )
