"""Run the default script (``python -m pipelines.agent``) as a user would, against a local peer.

:func:`script` is the one way tests start a script of this checkout (the default script, the
batch runner, the local server, a test's own file) as a subprocess: ``async with script(argv)
as s`` gives a :class:`Script` whose output is read as it arrives (nothing is lost when a wait
times out), and on leaving the block the process is killed if still running and reaped, within
bounds. :func:`run_script` is built on it: the default script with WAV input and output and a
private log folder, bounded by a timeout, returning a :class:`ScriptRun` with everything the user
could see: exit code, stdout, stderr, wall time, and readers for the session log, the technical
log, the JSONL events and the output WAV. :func:`check_no_crash` and :func:`check_logs_private`
are the assertions every fault test shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.audio import write_wav
from tests.support.scenarios import noise

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "K-faultkey-3d9a71c5e2b8"  # distinctive: grepped for in every output

CALLER_SETTINGS = ("AZURE_", "AI_FOUNDRY_", "VOICELIVE_")  # prefixes a developer's shell may set
DuringRun = Callable[[asyncio.subprocess.Process], Awaitable[None]]


def script_env(**extra: str) -> dict[str, str]:
    """The script's environment: no Azure settings from the caller, none of its terminal's
    overrides (rich prefers COLUMNS/LINES to the terminal's real size), this checkout
    importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith((*CALLER_SETTINGS, "TTY_"))
        and k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")
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
    pid: int = 0

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


class Script:
    """A started script: its process, and its output as it arrives.

    stdout and stderr (when they are pipes) are read all along into buffers, stdout also as
    lines with their arrival times, so a wait that times out loses nothing of what was printed.
    """

    def __init__(
        self, proc: asyncio.subprocess.Process, argv: list[str], cwd: Path, started: float
    ) -> None:
        self.proc = proc
        self.argv = argv  # what followed the Python executable
        self.cwd = cwd
        self.started = started  # monotonic time the process was launched
        self.ended: float | None = None  # monotonic time it had exited and its output was read
        self.lines: list[tuple[float, str]] = []  # stdout lines, each with its arrival time
        self._out = bytearray()
        self._err = bytearray()
        self._changed = asyncio.Event()
        self._pumps = [
            asyncio.create_task(self._pump(stream, buffer, lines))
            for stream, buffer, lines in (
                (proc.stdout, self._out, True),
                (proc.stderr, self._err, False),
            )
            if stream is not None
        ]
        self._end: asyncio.Task[int] | None = None

    async def _pump(self, stream: asyncio.StreamReader, buffer: bytearray, lines: bool) -> None:
        done = 0  # bytes of ``buffer`` already split into ``self.lines``
        while True:
            chunk = await stream.read(65536)
            buffer.extend(chunk)
            if lines:
                cut = len(buffer) if not chunk else buffer.rfind(b"\n", done) + 1
                if cut > done:
                    now = time.monotonic()
                    for line in buffer[done:cut].decode("utf-8", "replace").splitlines():
                        self.lines.append((now, line))
                    done = cut
            self._changed.set()
            if not chunk:
                return

    @property
    def stdout(self) -> str:
        return self._out.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self._err.decode("utf-8", "replace")

    def printed(self) -> str:
        """What it printed so far, for a failure message (stderr's end)."""
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr[-3000:]}"

    async def wait_for(self, *patterns: str, timeout: float) -> tuple[float, str]:
        """The first stdout line matching any of the regular expressions ``patterns``, with its
        arrival time. AssertionError if the output ends first, TimeoutError after ``timeout``."""

        async def first() -> tuple[float, str]:
            seen = 0
            while True:
                for at, line in self.lines[seen:]:
                    if any(re.search(p, line) for p in patterns):
                        return at, line
                seen = len(self.lines)
                if self.proc.stdout is None or self._pumps[0].done():  # stdout has ended
                    raise AssertionError(
                        f"the script ended before printing {patterns}\n{self.printed()}"
                    )
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(first(), timeout)

    async def write(self, data: bytes) -> None:
        """Write ``data`` to its stdin (started with ``stdin=asyncio.subprocess.PIPE``)."""
        assert self.proc.stdin is not None, "started without a stdin pipe"
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def _ended(self) -> int:
        code = await self.proc.wait()
        await asyncio.gather(*self._pumps)
        self.ended = time.monotonic()
        return code

    async def wait(self, timeout: float) -> int:
        """Its exit code, once it has exited and its output is read. TimeoutError after
        ``timeout`` (it then runs on, and its output is still read)."""
        if self._end is None:
            self._end = asyncio.create_task(self._ended())
        return await asyncio.wait_for(asyncio.shield(self._end), timeout)

    async def finish(
        self, timeout: float, dir: Path | None = None, during: DuringRun | None = None
    ) -> ScriptRun:
        """Wait up to ``timeout`` for it to end; past that it is SIGKILLed and ``timed_out`` set.
        ``dir`` is the run's folder (its logs, out.wav); by default its working directory.
        ``during(process)`` runs alongside (e.g. to send a signal); cancelled if still running
        at the end, and what it raised is raised here."""
        helper = asyncio.create_task(during(self.proc)) if during is not None else None
        timed_out = False
        try:
            code = await self.wait(timeout)
        except TimeoutError:
            timed_out = True
            code = await self._reap()
        finally:
            if helper is not None:
                if not helper.done():
                    helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
        assert self.ended is not None
        return ScriptRun(
            code,
            self.stdout,
            self.stderr,
            self.started,
            self.ended,
            dir if dir is not None else self.cwd,
            timed_out,
            self.argv,
            self.proc.pid,
        )

    async def _reap(self) -> int:
        """SIGKILL it if it still runs; its exit code once reaped, its output read until its
        pipes close (or, if a grandchild keeps them open, for :data:`REAP_S`)."""
        kill(self.proc)
        try:
            return await self.wait(REAP_S)
        except TimeoutError:  # a grandchild holds the pipes open: stop reading, close ours
            for pump in self._pumps:
                pump.cancel()
            await asyncio.gather(*self._pumps, return_exceptions=True)
            self.proc._transport.close()  # the pipes, which would outlive the event loop
            code = await asyncio.wait_for(self.proc.wait(), REAP_S)
            self.ended = time.monotonic()
            return code

    async def _close(self) -> None:
        await self._reap()
        if self.proc.stdin is not None:
            self.proc.stdin.close()


REAP_S = 10.0  # how long a killed script may take to be reaped and its pipes to close


@contextlib.asynccontextmanager
async def script(
    *argv: str,
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
    stdin: bytes | int | None = None,
    **popen: Any,
) -> AsyncIterator[Script]:
    """Start ``sys.executable argv`` (e.g. ``"-m", "pipelines.agent", ...``) in ``cwd`` with
    ``env`` (default :func:`script_env`); on leaving the block it is SIGKILLed if still running
    and reaped. ``stdin``: None for ``</dev/null``, bytes to feed it, ``asyncio.subprocess.PIPE``
    to :meth:`Script.write` to it, or a file descriptor (a pty). ``popen`` goes to
    :func:`asyncio.create_subprocess_exec` (``preexec_fn``, ``start_new_session``, ``stdout``...;
    stdout and stderr are pipes unless given)."""
    popen.setdefault("stdout", asyncio.subprocess.PIPE)
    popen.setdefault("stderr", asyncio.subprocess.PIPE)
    feed = stdin if isinstance(stdin, bytes) else None
    if stdin is None:
        stdin = asyncio.subprocess.DEVNULL
    elif feed is not None:
        stdin = asyncio.subprocess.PIPE
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else script_env(),
        stdin=stdin,
        **popen,
    )
    s = Script(proc, list(argv), Path(cwd), started)
    try:
        if feed is not None:
            assert proc.stdin is not None
            proc.stdin.write(feed)
            proc.stdin.close()
        yield s
    finally:
        await s._close()


async def run_to_end(
    *argv: str,
    timeout: float,
    dir: Path | None = None,
    during: DuringRun | None = None,
    **kw: Any,
) -> ScriptRun:
    """Run :func:`script` ``argv`` (``kw`` as there) to its end (``dir`` and ``during`` as in
    :meth:`Script.finish`). AssertionError, with what it printed, if it has not ended after
    ``timeout`` s (it is then killed)."""
    async with script(*argv, **kw) as s:
        run = await s.finish(timeout, dir, during)
    assert not run.timed_out, f"{' '.join(argv)[:300]}: no end after {timeout} s\n{run.describe()}"
    return run


def io_flags(tmp: Path, in_wav: Path) -> list[str]:
    """The flags of a run that reads ``in_wav`` and leaves ``out.wav`` and ``logs/`` in ``tmp``
    (where :class:`ScriptRun` looks for them)."""
    return [
        "--input-wav",
        str(in_wav),
        "--output-wav",
        str(tmp / "out.wav"),
        "--log-dir",
        str(tmp / "logs"),
    ]


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
        *io_flags(tmp, in_wav),
        "--idle-grace",
        str(idle_grace),
        *(mode or ("--api-key", API_KEY, "--model", "gpt-realtime")),
        *extra,
    ]
    async with script(*argv, cwd=tmp, env=env, stdin=stdin) as s:
        return await s.finish(timeout, tmp, during)


async def speak(text: str, path: Path, pad_ms: int = 800) -> Path:
    """``python -m localserver.speak``, as the README tells a user to make the question."""
    argv = [text, str(path), "--pad-ms", str(pad_ms)]
    made = await run_to_end("-m", "localserver.speak", *argv, timeout=30)
    assert made.code == 0, made.describe()
    return path


def send_signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Send ``sig`` to ``proc`` unless it has already exited.

    Not ``proc.send_signal``: that polls the child with ``waitpid`` first and, when the child has
    just exited, reaps it under asyncio's child watcher, which then reports exit code 255 for a
    process that exited with its real code (a signal test failed so: "exit 255" for a script that
    ended with 130 just as its second Ctrl-C was sent).
    """
    if proc.returncode is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:  # exited and reaped; its returncode is on its way
            pass


def kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL ``proc`` unless it has already exited (see :func:`send_signal`)."""
    send_signal(proc, signal.SIGKILL)


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
