"""Reconnection policy: how long to wait between attempts, how many, and how to resume.

Voice Live has no in-band resume: a current agent continues its conversation when the new
connection names it (``conversation-id`` = the ``thread_id`` the server gave); in model and
classic-agent mode the client replays the transcript history as ``conversation.item.create``.
Every connect (first, reconnect, renewal, each retry) passes one :class:`ConnectRate` limiter:
the service allows 30 new connections a minute.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger

from processors.voicelive.connection import ConnectionSettings, VoiceLiveConnection
from processors.voicelive.endpoint import Agent, Target
from processors.voicelive.errors import ConnectionFailed

EXPIRY_MARGIN_S = 60.0  # reconnect this long before session.expires_at
MAX_CONNECTION_S = 60 * 60.0  # the service's cap when expires_at is unknown
CONNECTS_PER_MINUTE = 30  # Voice Live's limit on new connections


class ConnectRate:
    """A sliding-window limit on connects: at most ``limit`` in any ``window_s`` (sans-I/O).

    ``wait(now)`` says how long a connect must wait; ``record(now)`` notes one that happened.
    ``now`` is any monotonic clock in seconds. Optional connects (a renewal ahead of expiry)
    also keep the average spacing ``window_s / limit`` from the previous connect, so a server
    with 2-second sessions gets a connect every 2 s rather than 30 at once then a minute of none.
    """

    def __init__(self, limit: int = CONNECTS_PER_MINUTE, window_s: float = 60.0) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("the connect rate needs a limit >= 1 and a positive window")
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()

    @property
    def spacing_s(self) -> float:
        """The average spacing the limit allows (2 s for 30 a minute)."""
        return self.window_s / self.limit

    def wait(self, now: float, *, optional: bool = False) -> float:
        """Seconds until a connect at ``now`` keeps the limit (0 when it may go at once)."""
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        wait = 0.0
        if len(self._times) >= self.limit:
            wait = self._times[len(self._times) - self.limit] + self.window_s - now
        if optional and self._times:
            wait = max(wait, self._times[-1] + self.spacing_s - now)
        return max(0.0, wait)

    def record(self, now: float) -> None:
        """A connect attempt was made at ``now``."""
        self._times.append(now)

    def retime(self, reserved_at: float, now: float) -> None:
        """A connect recorded (reserved) at ``reserved_at`` really happens at ``now``: count it
        there (the batch runner reserves a conversation's first connect when it dispatches it)."""
        try:
            self._times.remove(reserved_at)
        except ValueError:
            pass  # it already left the window
        self._times.append(now)

    def count(self, now: float) -> int:
        """Connects in the window ending at ``now``."""
        return sum(1 for t in self._times if t > now - self.window_s)


@dataclass
class Backoff:
    """Exponential backoff with jitter: retry *n* waits uniformly in [b·2ⁿ⁻¹/2, b·2ⁿ⁻¹], capped."""

    base: float = 0.5
    cap: float = 8.0
    attempts: int = 6
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        high = min(self.cap, self.base * 2 ** (retry - 1))
        return self.rng.uniform(high / 2, high)


def resume_target(target: Target, thread_id: str | None) -> Target:
    """The target of a reconnect: a current agent continues its conversation by id."""
    if isinstance(target, Agent) and thread_id:
        return dataclasses.replace(target, conversation_id=thread_id)
    return target


def replays_history(target: Target) -> bool:
    """Whether the transcript must be replayed after reconnecting (no server-side resume)."""
    return not isinstance(target, Agent)


async def open_with_retry(
    settings: ConnectionSettings,
    backoff: Backoff,
    *,
    attempts: int | None = None,
    sleep: Callable[[float], object] = asyncio.sleep,
    rate: ConnectRate | None = None,
) -> VoiceLiveConnection:
    """Open a connection, retrying retryable failures (429, 5xx, refused, timeouts).

    Each attempt first waits for ``rate`` (when given) and is recorded in it.
    Raises the last :class:`ConnectionFailed` when it is not retryable or attempts run out.
    """
    total = attempts or backoff.attempts
    for attempt in range(1, total + 1):
        if rate is not None:
            await wait_for_rate(rate, sleep=sleep)
        conn = VoiceLiveConnection(settings)
        try:
            await conn.open()
            return conn
        except ConnectionFailed as exc:
            if not exc.retryable or attempt == total:
                if exc.retryable:
                    raise ConnectionFailed(
                        f"{exc} (gave up after {attempt} attempts)",
                        retryable=False,
                        status=exc.status,
                    ) from None
                raise
            delay = backoff.delay(attempt)
            logger.warning(f"{exc}; retrying in {delay:.1f} s (attempt {attempt + 1} of {total})")
            await sleep(delay)  # type: ignore[misc]
    raise AssertionError("unreachable")


async def wait_for_rate(
    rate: ConnectRate, *, optional: bool = False, sleep: Callable[[float], object] = asyncio.sleep
) -> None:
    """Wait until ``rate`` allows a connect, then record it."""
    wait = rate.wait(time.monotonic(), optional=optional)
    if wait > 0:
        if not optional:
            logger.warning(
                f"waiting {wait:.1f} s before connecting: Voice Live allows {rate.limit} new "
                "connections a minute"
            )
        await sleep(wait)  # type: ignore[misc]
    rate.record(time.monotonic())


def seconds_until_refresh(
    expires_at: int | None, connected_at: float, now_wall: float | None = None
) -> float:
    """Seconds from now until a proactive reconnect is due (never negative)."""
    now_wall = time.time() if now_wall is None else now_wall
    cap = connected_at + MAX_CONNECTION_S - EXPIRY_MARGIN_S
    if expires_at is None or expires_at <= connected_at:
        # Unknown, or already past when we connected (clock skew): only the 60-minute cap holds.
        return max(0.0, cap - now_wall)
    lifetime = expires_at - connected_at
    margin = min(EXPIRY_MARGIN_S, lifetime / 2)  # short-lived sessions renew halfway
    return max(0.0, min(expires_at - margin, cap) - now_wall)
