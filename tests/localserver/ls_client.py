"""Test helper for the local server tests: a raw WebSocket Voice Live client on loopback that
records every server event and waits for the ones a test expects, always with a timeout."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import urlencode

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

DEFAULT_QUERY = {"api-version": "2026-07-15", "model": "gpt-realtime"}


def ws_url(
    http_url: str, query: dict[str, str] | None = None, path: str = "/voice-live/realtime"
) -> str:
    """The WebSocket URL for a server ``http://host:port`` endpoint."""
    return http_url.replace("http://", "ws://") + path + "?" + urlencode(query or DEFAULT_QUERY)


class Client:
    """Raw protocol client: ``send`` dicts, ``expect`` event types."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []  # everything received, in order
        self._unread: list[dict[str, Any]] = []

    @classmethod
    async def open(
        cls, http_url: str, query: dict[str, str] | None = None, key: str = "test-key"
    ) -> Client:
        ws = await connect(
            ws_url(http_url, query), additional_headers={"api-key": key}, max_size=None
        )
        return cls(ws)

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    async def send_audio(self, pcm: np.ndarray, chunk_ms: int = 100, rate: int = 24000) -> None:
        step = rate * chunk_ms // 1000
        for i in range(0, len(pcm), step):
            await self.send(
                {
                    "type": "input_audio_buffer.append",
                    "audio": base64.b64encode(pcm[i : i + step].astype("<i2").tobytes()).decode(),
                }
            )

    async def _next(self, timeout: float) -> dict[str, Any]:
        event = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.events.append(event)
        return event

    async def expect(self, event_type: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The next unread event of ``event_type`` (whose fields equal ``match``); earlier
        events of other types stay readable by later calls."""
        for i, event in enumerate(self._unread):
            if event["type"] == event_type and all(event.get(k) == v for k, v in match.items()):
                del self._unread[: i + 1]
                return event
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self._next(max(deadline - loop.time(), 0.001))
            if event["type"] == event_type and all(event.get(k) == v for k, v in match.items()):
                self._unread.clear()
                return event
            self._unread.append(event)

    async def ask(self, text: str) -> None:
        """The user types ``text`` and asks for a response."""
        await self.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
            }
        )
        await self.send({"type": "response.create"})

    def seen(self, event_type: str) -> list[dict[str, Any]]:
        """Every received event of ``event_type`` so far."""
        return [e for e in self.events if e["type"] == event_type]

    async def alive(self, tag: str) -> None:
        """Prove the session still answers: a clear must come back as cleared."""
        await self.send({"type": "input_audio_buffer.clear", "event_id": tag})
        await self.expect("input_audio_buffer.cleared")

    async def close(self) -> None:
        await self.ws.close()
