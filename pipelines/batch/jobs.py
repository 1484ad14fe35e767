"""What the batch runner works on: conversations found on the command line, and their results.

A conversation is a WAV file (the user's side, with its pauses: the server's turn detection
finds the turns) or a ``.txt`` file with one typed user turn per line. A folder stands for every
``.wav`` / ``.txt`` in it, sorted. Each gets an output folder ``<out>/<name>/``; names are made
unique when two inputs share a stem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.config import AgentConfig
from processors.voicelive.errors import ConfigError
from transports.errors import TransportError
from transports.wavfile import check_wav

KINDS = {".wav": "wav", ".txt": "txt"}


@dataclass
class Job:
    """One conversation to run: its input, its output folder and the session settings."""

    index: int
    name: str
    kind: str  # "wav" or "txt"
    path: Path
    out_dir: Path
    config: AgentConfig
    lines: list[str] = field(default_factory=list)  # the typed turns of a .txt conversation


@dataclass
class Result:
    """How one conversation ended (``report`` is its report.json content)."""

    name: str
    ok: bool
    reason: str | None = None
    report: dict[str, Any] = field(default_factory=dict)
    worker_pid: int | None = None
    seconds: float = 0.0


def _typed_turns(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path}: not UTF-8 text (save it as UTF-8, one user turn per line)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ConfigError(f"{path}: no typed turns (one user turn per line)")
    return lines


def find_conversations(args: list[Path]) -> list[Path]:
    """Expand folders into their ``.wav``/``.txt`` files (sorted); check every path exists."""
    found: list[Path] = []
    for arg in args:
        if arg.is_dir():
            files = sorted(p for p in arg.iterdir() if p.is_file() and p.suffix.lower() in KINDS)
            if not files:
                raise ConfigError(f"folder {str(arg)!r} holds no .wav or .txt conversation")
            found.extend(files)
        elif arg.is_file():
            if arg.suffix.lower() not in KINDS:
                raise ConfigError(f"{str(arg)!r} is neither a .wav nor a .txt conversation")
            found.append(arg)
        else:
            raise ConfigError(f"conversation {str(arg)!r} not found")
    return found


def make_jobs(paths: list[Path], out: Path, config: AgentConfig) -> list[Job]:
    """One job per conversation, each input checked now (before any connection)."""
    jobs: list[Job] = []
    used: set[str] = set()
    for index, path in enumerate(paths):
        kind = KINDS[path.suffix.lower()]
        lines: list[str] = []
        if kind == "wav":
            try:
                check_wav(path)
            except TransportError as exc:
                raise ConfigError(f"{path}: {exc}") from None
        else:
            lines = _typed_turns(path)
        name = path.stem
        n = 2
        while name in used:
            name = f"{path.stem}-{n}"
            n += 1
        used.add(name)
        jobs.append(Job(index, name, kind, path, out / name, config, lines))
    return jobs
