"""One WebSocket connection to Voice Live: authentication, the upgrade, a non-blocking send queue.

Credentials are resolved at each :meth:`VoiceLiveConnection.open` (an Entra token is minted fresh
for every connect, as there is no in-band refresh) and registered with the redactor before anything
could log them. Failures become :class:`ConnectionFailed` with one line naming the cause.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from loguru import logger
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from processors.redaction import add_secret
from processors.voicelive.endpoint import (
    TOKEN_SCOPE,
    ClassicAgent,
    Endpoint,
    Target,
    build_headers,
    build_url,
)
from processors.voicelive.errors import ConfigError, ConnectionFailed
from processors.voicelive.wire import encode_client_event

MAX_SERVER_EVENT_BYTES = 8 * 1024 * 1024
CLOSE_CHECK_S = 0.25  # how often a connection checks whether websockets started closing it
READ_CHUNK_BYTES = 16 * 1024  # socket bytes parsed per event-loop turn (see _limit_reads)
# A session logs 50-70 frames a second (25 audio deltas, 25 appends, words): see FrameLogBudget.
FRAME_LINES_PER_S = 100
MAX_QUEUED_AUDIO = 100  # appends (about 4 s at 40 ms each) before mic audio is dropped
# Voice Live creates the session with the upgrade and sends session.created at once; it answers
# session.update as soon as the configuration is applied (well under a second in the recorded
# sessions, a few seconds at worst when an agent is loaded). A socket that is open but has no
# ready session after 15 s is a server that is stuck, not a slow one: the client reconnects
# rather than drop the user's speech without a word. The upgrade itself is bounded by
# open_timeout (10 s).
SESSION_TIMEOUT_S = 15.0
# Keepalive: a socket that stops answering (a dead NAT entry, a stalled server) is given up
# within interval + timeout + close_timeout = 10.5 s; everything said meanwhile went into it.
# websockets' defaults (20 s + 20 s) left a 40 s blind window. A ping is a few bytes every 5 s
# (Voice Live answers pings like any WebSocket server); a pong 5 s late means a link too stalled
# to carry a conversation, and the cost of a false alarm is one reconnect that loses nothing
# (the gap's audio is held and the conversation resumed).
PING_INTERVAL_S = 5.0
PING_TIMEOUT_S = 5.0
CLIENT_CLOSE_CAUSES = {
    1002: "broke the WebSocket protocol",
    1003: "sent a kind of frame the client does not accept",
    1007: "sent a text message that is not valid UTF-8",
}
# protocol or policy errors: retrying cannot help
FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1010})

ConnectGate = Callable[[], Awaitable[None]]
_connect_gate: ConnectGate | None = None


def set_connect_gate(gate: ConnectGate | None) -> None:
    """Await ``gate()`` before every WebSocket connect in this process (first connects,
    reconnects and renewals alike): the batch runner paces connects across its workers with it."""
    global _connect_gate
    _connect_gate = gate


def _env_seconds(name: str, default: float) -> float:
    """Keepalive timings may be tightened through the environment (tests use short ones)."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


# What is missing when Entra ID cannot mint a token, and what to do: the token stands in for the
# API key, or (classic agent mode with a key) for the agent access token.
NO_KEY = ("no Entra ID token", "set AZURE_VOICE_LIVE_API_KEY or sign in with `az login`")
NO_AGENT_TOKEN = (
    "no agent access token, and no Entra ID token to use as one",
    "pass --agent-access-token (AI_FOUNDRY_AGENT_ACCESS_TOKEN) or sign in with `az login`",
)


class Credentials:
    """An API key, or Entra ID through ``DefaultAzureCredential`` (a token minted per connect)."""

    def __init__(
        self,
        api_key: str | None = None,
        token_credential: Any | None = None,
        scope: str = TOKEN_SCOPE,
    ) -> None:
        self.api_key = api_key or None
        self._credential = token_credential
        self._own_credential = False
        self.scope = scope
        add_secret(self.api_key)

    @property
    def uses_entra(self) -> bool:
        """Whether tokens are minted through Entra ID (no API key was given)."""
        return self.api_key is None

    async def entra_token(self, missing: tuple[str, str] = NO_KEY) -> str:
        """A fresh Entra access token for ``scope``; ``missing``: what is missing without one, and
        what to do."""
        if self._credential is None:
            from azure.identity.aio import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
            self._own_credential = True
        try:
            token = await self._credential.get_token(self.scope)
        except Exception as exc:  # azure-identity raises several unrelated types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise ConnectionFailed(f"{missing[0]} ({first[:160]}): {missing[1]}") from None
        add_secret(token.token)
        return token.token

    async def close(self) -> None:
        """Close the Entra credential this object created (one passed in is the caller's)."""
        if self._own_credential and self._credential is not None:
            await self._credential.close()
            self._credential = None


@dataclass
class ConnectionSettings:
    """Everything needed to open a connection, validated before the first attempt."""

    endpoint: Endpoint
    target: Target
    api_version: str
    credentials: Credentials
    debug: bool = False
    client_echo_reference: bool = False
    """Ask for ``features=client_ec_reference:true`` (the session's client echo reference)."""
    open_timeout: float = 10.0
    ping_interval: float | None = field(
        default_factory=lambda: _env_seconds("VOICELIVE_PING_INTERVAL", PING_INTERVAL_S)
    )
    ping_timeout: float | None = field(
        default_factory=lambda: _env_seconds("VOICELIVE_PING_TIMEOUT", PING_TIMEOUT_S)
    )
    session_timeout: float = field(
        default_factory=lambda: _env_seconds("VOICELIVE_SESSION_TIMEOUT", SESSION_TIMEOUT_S)
    )
    """From the open socket to ``session.updated`` (see :data:`SESSION_TIMEOUT_S`)."""
    max_message_bytes: int = MAX_SERVER_EVENT_BYTES

    def __post_init__(self) -> None:
        if isinstance(self.target, ClassicAgent):
            add_secret(self.target.access_token)


def _cause(exc: OSError) -> str:
    return exc.strerror or str(exc) or exc.__class__.__name__


def describe_open_error(exc: BaseException, host: str) -> ConnectionFailed:
    """Map an exception raised while opening the socket to one actionable line."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return ConnectionFailed(
                f"Voice Live refused the credentials (HTTP {status}): "
                "check AZURE_VOICE_LIVE_API_KEY (or your Entra ID sign-in and role) and, "
                "in agent mode, the agent access token",
                status=status,
            )
        if status == 404:
            return ConnectionFailed(
                f"no Voice Live endpoint at {host} (HTTP 404): check the endpoint and api-version",
                status=status,
            )
        if status == 429:
            return ConnectionFailed(
                "Voice Live is rate limiting new connections (HTTP 429)",
                retryable=True,
                status=status,
            )
        if status >= 500:
            return ConnectionFailed(
                f"Voice Live server error at the upgrade (HTTP {status})",
                retryable=True,
                status=status,
            )
        return ConnectionFailed(f"Voice Live refused the connection (HTTP {status})", status=status)
    if isinstance(exc, socket.gaierror):
        return ConnectionFailed(
            f"cannot resolve host {host!r}: check the endpoint (DNS: {_cause(exc)})"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConnectionFailed(
            f"TLS certificate of {host} could not be verified: {exc.verify_message or exc}"
        )
    if isinstance(exc, ssl.SSLError):
        return ConnectionFailed(f"TLS handshake with {host} failed: {exc.reason or exc}")
    if isinstance(exc, TimeoutError):
        return ConnectionFailed(f"timed out connecting to {host}", retryable=True)
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionFailed(
            f"connection to {host} refused: is the endpoint right and the server up?",
            retryable=True,
        )
    if isinstance(exc, OSError):
        if isinstance(exc, ConnectionResetError):
            return ConnectionFailed(
                f"{host} reset the connection during the handshake (is it a TLS endpoint?)",
                retryable=True,
            )
        return ConnectionFailed(f"cannot connect to {host}: {_cause(exc)}", retryable=True)
    if isinstance(exc, (InvalidHandshake, InvalidURI)):
        return ConnectionFailed(f"WebSocket handshake with {host} failed: {exc}")
    return ConnectionFailed(f"cannot connect to {host}: {exc.__class__.__name__}: {exc}")


class FrameLogBudget(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets' logger for one connection, with at most ``per_second`` debug lines a second.

    websockets logs every frame at DEBUG (the technical log's protocol lines, ``< TEXT ...``)
    from inside its parser, before the receive loop sees a message. Each line is handed to the
    log's writer thread; on a loaded machine that costs milliseconds, and a flood of thousands of
    small events a second logged frame by frame held the event loop for 1.5-3 s at a time. Lines
    over the budget are counted, and the count is logged once the second is over.
    """

    def __init__(self, logger: logging.Logger, per_second: int = FRAME_LINES_PER_S) -> None:
        super().__init__(logger, {})
        self.per_second = per_second
        self.dropped = 0
        self._window = 0.0
        self._count = 0

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Log like ``Logger.log``; debug lines over the budget are counted instead."""
        if level <= logging.DEBUG:
            now = time.monotonic()
            if now - self._window >= 1.0:
                if self.dropped:
                    self.logger.debug(
                        "%d frame lines not logged in the last second (over %d a second)",
                        self.dropped,
                        self.per_second,
                    )
                self._window, self._count, self.dropped = now, 0, 0
            self._count += 1
            if self._count > self.per_second:
                self.dropped += 1
                return
        self.logger.log(level, msg, *args, **kwargs)


def _limit_reads(ws: ClientConnection) -> None:
    """Read at most :data:`READ_CHUNK_BYTES` from the socket per event-loop turn.

    websockets parses everything one read returns in a single callback; asyncio reads up to
    256 KiB, which during a flood of small events is ~1,700 messages parsed without a pause
    (measured 0.25-0.5 s on a loaded machine, with the microphone waiting). The attribute is
    asyncio's own per-transport read size (``max_size``; on TLS, its SSL protocol's).
    """
    transport = ws.transport
    target = getattr(transport, "_ssl_protocol", None) or transport
    if isinstance(getattr(target, "max_size", None), int):
        target.max_size = READ_CHUNK_BYTES


class VoiceLiveConnection:
    """A single WebSocket session. ``send`` never blocks; a sender task drains the queue."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._ws: ClientConnection | None = None
        self._queue: asyncio.Queue[tuple[str, bool] | None] = asyncio.Queue()
        self._queued_audio = 0
        self._sender: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.dropped_audio = 0
        self.request_id: str | None = None

    @property
    def is_open(self) -> bool:
        """Whether the WebSocket is connected and open."""
        return self._ws is not None and self._ws.state is websockets.protocol.State.OPEN

    async def open(self) -> None:
        """Mint credentials, build the URL and headers, and open the socket."""
        if _connect_gate is not None:  # paced before minting, so a token is fresh when used
            await _connect_gate()
        s = self.settings
        creds = s.credentials
        bearer = await creds.entra_token() if creds.uses_entra else None
        access_token = None
        if isinstance(s.target, ClassicAgent) and not s.target.access_token:
            access_token = bearer or await creds.entra_token(NO_AGENT_TOKEN)
        try:
            url = build_url(
                s.endpoint,
                s.target,
                api_version=s.api_version,
                access_token=access_token,
                debug=s.debug,
                client_echo_reference=s.client_echo_reference,
            )
            headers = build_headers(api_key=creds.api_key, bearer_token=bearer)
        except ConfigError as exc:
            raise ConnectionFailed(str(exc)) from None
        self.request_id = headers["x-ms-client-request-id"]
        logger.info(f"Connecting to {s.endpoint.base} (x-ms-client-request-id {self.request_id})")
        try:
            self._ws = await connect(
                url,
                additional_headers=headers,
                max_size=s.max_message_bytes,
                ping_interval=s.ping_interval,
                ping_timeout=s.ping_timeout,
                open_timeout=s.open_timeout,
                # A failed keepalive waits this long for the peer's close before recv() raises,
                # so it bounds how fast a dead peer is detected
                # (ping_interval + ping_timeout + this).
                close_timeout=0.5,
                # No permessage-deflate: base64 PCM barely compresses, and deflating every append
                # (inflating every delta) was ~19 % of a worker's CPU (bench.session_cost).
                compression=None,
                logger=FrameLogBudget(logging.getLogger("websockets.client")),
            )
        except Exception as exc:
            raise describe_open_error(exc, s.endpoint.host) from None
        _limit_reads(self._ws)
        self._queue = asyncio.Queue()
        self._queued_audio = 0
        self._sender = asyncio.create_task(self._send_loop(self._ws), name="voicelive-sender")
        self._closer = asyncio.create_task(
            self._end_stuck_close(self._ws), name="voicelive-close-watch"
        )
        logger.info("Connected to Voice Live")

    def send(self, event: dict[str, Any], *, audio: bool = False) -> bool:
        """Queue ``event``; mic ``audio`` is dropped (and counted) when the queue is backed up."""
        if self._ws is None:
            return False
        if audio:
            if self._queued_audio >= MAX_QUEUED_AUDIO:
                self.dropped_audio += 1
                if self.dropped_audio == 1 or self.dropped_audio % 50 == 0:
                    logger.warning(
                        f"send queue backed up: dropped {self.dropped_audio} "
                        "microphone chunks so far"
                    )
                return False
            self._queued_audio += 1
        self._queue.put_nowait((encode_client_event(event), audio))
        return True

    async def _send_loop(self, ws: ClientConnection) -> None:
        while True:
            queued = await self._queue.get()
            if queued is None:
                return
            message, is_audio = queued
            if is_audio:
                self._queued_audio -= 1
            try:
                await ws.send(message)
            except ConnectionClosed:
                return

    async def _end_stuck_close(self, ws: ClientConnection) -> None:
        """Abort a closing handshake the peer leaves unanswered for ``close_timeout``.

        When websockets closes by itself (1007 on invalid UTF-8, 1002 on a protocol error) it
        enforces its close timeout only inside a later ``send``: with the socket's buffer full
        (a peer that stopped reading) none comes, and ``recv`` waited for ever.
        """
        timeout = ws.close_timeout or 0.5
        while ws.state is websockets.protocol.State.OPEN:
            await asyncio.sleep(CLOSE_CHECK_S)
        await asyncio.sleep(timeout)
        if ws.state is not websockets.protocol.State.CLOSED and ws.transport is not None:
            logger.debug(f"the peer did not answer the closing handshake within {timeout:g} s")
            ws.transport.abort()

    async def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message; raises :class:`ConnectionFailed` when the connection is gone.

        With ``timeout``, raises :class:`TimeoutError` when nothing arrives in time (cancelling
        websockets' ``recv`` is safe: no message is lost).
        """
        ws = self._ws
        if ws is None:
            raise ConnectionFailed("not connected")
        try:
            if timeout is None:
                return await ws.recv()
            return await asyncio.wait_for(ws.recv(), max(0.0, timeout))
        except ConnectionClosed as exc:
            raise self.closed_error(exc) from None

    def closed_error(self, exc: ConnectionClosed) -> ConnectionFailed:
        """Describe a closed connection; protocol and policy errors are not worth a retry."""
        rcvd, sent = exc.rcvd, exc.sent
        if sent is not None and sent.code == 1009:
            return ConnectionFailed(
                f"a server message exceeded the {self.settings.max_message_bytes} byte limit "
                "(close 1009)",
                retryable=True,
            )
        if rcvd is None and sent is not None and sent.code == 1011 and "ping" in sent.reason:
            return ConnectionFailed("Voice Live stopped answering keepalive pings", retryable=True)
        if sent is not None and (rcvd is None or exc.rcvd_then_sent is False):
            # The client closed first (websockets does, on data that breaks the protocol): say
            # what the server sent, not "lost without a close frame". One bad frame is not a
            # reason to give up the session: reconnect.
            cause = CLIENT_CLOSE_CAUSES.get(sent.code, "sent data the client could not accept")
            detail = f": {sent.reason}" if sent.reason else ""
            return ConnectionFailed(
                f"Voice Live {cause}; the client closed the connection ({sent.code}{detail})",
                retryable=True,
            )
        if rcvd is None:
            return ConnectionFailed(
                "connection to Voice Live lost without a close frame (1006)", retryable=True
            )
        reason = f": {rcvd.reason}" if rcvd.reason else ""
        if rcvd.code == 1000:
            return ConnectionFailed(f"Voice Live closed the session (1000{reason})", retryable=True)
        return ConnectionFailed(
            f"Voice Live closed the connection ({rcvd.code}{reason})",
            retryable=rcvd.code not in FATAL_CLOSE_CODES,
        )

    async def abort(self) -> None:
        """Drop the connection without a closing handshake (it is already broken)."""
        ws, self._ws = self._ws, None
        for task in (self._sender, self._closer):
            if task is not None:
                task.cancel()
        if ws is not None and ws.transport is not None:
            ws.transport.abort()

    async def close(self, code: int = 1000, reason: str = "", *, flush_s: float = 1.0) -> None:
        """Give queued events up to ``flush_s`` to leave, then close with ``code``.

        The closing handshake waits at most ``close_timeout`` (0.5 s) for the peer.
        """
        ws, self._ws = self._ws, None
        if ws is None:
            return
        if self._sender is not None:
            self._queue.put_nowait(None)
            try:
                if flush_s <= 0:
                    raise TimeoutError
                await asyncio.wait_for(asyncio.shield(self._sender), timeout=flush_s)
            except (TimeoutError, asyncio.CancelledError):
                self._sender.cancel()
        if self._closer is not None:
            self._closer.cancel()
        try:
            await ws.close(code, reason)
        except Exception as exc:  # closing a dead socket must not raise to the caller
            logger.debug(f"close: {exc}")
        logger.info(f"Connection closed ({code})")
