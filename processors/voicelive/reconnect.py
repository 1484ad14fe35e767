"""Reconnection policy: how long to wait between attempts, how many, and how to resume.

Voice Live has no in-band resume: a current agent continues its conversation when the new
connection names it (``conversation-id`` = the ``thread_id`` the server gave); in model and
classic-agent mode the client replays the transcript history as ``conversation.item.create``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger

from processors.voicelive.connection import ConnectionSettings, VoiceLiveConnection
from processors.voicelive.endpoint import Agent, Target
from processors.voicelive.errors import ConnectionFailed

EXPIRY_MARGIN_S = 60.0  # reconnect this long before session.expires_at
MAX_CONNECTION_S = 60 * 60.0  # the service's cap when expires_at is unknown


@dataclass
class Backoff:
    """Exponential backoff with jitter: retry *n* waits uniformly in [b·2ⁿ⁻¹/2, b·2ⁿ⁻¹], capped."""

    base: float = 0.5
    cap: float = 8.0
    attempts: int = 6
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry: int) -> float:
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
) -> VoiceLiveConnection:
    """Open a connection, retrying retryable failures (429, 5xx, refused, timeouts).

    Raises the last :class:`ConnectionFailed` when it is not retryable or attempts run out.
    """
    total = attempts or backoff.attempts
    for attempt in range(1, total + 1):
        conn = VoiceLiveConnection(settings)
        try:
            await conn.open()
            return conn
        except ConnectionFailed as exc:
            if not exc.retryable or attempt == total:
                if exc.retryable:
                    raise ConnectionFailed(f"{exc} (gave up after {attempt} attempts)", retryable=False, status=exc.status) from None
                raise
            delay = backoff.delay(attempt)
            logger.warning(f"{exc}; retrying in {delay:.1f} s (attempt {attempt + 1} of {total})")
            await sleep(delay)  # type: ignore[misc]
    raise AssertionError("unreachable")


def seconds_until_refresh(expires_at: int | None, connected_at: float, now_wall: float | None = None) -> float:
    """Seconds from now until a proactive reconnect is due (never negative)."""
    now_wall = time.time() if now_wall is None else now_wall
    cap = connected_at + MAX_CONNECTION_S - EXPIRY_MARGIN_S
    if expires_at is None or expires_at <= connected_at:
        # Unknown, or already past when we connected (clock skew): only the 60-minute cap holds.
        return max(0.0, cap - now_wall)
    lifetime = expires_at - connected_at
    margin = min(EXPIRY_MARGIN_S, lifetime / 2)  # short-lived sessions renew halfway
    return max(0.0, min(expires_at - margin, cap) - now_wall)
