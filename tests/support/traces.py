"""Load the recorded Voice Live sessions (pydantic-ai cassettes, MIT) and the event examples.

The copies in ``tests/data`` are what the tests use, so a clone tests on its own and no test reads a
path outside the repository; traces in ``$VOICELIVE_TRACE_DIR`` (newer recordings, opt-in) are
added by file name. ``CLIENT_EVENT_TYPES`` is the one list of the protocol's client event types.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parents[1] / "data"
TRACE_DIR = DATA / "traces"
EXAMPLES = DATA / "event-examples.json"
#: Every client event type of the protocol reference (the rest of the examples are server events).
CLIENT_EVENT_TYPES = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "input_audio.turn.start",
        "input_audio.turn.append",
        "input_audio.turn.end",
        "input_audio.turn.cancel",
        "input_audio.clear",
        "input_text.delta",
        "input_text.done",
        "conversation.item.create",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "conversation.item.delete",
        "response.create",
        "response.cancel",
        "output_audio_buffer.clear",
        "session.avatar.connect",
        "transcription_session.update",
    }
)


@dataclass(frozen=True)
class Interaction:
    direction: str  # "sent" (client -> server) or "received" (server -> client)
    data: dict[str, Any]
    at: float | None


def trace_paths() -> list[Path]:
    """Every recorded trace: the bundled ones, then any others by file name."""
    found: dict[str, Path] = {}
    extra = os.environ.get("VOICELIVE_TRACE_DIR")
    for folder in (TRACE_DIR, Path(extra) if extra else None):
        if folder is not None and folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                found.setdefault(path.name, path)
    return [found[name] for name in sorted(found)]


def load_trace(path: Path) -> list[Interaction]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        Interaction(i["direction"], i["data"], i.get("at"))
        for i in doc["interactions"]
        if i.get("kind") == "message"
    ]


def load_examples() -> dict[str, dict[str, Any]]:
    return json.loads(EXAMPLES.read_text(encoding="utf-8"))


def received(trace: list[Interaction]) -> list[dict[str, Any]]:
    return [i.data for i in trace if i.direction == "received"]


def first_received(trace: list[Interaction], kind: str) -> dict[str, Any]:
    return next(i.data for i in trace if i.direction == "received" and i.data.get("type") == kind)
