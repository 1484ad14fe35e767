"""Finding audio child processes in the process table (for the no-process-left-behind checks)."""

from __future__ import annotations

import json
from pathlib import Path


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def audio_children(parent: int) -> list[int]:
    """Live audio processes started by ``parent`` (found by the parent pid in their config,
    so a child orphaned by a killed parent is still found)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        args = _cmdline(int(entry.name))
        if "transports.audio_child" not in args:
            continue
        try:
            config = json.loads(args[args.index("transports.audio_child") + 1])
        except (IndexError, ValueError):
            continue
        if config.get("spawner") == parent and alive(int(entry.name)):
            found.append(int(entry.name))
    return found
