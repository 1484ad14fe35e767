"""Load the recorded Voice Live sessions (pydantic-ai cassettes) and the event examples."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SHARED = Path(__file__).resolve().parents[3] / "shared" / "protocol"
TRACE_DIR = SHARED / "traces"
EXAMPLES = SHARED / "event-examples.json"


@dataclass(frozen=True)
class Interaction:
    direction: str  # "sent" (client -> server) or "received" (server -> client)
    data: dict[str, Any]
    at: float | None


def trace_paths() -> list[Path]:
    return sorted(TRACE_DIR.glob("*.yaml"))


def load_trace(path: Path) -> list[Interaction]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [Interaction(i["direction"], i["data"], i.get("at")) for i in doc["interactions"] if i.get("kind") == "message"]


def load_examples() -> dict[str, dict[str, Any]]:
    return json.loads(EXAMPLES.read_text(encoding="utf-8"))


def received(trace: list[Interaction]) -> list[dict[str, Any]]:
    return [i.data for i in trace if i.direction == "received"]


def first_received(trace: list[Interaction], kind: str) -> dict[str, Any]:
    return next(i.data for i in trace if i.direction == "received" and i.data.get("type") == kind)
