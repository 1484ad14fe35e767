"""Keeping a flood of server events from starving everything else on the event loop.

websockets hands out buffered messages without suspending, so a receive loop fed faster than it
can work never gives the event loop back: the microphone's appends, the output and the keyboard
all wait behind it (measured before this guard: no append left the client during a 4 s flood of
5,000 events a second, and the answer after it was handled seconds late).

:class:`InboundGuard` is the receive loop's budget, sans-I/O (the clock is passed in):

* :meth:`InboundGuard.must_yield` says when ``slice_s`` has passed since the loop's last pause,
  so it lets the other tasks run (``await asyncio.sleep(0)``) before the next message;
* :meth:`InboundGuard.observe` counts events per second; above ``flood_rate`` the server is
  flooding: events that change nothing (no action) are counted instead of logged one by one
  (websockets' own per-frame lines have a budget of their own: ``FrameLogBudget``). The first
  flood of a session is reported with one warning; its end with one line in the technical log.
"""

from __future__ import annotations

from dataclasses import dataclass

RECEIVE_SLICE_S = 0.005  # receive-side work between two yields to the event loop
# A real session peaks near 100 events a second (25 audio deltas, words, word timings); three
# times that is a server gone wrong, not a busy answer. Logging one event costs up to a
# millisecond on a loaded machine, so a few hundred a second is also what the logs can take.
FLOOD_EVENTS_PER_S = 300


@dataclass
class InboundGuard:
    """Receive budget and flood detection for one conversation (kept across reconnects)."""

    slice_s: float = RECEIVE_SLICE_S
    flood_rate: int = FLOOD_EVENTS_PER_S
    flooding: bool = False
    warned: bool = False
    shed: int = 0  # events not logged during the current flood
    _slice_start: float | None = None
    _window_start: float = 0.0
    _window_count: int = 0

    def must_yield(self, now: float) -> bool:
        """Whether the loop has worked a whole slice since its last pause (and starts a new one)."""
        if self._slice_start is None:
            self._slice_start = now
            return False
        if now - self._slice_start >= self.slice_s:
            self._slice_start = None
            return True
        return False

    def observe(self, now: float) -> tuple[bool, str] | None:
        """Count one event; when a flood starts or ends, returns ``(loud, line)`` to log (``loud``
        only for the session's first flood, which the user is told about), else None."""
        if now - self._window_start >= 1.0:
            rate = self._window_count / max(now - self._window_start, 1.0)
            was, self.flooding = self.flooding, self._window_count > self.flood_rate
            self._window_start, self._window_count = now, 0
            if was and not self.flooding:
                line = (
                    f"the event flood is over: {self.shed} events that changed nothing "
                    "were counted, not logged"
                )
                self.shed = 0
                return False, line
            if self.flooding and not was:
                return self._flood_started(rate)
        self._window_count += 1
        if not self.flooding and self._window_count > self.flood_rate:
            self.flooding = True
            return self._flood_started(self._window_count / max(now - self._window_start, 1e-3))
        return None

    def _flood_started(self, rate: float) -> tuple[bool, str]:
        first = not self.warned
        self.warned = True
        return first, (
            f"Voice Live is sending about {rate:.0f} events a second (a session needs about 100): "
            "events that change nothing are counted, not logged, while it lasts"
        )
