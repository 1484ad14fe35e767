"""The one way out to the terminal: every line this project prints goes through :func:`say`.

:func:`say` redacts (see :mod:`processors.redaction`) and writes one line to stdout or stderr;
:func:`error` and :func:`warning` are its ``error: ...`` / ``warning: ...`` forms on stderr,
redacted as diagnostic lines (a short secret is masked as any whole word there). The loguru
console sink (:mod:`processors.logsetup`) writes through :func:`say` too, and
:func:`install_last_resort` sends what would otherwise reach the terminal unredacted through it:
uncaught exceptions (main thread, other threads, unraisable ones) and stdlib ``logging`` records
of libraries nobody configured (Python's last-resort handler prints them raw).
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType
from typing import Any, TextIO

from processors.redaction import redact


def say(
    text: str, *, err: bool = False, stream: TextIO | None = None, diagnostic: bool | None = None
) -> None:
    """Write ``text`` redacted as one line (a newline is added) to ``stream`` (default stdout,
    or stderr with ``err``) and flush. ``diagnostic`` (default: ``err``) masks short secrets as
    whole words too. A closed or broken stream is ignored: printing never raises."""
    target = stream or (sys.stderr if err else sys.stdout)
    if target is None:
        return
    line = redact(text, diagnostic=err if diagnostic is None else diagnostic)
    try:
        target.write(line + "\n")
        target.flush()
    except (OSError, ValueError):
        pass


def error(text: str) -> None:
    """``error: <text>`` on stderr: the script's last word on a failure."""
    say(f"error: {text}", err=True)


def warning(text: str) -> None:
    """``warning: <text>`` on stderr."""
    say(f"warning: {text}", err=True)


def _print_exception(
    kind: type[BaseException], value: BaseException | None, tb: TracebackType | None
) -> None:
    say("".join(traceback.format_exception(kind, value, tb)).rstrip("\n"), err=True)


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    say(f"Exception in thread {name}:", err=True)
    _print_exception(args.exc_type, args.exc_value, args.exc_traceback)


def _unraisable_hook(unraisable: Any) -> None:
    say(f"{unraisable.err_msg or 'Exception ignored in'}: {unraisable.object!r}", err=True)
    if unraisable.exc_type is not None:
        _print_exception(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)


class _LastResort(logging.Handler):
    """Python's last-resort handler, redacted: WARNING and above of unconfigured loggers."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            say(self.format(record), err=True)
        except Exception:  # a broken record must not raise out of logging
            self.handleError(record)


def install_last_resort() -> None:
    """Route uncaught exceptions and unconfigured stdlib logging through ``say`` (idempotent)."""
    sys.excepthook = _print_exception
    threading.excepthook = _thread_hook
    sys.unraisablehook = _unraisable_hook
    if not isinstance(logging.lastResort, _LastResort):
        handler = _LastResort(logging.WARNING)
        logging.lastResort = handler
