"""The local Voice-Live-compatible WebSocket server: the handshake (path ``/voice-live/realtime``,
``api-version``, the three connection modes, ``api-key`` / ``Authorization: Bearer`` auth with an
HTTP 401 at the upgrade) and :class:`LocalServer`, the async context manager that runs it
in-process (tests, ``python -m pipelines.agent --local``) or from ``python -m localserver``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from localserver.brain import Brain, get_brain
from localserver.responder import Pacing
from localserver.session_state import ConnectionInfo, ServerSession, SessionOptions
from localserver.stt import POOL

log = logging.getLogger(__name__)
PATH = "/voice-live/realtime"
# a 15 MiB append is ~20 MiB of base64: answer it, do not drop it
MAX_CLIENT_EVENT_BYTES = 32 * 1024 * 1024


class HandshakeError(Exception):
    """A refused upgrade: HTTP status and body."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _query(path: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query, keep_blank_values=True).items()}


def credential(headers: Any, query: dict[str, str]) -> str | None:
    """The key or token presented: ``api-key`` header, ``Authorization: Bearer`` or query forms."""
    if headers.get("api-key"):
        return str(headers["api-key"])
    for auth in (headers.get("Authorization"), query.get("Authorization")):
        if auth and auth.lower().startswith("bearer "):
            return auth[7:].strip()
    return query.get("api-key") or None


def connection_info(path: str) -> ConnectionInfo:
    """Parse and check the upgrade URL; raises :class:`HandshakeError`."""
    if urlsplit(path).path.rstrip("/") != PATH:
        raise HandshakeError(HTTPStatus.NOT_FOUND, f"Resource not found. Use {PATH}.")
    q = _query(path)
    if not q.get("api-version"):
        raise HandshakeError(
            HTTPStatus.BAD_REQUEST, "Missing required query parameter: 'api-version'."
        )
    if "agent-id" in q:
        missing = [k for k in ("agent-project-name", "agent-access-token") if not q.get(k)]
        if missing:
            raise HandshakeError(
                HTTPStatus.BAD_REQUEST, f"Missing required query parameter: '{missing[0]}'."
            )
        return ConnectionInfo(
            "agent-classic",
            q.get("model") or "gpt-4o",
            agent_id=q["agent-id"],
            project=q["agent-project-name"],
            conversation_id=q.get("conversation-id"),
        )
    if "agent-name" in q:
        if not q.get("agent-project-name"):
            raise HandshakeError(
                HTTPStatus.BAD_REQUEST, "Missing required query parameter: 'agent-project-name'."
            )
        return ConnectionInfo(
            "agent",
            q.get("model") or "gpt-4o",
            agent_name=q["agent-name"],
            project=q["agent-project-name"],
            agent_version=q.get("agent-version"),
            conversation_id=q.get("conversation-id"),
        )
    if q.get("model"):
        return ConnectionInfo("model", q["model"])
    raise HandshakeError(
        HTTPStatus.BAD_REQUEST, "Missing required query parameter: 'model' (or an agent)."
    )


class LocalServer:
    """A running local Voice Live server. ``url`` is the endpoint to give a client
    (``http://host:port``; clients append ``/voice-live/realtime``).

    Use ``async with LocalServer(port=0) as server: ...`` or ``await start_local_server()``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        pacing: Pacing | None = None,
        brain_factory: Callable[[str | None], Brain] = get_brain,
    ) -> None:
        self.host, self.port, self.api_key = host, port, api_key
        self.options = SessionOptions(pacing=pacing or Pacing())
        self.brain_factory = brain_factory
        self.sessions: set[ServerSession] = set()
        self.sessions_served = 0
        self._server: Server | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` — the endpoint form the SDK and our client accept."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> LocalServer:
        """Bind and start serving (port 0 picks a free port)."""
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=MAX_CLIENT_EVENT_BYTES,
            compression=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        phrases = self.brain_factory(None).known_phrases
        # first session starts warm
        await asyncio.to_thread(lambda: POOL.release(POOL.acquire(phrases)))
        log.info("Voice Live local server listening on %s", self.url)
        return self

    async def close(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> LocalServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        try:
            connection_info(request.path)
        except HandshakeError as exc:
            return connection.respond(exc.status, exc.message + "\n")
        key = credential(request.headers, _query(request.path))
        if key is None or (self.api_key is not None and key != self.api_key):
            return connection.respond(
                HTTPStatus.UNAUTHORIZED,
                "Access denied due to invalid subscription key or wrong API endpoint.\n",
            )
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        info = connection_info(connection.request.path)
        brain = self.brain_factory(info.agent_name or info.agent_id)
        session = ServerSession(connection.send, info, brain, self.options)
        self.sessions.add(session)
        self.sessions_served += 1
        try:
            await session.run(connection)
        except ConnectionClosed:
            pass
        finally:
            self.sessions.discard(session)


async def start_local_server(host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> LocalServer:
    """Start a :class:`LocalServer` and return it (call ``await server.close()`` when done)."""
    return await LocalServer(host, port, **kwargs).start()
