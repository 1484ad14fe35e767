"""Log files written off the event loop, one redacted line at a time.

:class:`LineWriter` owns one file (created with mode 0600, UTF-8, in a folder created 0700) and a
writer thread; ``write`` only enqueues, so the event loop never waits on the disk. Every line is
redacted (this is the redaction point of every log file) and flushed as soon as it is written,
so a crash loses nothing that was already logged.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

from processors.console import error
from processors.redaction import redact

_STOP = object()


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
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if self.error is not None:
                continue  # keep draining so writers never block; the loss was reported once
            try:
                line, diagnostic = item  # type: ignore[misc]
                self._file.write(redact(line, diagnostic=diagnostic) + "\n")  # type: ignore[attr-defined]
                self._file.flush()  # type: ignore[attr-defined]
            except OSError as exc:  # disk full, file too large: say so once, on one line
                self.error = f"log file '{self.path}' cannot be written ({exc.strerror or exc}): its later lines are lost"
                error(self.error)
        try:
            self._file.close()  # type: ignore[attr-defined]
        except OSError:
            pass

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then close the file."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
