"""A real Voice Live peer for tests: a websockets server on 127.0.0.1 that plays a script.

Each connection runs ``script(conn)``; :class:`ServerConn` lets the script send server events
(recording the monotonic time each left), wait for client events, and stream audio deltas at a
chosen pace. Everything the client did is recorded on :class:`ConnectionRecord`: the request
path, query and headers, every client event with its arrival time, every event sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response


@dataclass
class ConnectionRecord:
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    client_events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    sent: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    close_code: int | None = None
    marks: dict[str, float] = field(default_factory=dict)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.client_events if e.get("type") == kind]

    def appended_audio(self) -> bytes:
        """Every microphone sample the client appended on this connection, in order."""
        appends = self.of_type("input_audio_buffer.append")
        return b"".join(base64.b64decode(e["audio"]) for e in appends)

    def appended_audio_bytes(self) -> int:
        return sum(
            len(base64.b64decode(e["audio"])) for e in self.of_type("input_audio_buffer.append")
        )


class ServerConn:
    """The script's handle on one client connection."""

    def __init__(self, ws: ServerConnection, record: ConnectionRecord) -> None:
        self.ws = ws
        self.record = record
        self._arrived = asyncio.Condition()

    async def send(self, event: dict[str, Any]) -> float:
        await self.ws.send(json.dumps(event, ensure_ascii=False))
        t = time.monotonic()
        self.record.sent.append((t, event))
        return t

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    def mark(self, name: str) -> float:
        t = time.monotonic()
        self.record.marks[name] = t
        return t

    async def _pump(self) -> None:
        try:
            async for message in self.ws:
                event = json.loads(message)
                async with self._arrived:
                    self.record.client_events.append((time.monotonic(), event))
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass
        finally:
            async with self._arrived:
                self._arrived.notify_all()

    async def wait_for(self, kind: str, *, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """The ``count``-th client event of ``kind`` (waits for it)."""

        def ready() -> bool:
            return len(self.record.of_type(kind)) >= count or self.ws.close_code is not None

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(ready), timeout)
        events = self.record.of_type(kind)
        if len(events) < count:
            raise AssertionError(f"client closed before sending {kind} #{count}")
        return events[count - 1]

    async def wait_until(self, ready: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Until ``ready()`` holds, checked per client event (else ``TimeoutError``)."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(ready), timeout)

    async def wait_audio(self, nbytes: int, *, timeout: float = 10.0) -> None:
        """Until the client has appended at least ``nbytes`` of audio."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: self.record.appended_audio_bytes() >= nbytes),
                timeout,
            )

    async def stream_audio(
        self,
        response_id: str,
        item_id: str,
        pcm: bytes,
        *,
        chunk_ms: int = 100,
        speed: float = 2.0,
        rate: int = 24000,
    ) -> list[float]:
        """Send ``pcm`` as ``response.audio.delta`` chunks at ``speed`` times real time."""
        step = rate * chunk_ms // 1000 * 2
        times: list[float] = []
        start = time.monotonic()
        for k, offset in enumerate(range(0, len(pcm), step)):
            due = start + k * chunk_ms / 1000.0 / speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            delta = base64.b64encode(pcm[offset : offset + step]).decode("ascii")
            times.append(
                await self.send(
                    {
                        "type": "response.audio.delta",
                        "event_id": f"event_d{k}",
                        "response_id": response_id,
                        "item_id": item_id,
                        "output_index": 0,
                        "content_index": 0,
                        "delta": delta,
                    }
                )
            )
        return times


Script = Callable[[ServerConn], Awaitable[None]]


class ReplayServer:
    """``async with ReplayServer(script) as server: ... server.url ... server.connections``."""

    def __init__(
        self,
        script: Script,
        *,
        reject_status: int | None = None,
        path: str = "/voice-live/realtime",
    ) -> None:
        self.script = script
        self.reject_status = reject_status
        self.path = path
        self.connections: list[ConnectionRecord] = []
        self.attempts = 0
        self.script_errors: list[BaseException] = []
        self._server: Server | None = None
        self.done = asyncio.Event()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        self.attempts += 1
        if urlsplit(request.path).path != self.path:
            return ws.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if self.reject_status is not None:
            return ws.respond(HTTPStatus(self.reject_status), "refused\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        parts = urlsplit(ws.request.path)
        record = ConnectionRecord(
            path=parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query).items()},
            headers={k.lower(): v for k, v in ws.request.headers.raw_items()},
        )
        self.connections.append(record)
        conn = ServerConn(ws, record)
        pump = asyncio.create_task(conn._pump())
        try:
            await self.script(conn)
            await ws.wait_closed()
        except ConnectionClosed:
            pass
        except BaseException as exc:  # surfaced by the test through script_errors
            self.script_errors.append(exc)
            raise
        finally:
            record.close_code = ws.close_code
            await pump
            self.done.set()

    async def __aenter__(self) -> ReplayServer:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            max_size=16 * 1024 * 1024,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
