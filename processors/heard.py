"""What the listener heard: the one contract between an output's playback and the processors.

An output transport that plays from a buffer (``transports.playback.PlaybackBuffer``, or its
audio-process twin) counts what the device took, per agent item. The service truncates an
interrupted answer at that amount, the live view marks where the listener stopped hearing; both
read it in milliseconds from :meth:`HeardAudio.played_ms`, the one place device frames become
time.
"""

from __future__ import annotations

from typing import Protocol


class HeardAudio(Protocol):
    """How much of each agent item the listener heard, and when a flush took effect."""

    @property
    def flush_count(self) -> int:
        """How many flushes (interruptions) the device has carried out so far."""
        ...

    async def wait_flushed(self, since_count: int, timeout: float) -> bool:
        """Wait until :attr:`flush_count` exceeds ``since_count``; False on timeout."""
        ...

    def played_ms(self, item_id: str | None) -> int:
        """Milliseconds of ``item_id`` the device has played (floor)."""
        ...
