"""A real terminal for tests: a private tmux server running one command in one window.

:class:`Terminal` starts ``tmux -L <private socket> new-session`` with a fixed size, types with
``send-keys``, reads the screen with ``capture-pane``, and waits for text on the screen (polling
the pane with a deadline, never a blind sleep). The command's exit code is kept on screen by a
trailing ``echo EXIT=$?`` and the window stays open until :meth:`Terminal.close`.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

POLL_S = 0.05


class Terminal:
    """One tmux window of ``width`` x ``height`` running ``argv`` in ``cwd`` with ``env``."""

    def __init__(
        self, argv: list[str], *, cwd: Path, env: dict[str, str], width: int = 120, height: int = 40
    ) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed: run `make setup` or apt-get install tmux")
        self.socket = f"vl-test-{uuid.uuid4().hex[:8]}"
        command = f"cd {shlex.quote(str(cwd))} && {shlex.join(argv)}; echo EXIT=$?; sleep 600"
        # The private server starts here, with ``env`` as the window's environment.
        self._tmux(
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            str(width),
            "-y",
            str(height),
            command,
            env=env,
        )

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        if result.returncode != 0:
            raise RuntimeError(f"tmux {args[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def screen(self, history: bool = False) -> str:
        """The visible screen (with the scrollback when ``history``), trailing blanks dropped."""
        extra = ["-S", "-2000"] if history else []
        return self._tmux("capture-pane", "-p", "-J", "-t", "t", *extra).rstrip()

    def type(self, text: str, enter: bool = True) -> None:
        self._tmux("send-keys", "-t", "t", "-l", text)
        if enter:
            self._tmux("send-keys", "-t", "t", "Enter")

    def resize(self, width: int, height: int) -> None:
        self._tmux("resize-window", "-t", "t", "-x", str(width), "-y", str(height))

    async def wait_for(
        self, pattern: str, timeout: float = 30.0, history: bool = False
    ) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) is on the screen; else TimeoutError with the screen."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            text = self.screen(history)
            match = re.search(pattern, text)
            if match:
                return match
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{pattern!r} never appeared on the screen:\n{text}")
            await asyncio.sleep(POLL_S)

    async def exit_code(self, timeout: float = 30.0) -> int:
        return int((await self.wait_for(r"EXIT=(\d+)", timeout, history=True)).group(1))

    def close(self) -> None:
        """Stop the private tmux server and remove its socket file."""
        try:
            path = self._tmux("display-message", "-p", "#{socket_path}").strip()
        except (RuntimeError, subprocess.TimeoutExpired):  # the server is already gone
            path = ""
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"],
            capture_output=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
        if path:
            Path(path).unlink(missing_ok=True)
