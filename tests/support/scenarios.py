"""Voice Live conversations for the replay server, built from the recorded traces.

The event shapes (and field order) come from the recorded session in
``test_text_in_audio_out_turn.yaml`` and ``event-examples.json``; ids, transcripts and the audio
payloads (truncated in the recordings) are replaced by generated ones: seeded noise, distinct per
response, so a test can find each response's samples in an output WAV exactly.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.support.replay_server import ServerConn
from tests.support.traces import TRACE_DIR, first_received, load_examples, load_trace

RATE = 24000
_TRACE = load_trace(TRACE_DIR / "test_text_in_audio_out_turn.yaml")
_EXAMPLES = load_examples()
_ids = itertools.count(1)


def noise(seconds: float, seed: int, amplitude: int = 8000) -> bytes:
    """Seeded int16 noise: unique per seed, never all-zero, easy to find exactly in a WAV."""
    rng = np.random.default_rng(seed)
    samples = rng.integers(-amplitude, amplitude, int(seconds * RATE), dtype=np.int16)
    samples[samples == 0] = 1
    return samples.tobytes()


def template(kind: str) -> dict[str, Any]:
    """A recorded server event of ``kind`` (from the trace when it has one, else the examples)."""
    try:
        return copy.deepcopy(first_received(_TRACE, kind))
    except StopIteration:
        return copy.deepcopy(_EXAMPLES[kind])


def session_created(session_id: str, agent: dict[str, Any] | None = None) -> dict[str, Any]:
    ev = template("session.created")
    ev["session"]["id"] = session_id
    if agent is not None:
        ev["session"]["agent"] = agent
    return ev


def session_updated(created: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    ev = template("session.updated")
    ev["session"] = {**created["session"], **update.get("session", {})}
    return ev


@dataclass
class Turn:
    """One user utterance and the agent's spoken answer."""

    user_text: str
    agent_text: str
    audio: bytes
    response_id: str = field(default_factory=lambda: f"resp_T{next(_ids)}")
    item_id: str = field(default_factory=lambda: f"item_A{next(_ids)}")
    user_item_id: str = field(default_factory=lambda: f"item_U{next(_ids)}")


def _with(kind: str, **fields: Any) -> dict[str, Any]:
    ev = template(kind)
    ev.update(fields)
    ev["event_id"] = f"event_{next(_ids)}"
    return ev


async def user_speaks(conn: ServerConn, turn: Turn, *, started: bool = True) -> None:
    if started:
        await conn.send(
            _with(
                "input_audio_buffer.speech_started", audio_start_ms=1000, item_id=turn.user_item_id
            )
        )
    await conn.send(
        _with("input_audio_buffer.speech_stopped", audio_end_ms=2000, item_id=turn.user_item_id)
    )
    await conn.send(
        _with("input_audio_buffer.committed", previous_item_id=None, item_id=turn.user_item_id)
    )
    user_item = {
        "id": turn.user_item_id,
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    await conn.send(_with("conversation.item.created", previous_item_id=None, item=user_item))
    await conn.send(
        _with(
            "conversation.item.input_audio_transcription.completed",
            item_id=turn.user_item_id,
            content_index=0,
            transcript=turn.user_text,
        )
    )


async def response_start(conn: ServerConn, turn: Turn) -> None:
    created = template("response.created")
    created["response"]["id"] = turn.response_id
    await conn.send(created)
    item = {
        "id": turn.item_id,
        "type": "message",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    await conn.send(
        _with("response.output_item.added", response_id=turn.response_id, output_index=0, item=item)
    )
    await conn.send(
        _with("conversation.item.created", previous_item_id=turn.user_item_id, item=item)
    )
    await conn.send(
        _with(
            "response.content_part.added",
            response_id=turn.response_id,
            item_id=turn.item_id,
            output_index=0,
            content_index=0,
            part={"type": "audio", "transcript": ""},
        )
    )


async def transcript_deltas(conn: ServerConn, turn: Turn, text: str | None = None) -> None:
    words = (text if text is not None else turn.agent_text).split(" ")
    for k, word in enumerate(words):
        delta = word if k == 0 else " " + word
        await conn.send(
            _with(
                "response.audio_transcript.delta",
                response_id=turn.response_id,
                item_id=turn.item_id,
                output_index=0,
                content_index=0,
                delta=delta,
            )
        )


async def response_end(
    conn: ServerConn, turn: Turn, *, status: str = "completed", transcript_done: bool = True
) -> None:
    ids = {
        "response_id": turn.response_id,
        "item_id": turn.item_id,
        "output_index": 0,
        "content_index": 0,
    }
    await conn.send(_with("response.audio.done", **ids))
    if transcript_done:
        await conn.send(_with("response.audio_transcript.done", **ids, transcript=turn.agent_text))
    done = template("response.done")
    done["response"]["id"] = turn.response_id
    done["response"]["status"] = status
    done["response"]["status_details"] = (
        {"type": "cancelled", "reason": "turn_detected"} if status == "cancelled" else None
    )
    await conn.send(done)


async def handshake(
    conn: ServerConn, *, session_id: str = "sess_Replay1", agent: dict[str, Any] | None = None
) -> dict[str, Any]:
    """session.created -> (client session.update) -> session.updated; returns the update."""
    created = session_created(session_id, agent)
    await conn.send(created)
    update = await conn.wait_for("session.update")
    await conn.send(session_updated(created, update))
    return update


@dataclass
class BargeInScenario:
    """Turn 1 plays whole; turn 2 is interrupted ``cut_after_s`` into its audio by a barge-in, after
    which ``late_chunks`` more deltas of it still arrive (they must never play); turn 3 answers
    the barge-in. ``transcript_done_on_cancel`` says whether the cancelled response still gets a
    ``response.audio_transcript.done``. With ``silent_after_barge_in`` the server says nothing more
    after the late deltas (no ``speech_stopped``, no ``response.done``, no turn 3) and keeps the
    socket open: the client must still end by itself."""

    turn1: Turn
    turn2: Turn
    turn3: Turn
    late_audio: bytes
    cut_after_s: float = 0.8
    late_chunks: int = 4
    transcript_done_on_cancel: bool = False
    silent_after_barge_in: bool = False
    speed: float = 2.0

    async def __call__(self, conn: ServerConn) -> None:
        await handshake(conn)
        await conn.wait_audio(RATE * 2 * 3 // 10)  # 300 ms of microphone audio
        # Turn 1: answered in full (sent faster than real time, as the service does).
        await user_speaks(conn, self.turn1)
        await response_start(conn, self.turn1)
        await transcript_deltas(conn, self.turn1)
        conn.mark("turn1_first_delta")
        await conn.stream_audio(
            self.turn1.response_id, self.turn1.item_id, self.turn1.audio, speed=self.speed
        )
        await response_end(conn, self.turn1)
        await _sleep_s(len(self.turn1.audio) / 2 / RATE + 0.3)  # let it play out
        # Turn 2: the agent starts, then the user barges in mid-answer.
        await user_speaks(conn, self.turn2)
        await response_start(conn, self.turn2)
        await transcript_deltas(conn, self.turn2)
        cut = int(self.cut_after_s * RATE) * 2
        times = await conn.stream_audio(
            self.turn2.response_id, self.turn2.item_id, self.turn2.audio[:cut], speed=1.0
        )
        conn.record.marks["turn2_first_delta"] = times[0]
        await _sleep_s(0.1)
        await conn.send(
            _with(
                "input_audio_buffer.speech_started",
                audio_start_ms=5000,
                item_id=self.turn3.user_item_id,
            )
        )
        conn.mark("barge_in")
        late = self.late_audio[: self.late_chunks * RATE // 10 * 2]
        await conn.stream_audio(self.turn2.response_id, self.turn2.item_id, late, speed=4.0)
        if self.silent_after_barge_in:
            conn.mark("script_done")
            return
        await response_end(
            conn, self.turn2, status="cancelled", transcript_done=self.transcript_done_on_cancel
        )
        # Turn 3: the barge-in is answered.
        await _sleep_s(0.2)
        await user_speaks(conn, self.turn3, started=False)
        await response_start(conn, self.turn3)
        await transcript_deltas(conn, self.turn3)
        await conn.stream_audio(
            self.turn3.response_id, self.turn3.item_id, self.turn3.audio, speed=self.speed
        )
        await response_end(conn, self.turn3)
        conn.mark("script_done")


async def _sleep_s(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def barge_in_scenario(**overrides: Any) -> BargeInScenario:
    """The default turn + barge-in conversation (non-ASCII transcripts included)."""
    base: dict[str, Any] = {
        "turn1": Turn(
            "What is the capital of France?", "The capital of France is Paris.", noise(1.0, seed=1)
        ),
        "turn2": Turn(
            "Tell me a story, s'il vous plaît — ünïcödé 日本語",
            "Once upon a time, in Zürich, a fox said «bonjour» 🦊.",
            noise(1.6, seed=2),
        ),
        "turn3": Turn("Stop.", "Alright, I've stopped.", noise(0.6, seed=3)),
        "late_audio": noise(1.0, seed=4),
    }
    base.update(overrides)
    return BargeInScenario(**base)
