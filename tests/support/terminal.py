"""A pseudo-terminal for a test to run a script on, as a user's terminal (see :class:`Terminal`);
the script itself is started with :func:`tests.support.script_run.script`."""

from __future__ import annotations

import asyncio
import fcntl
import os
import termios
from typing import Any


class Terminal:
    """A pseudo-terminal for a script to run on, as a user's: ``script(..., **tty.popen())``
    makes it the script's controlling terminal and stdin (and stdout/stderr with
    ``output=True``); what the script writes there collects in ``screen``, what the test types
    goes in with :meth:`type`. Use ``with Terminal() as tty:`` inside the test's event loop."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.screen = bytearray()
        self.closed = False  # every slave end is closed: the script has gone
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def __enter__(self) -> Terminal:
        self._loop.add_reader(self.master, self._read)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.remove_reader(self.master)
        os.close(self.master)
        self.attached()

    def _read(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: no process holds the slave end any more
            data = b""
        self.screen.extend(data)
        if not data:
            self.closed = True
            self._loop.remove_reader(self.master)
        self._changed.set()

    def popen(self, output: bool = False) -> dict[str, Any]:
        """The :func:`script` arguments that run the script on this terminal."""

        def controlling_tty() -> None:  # in the child, after setsid: the pty becomes /dev/tty
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        kw: dict[str, Any] = {"stdin": self.slave, "start_new_session": True}
        kw["preexec_fn"] = controlling_tty
        if output:
            kw |= {"stdout": self.slave, "stderr": self.slave}
        return kw

    def attached(self) -> None:
        """Once the script is started: close the test's copy of the slave end, so that the
        terminal closes when the script ends."""
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    async def wait_for(self, text: bytes | None, timeout: float) -> None:
        """Until ``text`` is on the screen (None: until the terminal closes). AssertionError if
        it closes first, TimeoutError after ``timeout``."""

        async def shown() -> None:
            while text is None or text not in self.screen:
                if self.closed:
                    if text is None:
                        return
                    raise AssertionError(f"the terminal closed before {text!r}: {self.screen!r}")
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(shown(), timeout)
