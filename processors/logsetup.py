"""Log sinks: the technical log file and the console, both through the redactor.

loguru formats the record (exception tracebacks included) and hands the finished text to a
:class:`RedactingSink`, which passes it on to the one redacting way out of its destination
(:func:`processors.console.say` for the terminal, :class:`LineWriter` for a file), so no secret
reaches a file or the terminal whatever path it took. Warnings and errors are redacted as
diagnostic lines (see :mod:`processors.redaction`).
Python ``logging`` records (websockets' protocol debug lines: the request line, the headers) are
forwarded into loguru by :class:`InterceptHandler` and so pass the same point.

The technical log (:func:`add_technical_log`) is one loguru sink per ``voicelive.log`` file in the
process, whatever the number of sessions writing into it. Lines carry the session they belong to
(``logger.contextualize(session=key)`` around a session's run, see ``AgentPipeline.run``), and a
sink keeps only its own sessions' lines (plus lines of no session: process-wide ones), so several
sessions in one process each get their own log. The file is appended to (the previous run's lines
are kept) and rotated at ``TECH_LOG_MAX_BYTES`` (``voicelive.log.1`` ... ``.5``).
websockets' per-frame debug lines are produced only while a session asked for them (``frames``,
the script's ``--debug``): formatting them is most of what logging cost per frame.
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from loguru import logger

from processors.console import say
from processors.logfiles import LineWriter

TECH_FORMAT = "{time:YYYY-MM-DD HH:mm:ss,SSS}:{extra[origin]}:{level}:{message}"
TECH_LOG_MAX_BYTES = 20 * 1024 * 1024
"""``voicelive.log`` is rotated before it grows beyond this (at INFO a session writes a few KB)."""
TECH_LOG_BACKUPS = 5
"""Rotated technical logs kept: ``voicelive.log.1`` (newest) ... ``voicelive.log.5``."""


class RedactingSink:
    """A loguru sink that writes the formatted message, redacted, to a stream or a log file."""

    def __init__(self, target: TextIO | LineWriter) -> None:
        self._target = target

    def write(self, message: str) -> None:
        """Write one formatted message to the target, redacted (warnings and up as diagnostics)."""
        record = getattr(message, "record", None)
        diagnostic = record is not None and record["level"].no >= logging.WARNING
        text = str(message).rstrip("\n")
        if isinstance(self._target, LineWriter):
            self._target.write(text, diagnostic=diagnostic)  # redacted by the writer
        else:
            say(text, stream=self._target, diagnostic=diagnostic)


class InterceptHandler(logging.Handler):
    """Forward stdlib ``logging`` records into loguru, keeping the logger name."""

    def emit(self, record: logging.LogRecord) -> None:
        """Log ``record`` through loguru at its level, with its logger name and exception."""
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.bind(origin=record.name).opt(depth=0, exception=record.exc_info).log(
            level, record.getMessage()
        )


class TechnicalOnlyHandler(logging.Handler):
    """Forward stdlib ``logging`` records to the technical log only (never the console), an
    exception as its one-line summary: for libraries that print tracebacks about someone else's
    mistake (the embedded server's websockets logging a client's bad handshake)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Log ``record`` to the technical log only, an exception as its one-line summary."""
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f": {type(exc).__name__}: {exc}"
        logger.bind(origin=record.name, console=False).log(
            record.levelname
            if record.levelname in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
            else "INFO",
            text,
        )


def send_to_technical_log_only(*names: str) -> None:
    """Route these stdlib loggers to the technical log only (see :class:`TechnicalOnlyHandler`)."""
    for name in names:
        log = logging.getLogger(name)
        if not any(isinstance(h, TechnicalOnlyHandler) for h in log.handlers):
            log.addHandler(TechnicalOnlyHandler())
        log.propagate = False


def new_session_key() -> str:
    """A short id that tags one session's log lines (and names its files)."""
    return uuid.uuid4().hex[:6]


@dataclass
class _TechnicalLogFile:
    """One technical log file of this process and the sessions writing into it."""

    writer: LineWriter
    levels: dict[str | None, int] = field(default_factory=dict)  # session -> lowest level number
    frames: set[str | None] = field(default_factory=set)  # sessions that want websockets' frames
    sink_id: int | None = None


@dataclass(frozen=True)
class TechnicalLogHandle:
    """What :func:`add_technical_log` returns: pass it to :func:`remove_technical_log`."""

    path: Path
    session: str | None
    writer: LineWriter


_FILES: dict[Path, _TechnicalLogFile] = {}
_FILES_LOCK = threading.Lock()


def add_technical_log(
    path: Path | str, *, level: str = "INFO", session: str | None = None, frames: bool = False
) -> TechnicalLogHandle:
    """Write the technical log (quickstart format) of ``session`` to ``path``, appending.

    ``level``: ``INFO`` for connections, session events, errors and one line per response;
    ``DEBUG`` adds a line per protocol event. ``frames`` adds websockets' debug lines (the
    handshake and every frame). ``session`` (see :func:`new_session_key`) keeps other sessions'
    lines out; None takes every line of the process. Raises ``OSError`` if the file cannot be
    created.
    """
    key = Path(path).absolute()
    with _FILES_LOCK:
        log = _FILES.get(key)
        if log is None:
            writer = LineWriter(path, max_bytes=TECH_LOG_MAX_BYTES, backups=TECH_LOG_BACKUPS)
            log = _FILES[key] = _TechnicalLogFile(writer)
        levelno = logger.level(level).no
        log.levels[session] = min(levelno, log.levels.get(session, levelno))
        if frames:
            log.frames.add(session)
        _attach(log)
        _set_frame_logging()
        return TechnicalLogHandle(Path(path), session, log.writer)


def _attach(log: _TechnicalLogFile) -> None:
    """(Re)add the file's sink for its current sessions; the new sink is in before the old goes."""
    levels = dict(log.levels)
    lowest = min(levels.values())
    everything = levels.get(None)

    def accept(record: dict[str, Any]) -> bool:
        extra = record["extra"]
        extra.setdefault("origin", record["name"])
        session = extra.get("session")
        needed = lowest if session is None else levels.get(session, everything)
        return needed is not None and record["level"].no >= needed

    old = log.sink_id
    log.sink_id = logger.add(
        RedactingSink(log.writer),
        level=lowest,
        format=TECH_FORMAT,
        filter=accept,
        colorize=False,
        backtrace=False,
        diagnose=False,
    )
    if old is not None:
        logger.remove(old)


def _set_frame_logging() -> None:
    """websockets' client logger at DEBUG only while a session wants its frame lines."""
    ws_logger = logging.getLogger("websockets.client")
    frames = any(log.frames for log in _FILES.values())
    ws_logger.setLevel(logging.DEBUG if frames else logging.INFO)
    if not any(isinstance(h, InterceptHandler) for h in ws_logger.handlers):
        ws_logger.addHandler(InterceptHandler())
    ws_logger.propagate = False


def remove_technical_log(handle: TechnicalLogHandle) -> None:
    """Stop writing ``handle``'s session; the file is closed (queue written) with its last one."""
    key = handle.path.absolute()
    with _FILES_LOCK:
        log = _FILES.get(key)
        if log is None or handle.session not in log.levels:
            return
        del log.levels[handle.session]
        log.frames.discard(handle.session)
        if log.levels:
            _attach(log)
        else:
            del _FILES[key]
            if log.sink_id is not None:
                try:
                    logger.remove(log.sink_id)
                except ValueError:
                    pass
        _set_frame_logging()
    if not log.levels:
        log.writer.close()


_console: dict[str, object] = {"sink": None, "verbose": False, "stream": None}


def configure_console(*, verbose: bool = False, stream: TextIO | None = None) -> int:
    """Replace loguru's default stderr handler with a redacted, quiet console.

    Only this project's lines are shown, as plain text (libraries' own lines go to the
    technical log; ``verbose`` shows everything on the console too). Stdlib ``logging``
    warnings of any library (and ``warnings.warn``) are forwarded into loguru, so they reach the
    technical log, redacted, instead of Python's raw last-resort output on stderr.
    """
    logger.remove()
    root = logging.getLogger()
    if not any(isinstance(h, InterceptHandler) for h in root.handlers):
        root.addHandler(InterceptHandler())
    logging.captureWarnings(True)
    _console.update(verbose=verbose, stream=stream)
    return resume_console()


def pause_console() -> None:
    """Detach the console sink (a live view shows the session in its own way meanwhile)."""
    sink = _console["sink"]
    if isinstance(sink, int):
        try:
            logger.remove(sink)
        except ValueError:
            pass
    _console["sink"] = None


def resume_console() -> int:
    """Attach the console sink configured last (after :func:`pause_console`); returns its id."""
    pause_console()
    verbose = bool(_console["verbose"])
    stream = _console["stream"]

    def keep(record: dict) -> bool:
        if record["extra"].get("console") is False:
            return False
        ours = record["name"].split(".")[0] in (
            "processors",
            "pipelines",
            "transports",
            "localserver",
            "__main__",
        )
        return verbose or ours or record["level"].no >= logging.CRITICAL

    sink = logger.add(
        RedactingSink(stream or sys.stdout),  # type: ignore[arg-type]
        level="DEBUG" if verbose else "INFO",
        format="{message}",
        filter=keep,
        colorize=False,
        backtrace=False,
        diagnose=False,
    )
    _console["sink"] = sink
    return sink
