"""Voice Live peers on 127.0.0.1 that misbehave on purpose, for the fault-injection tests.

:class:`FaultyServer` is a :class:`ReplayServer` that can refuse the WebSocket upgrade on chosen
attempts (``refuse=refuse_first(2, 429)``), records the monotonic time of every upgrade attempt and
of every connection's open and close, and lets a script wait for the client's next connection.
The fault helpers act on one live connection the way a broken server or network would:

* :func:`drop` — abort the TCP transport: no close frame, the client sees 1006;
* :func:`close_with` — a closing handshake with a chosen code and reason (1000, 1001, 1011, ...);
* :func:`stall` — stop reading the socket (so pings go unanswered) but keep it open;
* :func:`send_oversized` — one text message larger than the client's receive limit;
* :func:`send_garbage` — non-JSON text, binary frames, JSON that is not an event, unknown types,
  events with missing or wrong-typed fields.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from tests.support.replay_server import ReplayServer, Script, ServerConn

# 1-based attempt number -> HTTP status to refuse with, or None
Refusal = Callable[[int], int | None]


def refuse_first(n: int, status: int) -> Refusal:
    """Refuse the first ``n`` upgrade attempts with ``status``, accept the later ones."""
    return lambda attempt: status if attempt <= n else None


def refuse_always(status: int) -> Refusal:
    return lambda attempt: status


def refuse_after(n: int, status: int) -> Refusal:
    """Accept the first ``n`` attempts, refuse every later one (a reconnect that never succeeds)."""
    return lambda attempt: status if attempt > n else None


class FaultyServer(ReplayServer):
    """A replay server with upgrade refusals and timing records.

    ``attempt_times`` holds the monotonic time of every upgrade request (refused or not);
    ``refused`` the statuses answered; each accepted connection's record gets the marks
    ``opened`` and ``closed``.
    """

    def __init__(self, script: Script, *, refuse: Refusal | None = None, **kwargs: Any) -> None:
        super().__init__(self._track(script), **kwargs)
        self.refuse = refuse
        self.attempt_times: list[float] = []
        self.refused: list[int] = []
        self.conns: list[ServerConn] = []
        self._changed = asyncio.Condition()

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        self.attempt_times.append(time.monotonic())
        response = super()._process_request(ws, request)
        if response is not None:
            return response
        status = self.refuse(self.attempts) if self.refuse is not None else None
        if status is not None:
            self.refused.append(status)
            return ws.respond(HTTPStatus(status), f"refused with {status}\n")
        return None

    def _track(self, script: Script) -> Script:
        async def tracked(conn: ServerConn) -> None:
            conn.record.marks["opened"] = time.monotonic()
            self.conns.append(conn)
            async with self._changed:
                self._changed.notify_all()
            await script(conn)

        return tracked

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            await super()._handle(ws)
        finally:
            for conn in self.conns:
                if conn.ws is ws:
                    conn.record.marks["closed"] = time.monotonic()
            async with self._changed:
                self._changed.notify_all()

    async def wait_connections(self, n: int, timeout: float = 15.0) -> ServerConn:
        """The ``n``-th accepted connection (1-based), once it exists."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.conns) >= n), timeout)
        return self.conns[n - 1]

    async def wait_closed(self, n: int, timeout: float = 15.0) -> None:
        """Until the ``n``-th connection has been closed (by either side)."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(
                    lambda: len(self.conns) >= n and "closed" in self.conns[n - 1].record.marks
                ),
                timeout,
            )


# -- faults on one live connection ---------------------------------------------------------------


def drop(conn: ServerConn) -> float:
    """Abort the TCP connection without a close frame (the client sees 1006); returns the time."""
    t = conn.mark("fault")
    assert conn.ws.transport is not None
    conn.ws.transport.abort()
    return t


async def close_with(conn: ServerConn, code: int, reason: str = "") -> float:
    """Start a closing handshake with ``code``; returns the time the close frame left."""
    t = conn.mark("fault")
    await conn.ws.close(code, reason)
    return t


def stall(conn: ServerConn) -> float:
    """Keep the TCP connection open but stop reading it: pings are no longer answered."""
    t = conn.mark("fault")
    assert conn.ws.transport is not None
    conn.ws.transport.pause_reading()
    return t


async def send_oversized(conn: ServerConn, nbytes: int) -> float:
    """Send one text message of ``nbytes`` (a syntactically valid event) over the client's limit."""
    filler = "A" * (nbytes - 64)
    message = json.dumps(
        {
            "type": "response.audio.delta",
            "response_id": "resp_huge",
            "item_id": "item_huge",
            "delta": filler,
        }
    )
    t = conn.mark("fault")
    await conn.send_raw(message)
    return t


# Each entry: (what it is, the message). Text frames are str, binary frames bytes.
GARBAGE: list[tuple[str, str | bytes]] = [
    ("non-JSON text", "this is not JSON {"),
    ("truncated JSON", '{"type": "response.audio.delta", "delta": "AAAA'),
    ("binary frame, not UTF-8", b"\x00\xff\xfe\x80binary\x01"),
    ("binary frame, random bytes", bytes(range(256))),
    ("JSON array", "[1, 2, 3]"),
    ("JSON string", '"response.done"'),
    ("JSON null", "null"),
    ("object without type", '{"event_id": "event_x", "session": {}}'),
    ("type is a number", '{"type": 42}'),
    ("type is empty", '{"type": ""}'),
    (
        "unknown event type",
        '{"type": "response.hologram.delta", "event_id": "event_u1", "delta": "??"}',
    ),
    (
        "unknown event type, future namespace",
        '{"type": "session.teleported", "session": {"id": "sess_zz"}}',
    ),
    (
        "audio delta with a number as audio",
        '{"type": "response.audio.delta", "response_id": "resp_bad", "item_id": "item_bad", '
        '"delta": 12345}',
    ),
    (
        "audio delta with invalid base64",
        '{"type": "response.audio.delta", "response_id": "resp_bad", "item_id": "item_bad", '
        '"delta": "@@not base64@@"}',
    ),
    (
        "audio delta without delta",
        '{"type": "response.audio.delta", "response_id": "resp_bad", "item_id": "item_bad"}',
    ),
    (
        "response.created with a string response",
        '{"type": "response.created", "response": "resp_x"}',
    ),
    (
        "response.created without an id",
        '{"type": "response.created", "response": {"status": "in_progress"}}',
    ),
    (
        "speech_stopped with a string time",
        '{"type": "input_audio_buffer.speech_stopped", "audio_end_ms": "soon", "item_id": 7}',
    ),
    (
        "transcription.completed with a null transcript",
        '{"type": "conversation.item.input_audio_transcription.completed", "item_id": "item_q", '
        '"transcript": null}',
    ),
    (
        "transcript.done with a list transcript",
        '{"type": "response.audio_transcript.done", "response_id": "resp_bad", '
        '"item_id": "item_bad2", "transcript": ["a", "b"]}',
    ),
    ("response.done with a list response", '{"type": "response.done", "response": []}'),
    ("error with a string error", '{"type": "error", "error": "boom"}'),
    ("session.updated with a null session", '{"type": "session.updated", "session": null}'),
    (
        "deeply nested junk",
        '{"type": "rate_limits.updated", "rate_limits": ' + "[" * 200 + "]" * 200 + "}",
    ),
]


async def send_garbage(conn: ServerConn, garbage: list[tuple[str, str | bytes]] = GARBAGE) -> None:
    """Send every message of ``garbage`` in order."""
    for _, message in garbage:
        await conn.send_raw(message)


def event_json(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False)
