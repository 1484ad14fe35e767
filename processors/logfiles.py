"""Log files written off the event loop by one writer thread per process, redacted there.

:class:`LineWriter` is one file (created with mode 0600, UTF-8, in a folder created 0700).
``write`` only enqueues, so the event loop never waits on the disk. All the files of all the
sessions of a process share one writer thread (three threads per session before): it redacts
each line (this is the redaction point of every log file, so a line is redacted once, off the
event loop) and writes it, and flushes the files it touched after each batch of queued lines, so a
crash loses only lines still queued. With ``max_bytes`` a file is rotated before it would grow
beyond it: ``voicelive.log`` -> ``voicelive.log.1`` -> ... ``.N`` (``backups``), the oldest
dropped; a file is opened for appending unless ``truncate``.
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

_CLOSE = object()
BATCH_WAIT_S = 0.02  # while lines come in bursts, the writer wakes at most 50 times a second


def open_private(path: Path, mode: str = "a") -> os.PathLike[str] | object:
    """Open ``path`` for text writing, creating it with permissions 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.chmod(path, 0o600)
    return os.fdopen(fd, mode, encoding="utf-8")  # flushed by the writer after each batch


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


class _WriterThread:
    """The process's one log writer thread (started on first use; a daemon, idle when nothing
    is queued)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[LineWriter, object, bool]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, writer: LineWriter, item: object, diagnostic: bool = False) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="log-writer", daemon=True
                    )
                    self._thread.start()
        self._queue.put((writer, item, diagnostic))

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            try:
                while len(batch) < 1000:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            touched: dict[int, LineWriter] = {}
            for writer, item, diagnostic in batch:
                if item is _CLOSE:
                    touched.pop(id(writer), None)
                    writer._finish()
                elif writer._write_item(item, diagnostic):
                    touched[id(writer)] = writer
            for writer in touched.values():
                writer._flush()
            if len(batch) > 1:
                # Lines are coming fast (a flood of server events is thousands): let the next ones
                # gather for a moment (at most BATCH_WAIT_S later on disk) rather than wake up, and
                # take the GIL from the event loop, for each.
                time.sleep(BATCH_WAIT_S)


_WRITER = _WriterThread()


class LineWriter:
    """A private, redacting log file written by the process's log writer thread.

    Raises ``OSError`` at once if the file cannot be created; later write failures (disk full)
    are reported once on stderr and kept in :attr:`error`.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        truncate: bool = False,
        max_bytes: int | None = None,
        backups: int = 5,
    ) -> None:
        self.path = Path(path)
        make_private_dir(self.path.parent)
        self._file = open_private(self.path, "w" if truncate else "a")
        self._size = os.fstat(self._file.fileno()).st_size  # type: ignore[attr-defined]
        self._max_bytes = max_bytes
        self._backups = max(1, backups)
        self.error: str | None = None
        """Why lines stopped reaching the file (reported once on stderr), or None."""
        self._closed = False
        self._finished = threading.Event()

    def write(self, line: str, *, diagnostic: bool = False) -> None:
        """Queue one line (a newline is added); safe from any thread. ``diagnostic`` marks a
        warning or an error (see :func:`processors.redaction.redact`)."""
        if not self._closed:
            _WRITER.put(self, line, diagnostic)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then close the file (waits at most ``timeout`` seconds)."""
        if self._closed:
            return
        self._closed = True
        _WRITER.put(self, _CLOSE)
        self._finished.wait(timeout)

    # -- on the writer thread --------------------------------------------------------------------

    def _write_item(self, item: object, diagnostic: bool) -> bool:
        """Write one queued item; True if the file needs a flush."""
        if self.error is not None:
            return False  # keep draining so writers never block; the loss was reported once
        text = redact(str(item), diagnostic=diagnostic) + "\n"
        try:
            limit = self._max_bytes
            if limit is not None and self._size and self._size + len(text) > limit:
                self._rotate()
            self._file.write(text)  # type: ignore[attr-defined]
            self._size += len(text)
        except OSError as exc:
            self._fail(exc)
            return False
        return True

    def _rotate(self) -> None:
        """``path`` -> ``path.1`` -> ... -> ``path.<backups>`` (dropped), then a new ``path``."""
        self._file.close()  # type: ignore[attr-defined]
        for n in range(self._backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open_private(self.path, "a")
        self._size = 0

    def _flush(self) -> None:
        try:
            self._file.flush()  # type: ignore[attr-defined]
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        if self.error is None:  # disk full, file too large: say so once, on one line
            why = exc.strerror or exc
            self.error = (
                f"log file '{self.path}' cannot be written ({why}): its later lines are lost"
            )
            error(self.error)

    def _finish(self) -> None:
        self._flush()
        try:
            self._file.close()  # type: ignore[attr-defined]
        except OSError:
            pass
        self._finished.set()


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
            _WRITER.put(self, _Tail(text, final=False))

    def commit_tail(self, line: str | None) -> None:
        """Replace the provisional line with ``line`` for good (or remove it)."""
        if not self._closed:
            _WRITER.put(self, _Tail(line, final=True))

    def _write_item(self, item: object, diagnostic: bool) -> bool:
        if self.error is not None:
            return False
        if self._tail_at is None and not isinstance(item, _Tail):
            return super()._write_item(item, diagnostic)
        try:
            if isinstance(item, _Tail):
                if item.final:
                    self._put([redact(item.text)] if item.text is not None else [], None)
                else:
                    self._put([], item.text)
            else:
                self._put([redact(str(item), diagnostic=diagnostic)], self._tail)
        except OSError as exc:
            self._fail(exc)
        return False  # flushed already

    def _put(self, lines: list[str], tail: str | None) -> None:
        """Write ``lines`` (redacted already) then ``tail`` where the provisional line was."""
        f = self._file
        f.flush()  # type: ignore[attr-defined]
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
