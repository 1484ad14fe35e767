"""A line of the conversation printed while the live lines redraw is never lost.

Lines are printed from the session's thread and the live lines redrawn from the view's timer
thread. rich computes a print's cursor move under its lock but renders and writes the print
outside it: a redraw in between that changed the number of live lines made the print move the
cursor one row too high, over the line printed before it (seen as a question whose answer never
showed in the console test). Here that interleaving is made to happen (the print is slow to
render, as a long line is on a loaded machine), the bytes the view wrote are shown by a real
terminal (tmux), and every line must be on its screen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from pipelines.console import LiveView
from processors.console_state import Line
from tests.support.tmux import Terminal

WIDTH, HEIGHT = 80, 20
HOLD_S = 0.5  # how long the slow print waits for a redraw (with the fix, none comes meanwhile)


class TerminalFile:
    """What the view writes, in order; notes each write from the view's timer thread."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.redrawn = threading.Event()

    def write(self, text: str) -> int:
        if threading.current_thread().name == "live-view":
            self.redrawn.set()
        self.chunks.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


class SlowConsole(Console):
    """A console whose rendering of the text ``slow`` waits until the view redrew (or
    ``HOLD_S``)."""

    def __init__(self, out: TerminalFile, slow: str) -> None:
        # its own environment: rich reads TERM (dumb: no live redraws) and TTY_* from the caller's
        env = {"TERM": "xterm-256color"}
        super().__init__(file=out, force_terminal=True, width=WIDTH, height=HEIGHT, _environ=env)
        self.out, self.slow = out, slow

    def render(self, renderable: Any, options: Any = None) -> Iterable[Any]:
        if isinstance(renderable, Text) and self.slow in renderable.plain:
            self.out.redrawn.clear()
            self.out.redrawn.wait(HOLD_S)
        return super().render(renderable, options)


def test_a_line_printed_during_a_redraw_stays_on_the_screen(
    script_env: dict[str, str], tmp_path: Path
) -> None:
    out = TerminalFile()
    view = LiveView(SlowConsole(out, slow="second line"))
    view.start()
    try:
        view.state.emit(Line("user", "first line"))
        view.state.partial_agent = "words being said"  # three live lines now
        assert wait_until(lambda: "words being said" in "".join(out.chunks))
        printer = threading.Thread(target=view.state.emit, args=(Line("agent", "second line"),))
        printer.start()
        time.sleep(0.05)  # the print is under way: its cursor move is computed, it renders
        view.state.partial_agent = ""  # two live lines: the timer redraws
        printer.join(5)
        assert not printer.is_alive()
        view.state.emit(Line("user", "third line"))
    finally:
        view.stop()
    stream = tmp_path / "view.out"
    stream.write_text("".join(out.chunks), encoding="utf-8")
    term = Terminal(["cat", str(stream)], cwd=tmp_path, env=script_env, width=WIDTH, height=HEIGHT)
    try:
        assert wait_until(lambda: "EXIT=0" in term.screen(history=True))
        screen = term.screen(history=True)
    finally:
        term.close()
    for text in ("You: first line", "Agent: second line", "You: third line"):
        assert text in screen, f"{text!r} is not on the screen:\n{screen}"


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
