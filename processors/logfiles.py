"""Log files written off the event loop, one redacted line at a time.

:class:`LineWriter` owns one file (created with mode 0600, UTF-8, in a folder created 0700) and a
writer thread; ``write`` only enqueues, so the event loop never waits on the disk. Every line is
redacted (this is the redaction point of every log file) and flushed as soon as it is written,
so a crash loses nothing that was already logged.
:class:`TailLineWriter` adds one provisional last line that is rewritten in place (words still
arriving) and later replaced by its final form, so a killed process leaves the provisional line.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

from processors.console import error
from processors.redaction import redact

_STOP = object()
BATCH_WAIT_S = 0.02  # while lines come in bursts, the writer wakes at most 50 times a second


def open_private(path: Path, mode: str = "a") -> "os.PathLike[str] | object":
    """Open ``path`` for text writing, creating it with permissions 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.chmod(path, 0o600)
    return os.fdopen(fd, mode, encoding="utf-8", buffering=1)


def make_private_dir(path: Path | str) -> Path:
    """Create the folder ``path`` (and missing parents) readable by its owner only (0700).

    A folder that already exists keeps its mode: it is the user's.
    """
    missing = []
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # created meanwhile by someone else: theirs
            continue
        os.chmod(folder, 0o700)  # whatever the umask
    return Path(path)


class LineWriter:
    """A private, line-flushed, redacting log file with its own writer thread."""

    def __init__(self, path: Path | str, *, truncate: bool = False) -> None:
        self.path = Path(path)
        make_private_dir(self.path.parent)
        self._file = open_private(self.path, "w" if truncate else "a")
        self.error: str | None = None
        """Why lines stopped reaching the file (reported once on stderr), or None."""
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"log-{self.path.name}", daemon=True)
        self._thread.start()
        self._closed = False

    def write(self, line: str, *, diagnostic: bool = False) -> None:
        """Queue one line (a newline is added); safe from any thread. ``diagnostic`` marks a
        warning or an error (see :func:`processors.redaction.redact`)."""
        if not self._closed:
            self._queue.put((line, diagnostic))

    def _run(self) -> None:
        stopped = False
        while not stopped:
            # Everything queued since the last wake-up is written in one go: a burst of lines
            # costs the event loop's thread one hand-over of the GIL, not one per line (each is
            # milliseconds on a loaded machine, and a flood of server events is thousands).
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopped = True
                batch = batch[: batch.index(_STOP)]
            if self.error is not None or not batch:
                continue  # keep draining so writers never block; the loss was reported once
            try:
                for item in batch:
                    self._write_item(item)
            except OSError as exc:  # disk full, file too large: say so once, on one line
                self.error = f"log file '{self.path}' cannot be written ({exc.strerror or exc}): its later lines are lost"
                error(self.error)
            if not stopped and len(batch) > 1:
                # Lines are coming fast: let the next ones gather for a moment (at most
                # BATCH_WAIT_S later on disk) rather than wake up for each.
                time.sleep(BATCH_WAIT_S)
        try:
            self._file.close()  # type: ignore[attr-defined]
        except OSError:
            pass

    def _write_item(self, item: object) -> None:
        """Write one queued ``(line, diagnostic)`` (in the writer thread)."""
        line, diagnostic = item  # type: ignore[misc]
        self._file.write(redact(line, diagnostic=diagnostic) + "\n")  # type: ignore[attr-defined]
        self._file.flush()  # type: ignore[attr-defined]

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then close the file."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)


class _Tail:
    """A queued change of the provisional last line: ``final`` replaces it for good."""

    __slots__ = ("text", "final")

    def __init__(self, text: str | None, final: bool) -> None:
        self.text, self.final = text, final


class TailLineWriter(LineWriter):
    """A :class:`LineWriter` (created empty) with one provisional last line.

    ``set_tail(text)`` writes or rewrites the provisional line; ordinary lines written meanwhile
    go before it; ``commit_tail(line)`` replaces it with its final form (``None``: removes it).
    Each change is one write at the provisional line's place, then a truncate, flushed at once.
    """

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, truncate=True)
        self._tail_at: int | None = None  # byte offset of the provisional line (writer thread only)
        self._tail: str | None = None

    def set_tail(self, text: str) -> None:
        """Write ``text`` as the provisional last line (replacing the previous one)."""
        if not self._closed:
            self._queue.put(_Tail(text, final=False))

    def commit_tail(self, line: str | None) -> None:
        """Replace the provisional line with ``line`` for good (or remove it)."""
        if not self._closed:
            self._queue.put(_Tail(line, final=True))

    def _write_item(self, item: object) -> None:
        if isinstance(item, _Tail):
            if item.final:
                self._put([redact(item.text)] if item.text is not None else [], None)
            else:
                self._put([], item.text)
        elif self._tail_at is None:
            super()._write_item(item)
        else:
            line, diagnostic = item  # type: ignore[misc]
            self._put([redact(line, diagnostic=diagnostic)], self._tail)

    def _put(self, lines: list[str], tail: str | None) -> None:
        """Write ``lines`` (redacted already) then ``tail`` where the provisional line was."""
        f = self._file
        at = self._tail_at
        start = at if at is not None else f.tell()  # type: ignore[attr-defined]
        head = "".join(line + "\n" for line in lines)
        last = redact(tail) + "\n" if tail is not None else ""
        f.seek(start)  # type: ignore[attr-defined]
        f.write(head + last)  # type: ignore[attr-defined]
        f.flush()  # type: ignore[attr-defined]
        f.truncate()  # type: ignore[attr-defined]
        self._tail_at = start + len(head.encode("utf-8")) if tail is not None else None
        self._tail = tail
