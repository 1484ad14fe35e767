"""Fixtures of the local server tests: in-process servers on 127.0.0.1 (port 0) with fast or
real-time response pacing, and spoken question audio made with eSpeak (24 kHz mono int16)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
import pytest

from localserver.responder import Pacing
from localserver.server import LocalServer
from localserver.tts import synthesize

RATE = 24000


@dataclass(frozen=True)
class Utterance:
    """Spoken text with silence around it; ``start_ms``/``end_ms`` bound the audible speech."""

    text: str
    pcm: np.ndarray
    start_ms: int
    end_ms: int


def make_utterance(
    text: str, lead_ms: int = 1000, tail_ms: int = 1000, gain: float = 1.0
) -> Utterance:
    speech = synthesize(text, RATE).pcm.astype(np.float64) * gain
    loud = np.flatnonzero(np.abs(speech) > 104 * gain)
    silence = lambda ms: np.zeros(RATE * ms // 1000)  # noqa: E731
    pcm = np.concatenate([silence(lead_ms), speech, silence(tail_ms)])
    pcm += np.random.default_rng(0).normal(0, 8, len(pcm))  # a faint noise floor, like a real line
    return Utterance(
        text,
        np.clip(pcm, -32768, 32767).astype(np.int16),
        lead_ms + int(loud[0]) * 1000 // RATE,
        lead_ms + (int(loud[-1]) + 1) * 1000 // RATE,
    )


@pytest.fixture(scope="session")
def utterance() -> Callable[..., Utterance]:
    cache: dict[tuple, Utterance] = {}

    def get(text: str, lead_ms: int = 1000, tail_ms: int = 1000, gain: float = 1.0) -> Utterance:
        key = (text, lead_ms, tail_ms, gain)
        if key not in cache:
            cache[key] = make_utterance(text, lead_ms, tail_ms, gain)
        return cache[key]

    return get


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    """A server that sends response audio as fast as it can."""
    async with LocalServer("127.0.0.1", 0, pacing=Pacing(pace=0)) as srv:
        yield srv


@pytest.fixture
async def realtime_server() -> AsyncIterator[LocalServer]:
    """A server that paces response audio at real time (no lead), so responses stay active."""
    async with LocalServer("127.0.0.1", 0, pacing=Pacing(lead_ms=0, pace=1.0)) as srv:
        yield srv
