"""Conversations with a fault in the middle, for :class:`tests.support.faulty_server.FaultyServer`.

:class:`ResumeConversation` is the reconnect story: on the first connection turn 1 is answered in
full, turn 2's answer starts (a few words, some audio) and then the fault strikes; on the next
connection the server waits for the resumed conversation (the replayed history, when the mode
replays it) and answers turn 3 in full. Every server event is timestamped, so a test can read the
reconnect time off the records: from the fault to the new connection's ``session.created``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.faulty_server import FaultyServer, Refusal, stall
from tests.support.replay_server import ServerConn
from tests.support.scenarios import (
    RATE,
    Turn,
    handshake,
    noise,
    response_end,
    response_start,
    session_created,
    session_updated,
    transcript_deltas,
    user_speaks,
)
from tests.support.script_run import API_KEY, ScriptRun, run_script

Fault = Callable[[ServerConn], Awaitable[Any] | Any]
THREAD_ID = "thread_resume_42"


def agent_info(name: str = "my-agent", thread_id: str = THREAD_ID) -> dict[str, Any]:
    """``session.agent`` as a current agent's session.created carries it."""
    return {
        "type": "agent",
        "name": name,
        "description": "",
        "agent_id": f"{name}:1",
        "thread_id": thread_id,
    }


def default_turns() -> tuple[Turn, Turn, Turn]:
    return (
        Turn(
            "What is the capital of France?", "The capital of France is Paris.", noise(0.8, seed=11)
        ),
        Turn(
            "Tell me a long story about Zürich",
            "Once upon a time in Zürich there lived a clever fox",
            noise(1.2, seed=12),
        ),
        Turn("Are you still there?", "Yes, I am still here.", noise(0.6, seed=13)),
    )


async def answer(conn: ServerConn, turn: Turn, *, speed: float = 4.0) -> None:
    """One whole turn: the user speaks, the agent answers in words and audio."""
    await user_speaks(conn, turn)
    await response_start(conn, turn)
    await transcript_deltas(conn, turn)
    await conn.stream_audio(turn.response_id, turn.item_id, turn.audio, speed=speed)
    await response_end(conn, turn)


@dataclass
class ResumeConversation:
    """Turn 1 whole, turn 2 cut by ``fault`` after ``spoken_words`` words, turn 3 on the next
    connection.

    ``replay_items`` is how many ``conversation.item.create`` the resumed connection must send
    before turn 3: turn 1, turn 2's question and the words of turn 2 heard before the fault (0 in
    current-agent mode, where the server resumes by conversation id).
    ``expires_in`` sets the first session's ``expires_at`` that many seconds ahead (proactive
    renewal); then no fault is applied and the conversation waits for the client to move.
    """

    fault: Fault | None
    replay_items: int = 4
    agent: dict[str, Any] | None = None
    spoken_words: int = 4
    turns: tuple[Turn, Turn, Turn] = field(default_factory=default_turns)
    expires_in: float | None = None
    server: FaultyServer | None = None
    resumed: asyncio.Event = field(default_factory=asyncio.Event)
    _count: int = 0

    @property
    def spoken_text(self) -> str:
        """The words of turn 2 the client received before the fault."""
        return " ".join(self.turns[1].agent_text.split(" ")[: self.spoken_words])

    async def __call__(self, conn: ServerConn) -> None:
        self._count += 1
        if self._count == 1:
            await self._first(conn)
        elif self._count == 2:
            await self._second(conn)
        else:
            await handshake(conn, session_id=f"sess_Extra{self._count}", agent=self.agent)

    async def _first(self, conn: ServerConn) -> None:
        turn1, turn2, _ = self.turns
        if self.expires_in is not None:
            await self._handshake_expiring(conn, time.time() + self.expires_in)
        else:
            await handshake(conn, session_id="sess_First", agent=self.agent)
        await conn.wait_audio(RATE * 2 // 5)  # 200 ms of microphone audio
        await answer(conn, turn1)
        conn.mark("turn1_done")
        if self.expires_in is not None:
            return  # the client renews the connection by itself; it closes this one with 1000
        await user_speaks(conn, turn2)
        await response_start(conn, turn2)
        await transcript_deltas(
            conn, turn2, " ".join(turn2.agent_text.split(" ")[: self.spoken_words])
        )
        await conn.stream_audio(
            turn2.response_id, turn2.item_id, turn2.audio[: RATE * 2 * 3 // 10], speed=2.0
        )
        assert self.fault is not None
        result = self.fault(conn)
        if asyncio.iscoroutine(result):
            await result

    async def _handshake_expiring(self, conn: ServerConn, expires_at: float) -> None:
        # A real server takes a moment to create the session: the expiry must still be noticed
        # when it arrives after the client started watching for it.
        await asyncio.sleep(0.3)
        created = session_created("sess_First", self.agent)
        created["session"]["expires_at"] = int(expires_at)
        await conn.send(created)
        update = await conn.wait_for("session.update")
        await conn.send(session_updated(created, update))

    async def _second(self, conn: ServerConn) -> None:
        _, _, turn3 = self.turns
        created = session_created("sess_Second", self.agent)
        created["session"]["expires_at"] = int(time.time() + 3600)
        await conn.send(created)
        conn.mark("session_created")
        update = await conn.wait_for("session.update")
        await conn.send(session_updated(created, update))
        if self.replay_items:
            await conn.wait_for("conversation.item.create", count=self.replay_items, timeout=5.0)
        self.resumed.set()
        await conn.wait_audio(RATE * 2 // 5)
        await answer(conn, turn3)
        conn.mark("turn3_done")


async def one_turn(conn: ServerConn, turn: Turn | None = None) -> None:
    """A short, complete session: handshake, then one answered turn."""
    turn = turn or default_turns()[0]
    await handshake(conn)
    await conn.wait_audio(RATE * 2 // 5)
    await answer(conn, turn)
    conn.mark("turn_done")


async def handshake_only(conn: ServerConn) -> None:
    await handshake(conn)


MODEL = ("--api-key", API_KEY, "--model", "gpt-realtime")


@dataclass
class ResumeOutcome:
    """A finished :class:`ResumeConversation` run: the script's traces and the server's records."""

    run: ScriptRun
    server: FaultyServer
    conversation: ResumeConversation

    @property
    def first(self) -> ServerConn:
        return self.server.conns[0]

    @property
    def second(self) -> ServerConn:
        assert len(self.server.conns) >= 2, f"the client did not reconnect\n{self.run.describe()}"
        return self.server.conns[1]

    @property
    def retry_s(self) -> float:
        """From the fault to the client's first new upgrade request."""
        fault = self.first.record.marks["fault"]
        return next(t for t in self.server.attempt_times if t > fault) - fault

    @property
    def reconnect_s(self) -> float:
        """From the fault to the new connection's session.created leaving the server."""
        return self.second.record.marks["session_created"] - self.first.record.marks["fault"]


def resume_session(
    fault_of: Callable[[ResumeConversation], Fault] | None,
    mode: tuple[str, ...] = MODEL,
    *,
    replay: int = 4,
    agent: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    refuse: Refusal | None = None,
    input_s: float = 4.0,
    expires_in: float | None = None,
    extra: tuple[str, ...] = (),
) -> Callable[[Path], Awaitable[ResumeOutcome]]:
    """A session for :class:`tests.support.pool.SessionPool`: the default script through a
    :class:`ResumeConversation` whose fault is ``fault_of(conversation)``."""

    async def session(tmp: Path) -> ResumeOutcome:
        conversation = ResumeConversation(
            None, replay_items=replay, agent=agent, expires_in=expires_in
        )
        conversation.fault = fault_of(conversation) if fault_of is not None else None
        async with FaultyServer(conversation, refuse=refuse) as server:
            conversation.server = server
            run = await run_script(
                server.url, tmp, *mode, input_s=input_s, env=env, timeout=45, extra=extra
            )
        return ResumeOutcome(run, server, conversation)

    return session


def stalling(conversation: ResumeConversation) -> Fault:
    """Stop reading (no pongs); once the client has reconnected, let the stalled socket go."""

    async def fault(conn: ServerConn) -> None:
        stall(conn)
        assert conversation.server is not None
        try:
            await conversation.server.wait_connections(2, timeout=20)
        finally:
            conn.ws.transport.abort()  # the stalled socket is let go once the client moved on

    return fault
