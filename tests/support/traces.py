"""Load the recorded Voice Live sessions (pydantic-ai cassettes, MIT) and the event examples.

Copies live in ``tests/data`` so a clone tests on its own; traces found in ``../shared/protocol``
or in ``$VOICELIVE_TRACE_DIR`` (newer recordings) are used too, by file name.
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
SHARED = Path(__file__).resolve().parents[3] / "shared" / "protocol"


@dataclass(frozen=True)
class Interaction:
    direction: str  # "sent" (client -> server) or "received" (server -> client)
    data: dict[str, Any]
    at: float | None


def trace_paths() -> list[Path]:
    """Every recorded trace: the bundled ones, then any others by file name."""
    found: dict[str, Path] = {}
    extra = os.environ.get("VOICELIVE_TRACE_DIR")
    for folder in (TRACE_DIR, SHARED / "traces", Path(extra) if extra else None):
        if folder is not None and folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                found.setdefault(path.name, path)
    return [found[name] for name in sorted(found)]


def load_trace(path: Path) -> list[Interaction]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [Interaction(i["direction"], i["data"], i.get("at")) for i in doc["interactions"] if i.get("kind") == "message"]


def load_examples() -> dict[str, dict[str, Any]]:
    return json.loads(EXAMPLES.read_text(encoding="utf-8"))


def received(trace: list[Interaction]) -> list[dict[str, Any]]:
    return [i.data for i in trace if i.direction == "received"]


def first_received(trace: list[Interaction], kind: str) -> dict[str, Any]:
    return next(i.data for i in trace if i.direction == "received" and i.data.get("type") == kind)
