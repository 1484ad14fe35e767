"""Log sinks: the technical log file and the console, both through the redactor.

loguru formats the record (exception tracebacks included) and hands the finished text to a
:class:`RedactingSink`, which passes it on to the one redacting way out of its destination
(:func:`processors.console.say` for the terminal, :class:`LineWriter` for a file), so no secret
reaches a file or the terminal whatever path it took. Warnings and errors are redacted as
diagnostic lines (see :mod:`processors.redaction`).
Python ``logging`` records (websockets' protocol debug lines: the request line, the headers) are
forwarded into loguru by :class:`InterceptHandler` and so pass the same point.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

from loguru import logger

from processors.console import say
from processors.logfiles import LineWriter

TECH_FORMAT = "{time:YYYY-MM-DD HH:mm:ss,SSS}:{extra[origin]}:{level}:{message}"


def _origin(record: dict) -> bool:
    record["extra"].setdefault("origin", record["name"])
    return True


class RedactingSink:
    """A loguru sink that writes the formatted message, redacted, to a stream or a log file."""

    def __init__(self, target: TextIO | LineWriter) -> None:
        self._target = target

    def write(self, message: str) -> None:
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
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.bind(origin=record.name).opt(depth=0, exception=record.exc_info).log(level, record.getMessage())


class TechnicalOnlyHandler(logging.Handler):
    """Forward stdlib ``logging`` records to the technical log only (never the console), an
    exception as its one-line summary: for libraries that print tracebacks about someone else's
    mistake (the embedded server's websockets logging a client's bad handshake)."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f": {type(exc).__name__}: {exc}"
        logger.bind(origin=record.name, console=False).log(record.levelname if record.levelname in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO", text)


def send_to_technical_log_only(*names: str) -> None:
    """Route these stdlib loggers to the technical log only (see :class:`TechnicalOnlyHandler`)."""
    for name in names:
        log = logging.getLogger(name)
        if not any(isinstance(h, TechnicalOnlyHandler) for h in log.handlers):
            log.addHandler(TechnicalOnlyHandler())
        log.propagate = False


def add_technical_log(path: Path, *, level: str = "DEBUG") -> tuple[int, LineWriter]:
    """Write the technical log (quickstart format, incl. websockets' debug lines) to ``path``."""
    writer = LineWriter(path, truncate=True)
    sink_id = logger.add(RedactingSink(writer), level=level, format=TECH_FORMAT, filter=_origin, colorize=False, backtrace=False, diagnose=False)
    ws_logger = logging.getLogger("websockets.client")
    ws_logger.setLevel(logging.DEBUG)
    if not any(isinstance(h, InterceptHandler) for h in ws_logger.handlers):
        ws_logger.addHandler(InterceptHandler())
    ws_logger.propagate = False
    return sink_id, writer


def remove_technical_log(sink_id: int, writer: LineWriter) -> None:
    """Detach the sink and close its file."""
    try:
        logger.remove(sink_id)
    except ValueError:
        pass
    writer.close()


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
        ours = record["name"].split(".")[0] in ("processors", "pipelines", "transports", "localserver", "__main__")
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
