"""Run the default script (``python -m pipelines.agent``) as a user would, against a local peer.

:func:`run_script` starts the script as a subprocess with WAV input and output and a private log
folder, bounded by a timeout, and returns a :class:`ScriptRun` with everything the user could see:
exit code, stdout, stderr, wall time, and readers for the session log, the technical log, the
JSONL events and the output WAV. :func:`check_no_crash` and :func:`check_logs_private` are the
assertions every fault test shares.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.audio import write_wav
from tests.support.scenarios import noise

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "K-faultkey-3d9a71c5e2b8"  # distinctive: grepped for in every output

DuringRun = Callable[[asyncio.subprocess.Process], Awaitable[None]]


def script_env(**extra: str) -> dict[str, str]:
    """The script's environment: no Azure settings from the caller, this checkout importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AZURE_", "AI_FOUNDRY_", "VOICELIVE_"))
    }
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class ScriptRun:
    """What one run of the default script left behind."""

    code: int
    stdout: str
    stderr: str
    started: float  # monotonic time the process was launched
    ended: float  # monotonic time it exited
    dir: Path
    timed_out: bool = False
    argv: list[str] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def out_wav(self) -> Path:
        return self.dir / "out.wav"

    def session_log(self) -> list[str]:
        (path,) = self.log_dir.glob("session_*.log")
        return path.read_text(encoding="utf-8").splitlines()

    def tech_log(self) -> str:
        return (self.log_dir / "voicelive.log").read_text(encoding="utf-8")

    def tech_lines(self, level: str | None = None, containing: str = "") -> list[str]:
        """Lines of ``voicelive.log`` (``time:origin:LEVEL:message``) at ``level`` that contain
        ``containing``."""
        lines = [line for line in self.tech_log().splitlines() if containing in line]
        if level is not None:
            lines = [line for line in lines if f":{level}:" in line]
        return lines

    def events(self) -> list[dict[str, Any]]:
        """Every JSONL record; raises AssertionError naming the first line that does not parse."""
        (path,) = self.log_dir.glob("events_*.jsonl")
        records = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AssertionError(
                    f"{path.name} line {n} is not JSON ({exc}): {line[:200]!r}"
                ) from None
        return records

    def outputs(self) -> dict[str, str]:
        """Everything the run wrote as text: stdout, stderr and every file under the log folder."""
        texts = {"stdout": self.stdout, "stderr": self.stderr}
        if self.log_dir.is_dir():
            for path in sorted(self.log_dir.rglob("*")):
                if path.is_file():
                    texts[str(path.relative_to(self.dir))] = path.read_bytes().decode(
                        "utf-8", "replace"
                    )
        return texts

    def describe(self) -> str:
        return (
            f"exit {self.code} after {self.elapsed:.2f} s\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


async def run_script(
    url: str,
    tmp: Path,
    *mode: str,
    input_s: float = 3.0,
    idle_grace: float = 0.5,
    env: dict[str, str] | None = None,
    timeout: float = 45.0,
    during: DuringRun | None = None,
    extra: tuple[str, ...] = (),
    stdin: bytes | None = None,
    in_pcm: bytes | None = None,
    command: tuple[str, ...] = ("-m", "pipelines.agent"),
) -> ScriptRun:
    """Run the default script against ``url`` with a ``input_s`` second input WAV.

    ``in_pcm`` (24 kHz mono pcm16) replaces the default low noise as the input WAV's audio.
    ``mode`` is the agent/model and credential flags (default: model mode with :data:`API_KEY`).
    ``during(process)`` runs alongside (e.g. to send a signal). The process is killed after
    ``timeout`` seconds (``timed_out`` is then set). ``stdin`` is fed to the script's stdin
    (default: none, as from ``</dev/null``). ``command`` is what runs before the flags
    (another script taking the same flags).
    """
    tmp.mkdir(parents=True, exist_ok=True)
    pcm = in_pcm if in_pcm is not None else noise(input_s, seed=99, amplitude=300)
    in_wav = write_wav(tmp / "in.wav", pcm)
    argv = [
        *command,
        "--endpoint",
        url,
        "--input-wav",
        str(in_wav),
        "--output-wav",
        str(tmp / "out.wav"),
        "--log-dir",
        str(tmp / "logs"),
        "--idle-grace",
        str(idle_grace),
        *(mode or ("--api-key", API_KEY, "--model", "gpt-realtime")),
        *extra,
    ]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        cwd=tmp,
        env=env or script_env(),
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    helper = asyncio.create_task(during(proc)) if during is not None else None
    timed_out = False
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        timed_out = True
        proc.kill()
        out, err = await proc.communicate()
    ended = time.monotonic()
    if helper is not None:
        if not helper.done():
            helper.cancel()
        try:
            await helper
        except asyncio.CancelledError:
            pass
    return ScriptRun(
        proc.returncode if proc.returncode is not None else -1,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        started,
        ended,
        tmp,
        timed_out,
        argv,
    )


def check_no_crash(run: ScriptRun) -> None:
    """No traceback anywhere the user or the logs could show one, and the run did not hang."""
    assert not run.timed_out, f"the script did not end in time\n{run.describe()}"
    for name, text in run.outputs().items():
        assert "Traceback (most recent call last)" not in text, (
            f"a traceback in {name}\n{text[-3000:]}"
        )


def check_logs_private(run: ScriptRun) -> None:
    """Every log file is readable by its owner only (mode 0600), and so is the log folder the
    script created (0700)."""
    mode = run.log_dir.stat().st_mode & 0o777
    assert mode == 0o700, f"the log folder {run.log_dir.name} has mode {mode:o}"
    files = [p for p in run.log_dir.rglob("*") if p.is_file()]
    assert files, "no log files were written"
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600, (
            f"{path.name} has mode {path.stat().st_mode & 0o777:o}"
        )


def check_wav_valid(path: Path) -> int:
    """The WAV opens and its header's frame count matches the data on disk; returns that count."""
    with wave.open(str(path), "rb") as w:
        frames, width, channels = w.getnframes(), w.getsampwidth(), w.getnchannels()
        data = w.readframes(frames + 1)
    assert len(data) == frames * width * channels, (
        f"header says {frames} frames, data holds {len(data) // (width * channels)}"
    )
    size = path.stat().st_size
    assert size == 44 + frames * width * channels, (
        f"{path.name}: {size} bytes on disk, header accounts for {44 + frames * width * channels}"
    )
    return frames


def transcript_lines(lines: list[str]) -> list[str]:
    """The conversation lines of a session log (user and agent)."""
    return [
        line
        for line in lines
        if line.startswith(("User Input:", "Agent Audio Response:", "Agent Text Response:"))
    ]
