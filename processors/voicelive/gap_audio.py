"""Microphone audio held while no session is ready (connecting, reconnecting, renewing).

Without it a user turn spoken while the connection is being replaced is never heard. The
:class:`GapAudio` buffer keeps the most recent ``max_seconds`` of microphone audio (older audio
is dropped and counted) and hands it back, in order, once the new session is ready, merged into
appends of at most ``append_seconds``. Each sample is handed back once: audio that was sent on
the old connection is never kept here, so nothing is sent twice. Sans-I/O: bytes in, bytes out.
"""

from __future__ import annotations

from collections import deque

GAP_AUDIO_S = 10.0  # the last 10 s of the gap are kept: a turn spoken during a reconnect survives
APPEND_S = 0.5  # held audio goes out in appends of at most this long


class GapAudio:
    """A bounded FIFO of pcm16 chunks at ``rate`` Hz, ``channels`` interleaved (1, or 2 with a
    client echo reference)."""

    def __init__(
        self,
        rate: int,
        max_seconds: float = GAP_AUDIO_S,
        append_seconds: float = APPEND_S,
        channels: int = 1,
    ) -> None:
        self.rate = rate
        self.max_seconds = max_seconds
        self.frame_bytes = 2 * channels
        self.max_bytes = int(rate * max_seconds) * self.frame_bytes
        self.append_bytes = max(1, int(rate * append_seconds)) * self.frame_bytes
        self._chunks: deque[bytes] = deque()
        self._bytes = 0
        self.dropped_frames = 0
        """Frames that overflowed the buffer (never sent), over the whole session."""

    @property
    def held_frames(self) -> int:
        """Frames held now, waiting for the next session."""
        return self._bytes // self.frame_bytes

    def hold(self, pcm: bytes) -> None:
        """Keep ``pcm``; drop (and count) the oldest audio beyond ``max_seconds``."""
        if not pcm:
            return
        self._chunks.append(pcm)
        self._bytes += len(pcm)
        while self._bytes > self.max_bytes:
            excess = self._bytes - self.max_bytes
            head = self._chunks[0]
            cut = min(len(head), -(-excess // self.frame_bytes) * self.frame_bytes)
            if cut >= len(head):
                self._chunks.popleft()
            else:
                self._chunks[0] = head[cut:]
            self._bytes -= cut
            self.dropped_frames += cut // self.frame_bytes

    def release(self) -> list[bytes]:
        """Everything held, oldest first, in appends of at most ``append_seconds``; then empty."""
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._bytes = 0
        step = self.append_bytes
        return [data[k : k + step] for k in range(0, len(data), step)]
