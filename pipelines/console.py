"""The operator's live view: the conversation and a status line, drawn with ``rich``.

Finished lines of the conversation scroll (``You: …``, ``Agent: …``; an interrupted answer shows
``✂`` where the listener stopped hearing it, the unheard rest struck through). Below them, kept in
place by ``rich.live.Live``: the words being spoken right now, the line being typed, and one status
line: state, microphone and speaker level meters (dBFS), the last turn's latency (user speech end
-> first agent audio played), session time and the time left before the session expires.

Cheap by construction: the processors only append audio blocks to deques and set a few fields
(:mod:`processors.console_state`); levels are computed by a timer thread ``REFRESH_HZ`` times a
second, never per frame, never on the event loop, and the view is redrawn when what it shows
changed (while the room is silent, once a second for the clock). Every live line is cut to
the terminal's width at each refresh, so a narrow terminal never wraps them; when the terminal
gets narrower, the rows the old lines now take are erased too, so a resize leaves no debris.

While the view runs, the terminal does not echo: :meth:`LiveView.watch_keyboard` reads keys
itself and shows the line being typed; Enter sends it (``q`` quits), Ctrl-D on an empty line quits.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import math
import os
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable
from typing import Any

from loguru import logger
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from processors.console_state import SILENCE_DB, ConsoleFeed, ConsoleState, Line, MicLevelTap
from processors.logsetup import RedactingSink, pause_console, resume_console
from processors.redaction import redact

REFRESH_HZ = 10.0
METER_CELLS = 6
METER_FLOOR_DB = -60.0
STATE_STYLES = {
    "connecting": "yellow",
    "listening": "green",
    "user speaking": "bold cyan",
    "thinking": "magenta",
    "agent speaking": "bold blue",
    "reconnecting": "bold red",
}


def wants_live_view(plain: bool) -> bool:
    """The live view is for a terminal: not with ``--plain``, not when stdout is a pipe or file."""
    return not plain and sys.stdout is not None and sys.stdout.isatty()


def clock(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` past an hour)."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return (
        f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
        if hours
        else f"{rest // 60:02d}:{rest % 60:02d}"
    )


def meter(db: float) -> Text:
    """``▮▮▮▯▯▯▯▯ -32dB``: cells from -60 to 0 dBFS."""
    filled = (
        0
        if db <= METER_FLOOR_DB
        else math.ceil(METER_CELLS * (db - METER_FLOOR_DB) / -METER_FLOOR_DB)
    )
    style = "red" if db > -6 else "yellow" if db > -20 else "green"
    label = " -∞dB" if db <= SILENCE_DB else f"{db:3.0f}dB"
    return Text.assemble(("▮" * filled, style), ("▯" * (METER_CELLS - filled), "dim"), f" {label}")


def line_text(line: Line) -> Text:
    """A finished conversation line as the view prints it (redacted, as every console line)."""
    clean = redact(line.text)
    if clean != line.text:
        line = dataclasses.replace(
            line, text=clean, cut_at=None if line.cut_at is None else min(line.cut_at, len(clean))
        )
    if line.who == "note":
        return Text(f"· {line.text}", style="dim italic")
    if line.who == "user":
        return Text.assemble(
            ("You" + (" (typed)" if line.typed else ""), "bold cyan"), ": ", line.text
        )
    if line.cut_at is None:
        return Text.assemble(("Agent", "bold green"), ": ", line.text)
    heard = f" (heard {line.heard_ms / 1000:.1f} s)" if line.heard_ms is not None else ""
    return Text.assemble(
        ("Agent", "bold green"),
        ": ",
        line.text[: line.cut_at].rstrip(),
        (" ✂ ", "bold red"),
        (line.text[line.cut_at :].strip(), "dim strike"),
        (heard, "dim"),
    )


class LiveView:
    """The live view of one session (see the module docstring)."""

    def __init__(self, console: Console | None = None) -> None:
        self.state = ConsoleState()
        self.state.on_line = self._print_line
        self.console = console or Console(highlight=False)
        self.report: Any = None
        self.typing = ""
        self._live: Live | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._keyboard: threading.Thread | None = None
        self._saved_stderr_fd: int | None = None
        self._sink: int | None = None
        self._tty_saved: list[Any] | None = None
        self._latest_shape: tuple[int, list[int]] = (0, [])  # width, lengths of the live lines
        self._levels = (SILENCE_DB, SILENCE_DB)
        self._closing = False

    # -- wiring ---------------------------------------------------------------------------------

    def input_processors(self) -> list[Any]:
        """Processors to place between the input and the service (the microphone meter)."""
        return [MicLevelTap(self.state)]

    def processors(self) -> list[Any]:
        """Processors to place after the service, before the output."""
        return [ConsoleFeed(self.state)]

    def attach(self, app: Any) -> None:
        """Follow a built :class:`pipelines.agent.AgentPipeline`: its report and its speaker."""
        self.report = app.report
        playback = getattr(app.output, "playback", None)
        if playback is not None:
            self.state.playback = playback
        if hasattr(playback, "add_tap"):  # the speaker meter
            playback.add_tap(self.state.speaker_tap)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Draw the view and refresh it from a timer thread; log warnings go above it."""
        pause_console()
        self._sink = logger.add(
            RedactingSink(_LiveStream(self._print_above)),
            level="WARNING",
            format="{message}",
            filter=lambda r: r["extra"].get("console") is not False,
            colorize=False,
        )
        self._live = Live(
            console=self.console,
            get_renderable=self._render,
            auto_refresh=False,
            redirect_stdout=True,
            redirect_stderr=True,
            vertical_overflow="crop",
        )
        self._erase_rewrapped_rows(self._live)
        self._capture_stderr_fd()
        self._live.start()
        self._timer = threading.Thread(target=self._run_timer, name="live-view", daemon=True)
        self._timer.start()

    def stop(self) -> None:
        """Final refresh, leave the status line on screen, give the terminal back."""
        self._stop.set()
        for thread in (self._timer, self._keyboard):
            if thread is not None:
                thread.join(timeout=1.0)
        self._timer = self._keyboard = None
        self._restore_tty()
        if self._live is not None:
            self._closing = True  # the last render keeps the status line only
            self._refresh()
            self._live.stop()
            self._live = None
        self._release_stderr_fd()
        if self._sink is not None:
            logger.remove(self._sink)
            self._sink = None
            resume_console()

    def _capture_stderr_fd(self) -> None:
        """C libraries write to fd 2 directly (ALSA: "underrun occurred"), which would land in
        the middle of the view: while it runs, fd 2 goes to the technical log instead."""
        try:
            sys.stderr.flush()
            read_end, write_end = os.pipe()
            self._saved_stderr_fd = os.dup(2)
            os.dup2(write_end, 2)
            os.close(write_end)
        except (OSError, ValueError):
            return
        threading.Thread(
            target=self._forward_stderr, args=(read_end,), name="stderr-fd", daemon=True
        ).start()

    @staticmethod
    def _forward_stderr(fd: int) -> None:
        with os.fdopen(fd, "rb") as pipe:
            for raw in pipe:  # ends when fd 2 is restored (the last write end closes)
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    logger.bind(console=False).warning(f"stderr: {line}")

    def _release_stderr_fd(self) -> None:
        if self._saved_stderr_fd is not None:
            try:
                os.dup2(self._saved_stderr_fd, 2)
                os.close(self._saved_stderr_fd)
            except OSError:
                pass
            self._saved_stderr_fd = None

    def _run_timer(self) -> None:
        last = None
        while not self._stop.wait(1.0 / REFRESH_HZ):
            self._levels = self.state.levels()
            seen = self._what_is_shown()
            if seen != last:  # drawing costs far more than looking: only redraw on a change
                last = seen
                self._refresh()

    def _what_is_shown(self) -> tuple[Any, ...]:
        s, now = self.state, time.monotonic()
        latency = self.report.last_latency_ms() if self.report is not None else None
        left = s.seconds_left()
        return (
            s.state,
            round(self._levels[0]),
            round(self._levels[1]),
            latency,
            int(now - s.started_at),
            None if left is None else int(left),
            self.typing,
            s.partial_user,
            s.partial_agent,
            self.console.size.width,
        )

    def _erase_rewrapped_rows(self, live: Live) -> None:
        """Before rich moves the cursor back over the live lines (on a refresh and on every line
        printed above them), count the rows they take now: a terminal that got narrower has
        re-wrapped them, and rows left out would stay on screen as debris."""
        render = live._live_render  # rich keeps the last render's shape here
        move_back = render.position_cursor
        drawn: list[tuple[int, list[int]]] = [(0, [])]  # width and line lengths on screen now

        def position_cursor() -> Any:
            width = self.console.size.width
            rendered_at, lengths = drawn[0]
            shape = render._shape
            if width < rendered_at and shape is not None:
                rows = sum(max(1, math.ceil(n / width)) for n in lengths)
                render._shape = (shape[0], max(shape[1], rows))
            drawn[0] = (
                self._latest_shape
            )  # what rich draws next (rendered before this call, if new)
            return move_back()

        render.position_cursor = position_cursor  # type: ignore[method-assign]

    def _refresh(self) -> None:
        live = self._live
        if live is None:
            return
        try:
            live.refresh()
        except Exception as exc:  # the view must never take the session down
            logger.bind(console=False).warning(f"live view refresh failed: {exc}")

    def _print_line(self, line: Line) -> None:
        if self._live is not None:  # not before start() or after stop(), as before the lock
            self._print_above(line_text(line))

    def _print_above(self, text: Text) -> None:
        """Print ``text`` above the live lines, from any thread.

        Holding the view's lock for the whole print matters: rich computes the cursor move under
        it but renders and writes outside it, so a refresh from the timer thread in between
        (the live lines growing or shrinking by one) moved the cursor over a line printed just
        before, which was lost from the screen.
        """
        live = self._live  # None: not started, or stopped (nothing to keep clear of)
        with live._lock if live is not None else contextlib.nullcontext():
            self.console.print(text, overflow="fold")

    # -- rendering ------------------------------------------------------------------------------

    def _render(self) -> Group:
        width = max(10, self.console.size.width - 1)
        lines: list[Text] = []
        s = self.state
        if s.partial_user:
            lines.append(
                _tail(Text("You: ", style="bold cyan"), redact(s.partial_user.strip()), width)
            )
        if s.partial_agent:
            lines.append(
                _tail(Text("Agent: ", style="bold green"), redact(s.partial_agent.strip()), width)
            )
        if self._closing:
            status = self._status(width)
            self._latest_shape = (width + 1, [len(status.plain)])
            return Group(status)
        prompt = (
            Text.assemble(("› ", "bold"), self.typing, ("▏", "blink"))
            if self.typing
            else Text("› type a message and press Enter · q to quit", style="dim")
        )
        lines.append(_tail(Text(), prompt, width))
        lines.append(self._status(width))
        self._latest_shape = (width + 1, [len(t.plain) for t in lines])
        return Group(*lines)

    def _status(self, width: int) -> Text:
        s = self.state
        state = s.state
        mic, spk = self._levels
        latency = self.report.last_latency_ms() if self.report is not None else None
        left = s.seconds_left()
        parts = [  # in order of importance: what does not fit is left out
            Text.assemble(
                ("● ", STATE_STYLES.get(state, "")), (f"{state:<14}", STATE_STYLES.get(state, ""))
            ),
            Text.assemble(("mic ", "bold"), meter(mic)),
            Text(f"latency {latency:.0f} ms" if latency is not None else "latency —"),
            Text(clock(time.monotonic() - s.started_at)),
            Text.assemble(("spk ", "bold"), meter(spk)),
            Text(
                f"expires in {clock(left)}" if left is not None else "no expiry known", style="dim"
            ),
        ]
        line = Text()
        for part in parts:
            extra = len(part.plain) + (3 if line.plain else 0)
            if len(line.plain) + extra > width:
                continue
            if line.plain:
                line.append(" │ ", style="dim")
            line.append_text(part)
        return line

    # -- keyboard -------------------------------------------------------------------------------

    def watch_keyboard(
        self,
        loop: asyncio.AbstractEventLoop,
        quit_cb: Callable[[], None],
        text_cb: Callable[[str], None],
    ) -> bool:
        """Read keys without echo and show the line being typed; False if stdin is no terminal."""
        try:
            fd = sys.stdin.fileno()
            if not os.isatty(fd):
                return False
            self._tty_saved = termios.tcgetattr(fd)
            # No echo, no line buffering; Ctrl-C still raises SIGINT. TCSANOW keeps what was
            # typed before (TCSAFLUSH, the default, would drop a `q` typed during start-up).
            tty.setcbreak(fd, termios.TCSANOW)
        except (OSError, ValueError, AttributeError, termios.error):
            return False
        self._keyboard = threading.Thread(
            target=self._read_keys, args=(fd, loop, quit_cb, text_cb), name="keyboard", daemon=True
        )
        self._keyboard.start()
        return True

    def _read_keys(
        self,
        fd: int,
        loop: asyncio.AbstractEventLoop,
        quit_cb: Callable[[], None],
        text_cb: Callable[[str], None],
    ) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        escape = False
        while not self._stop.is_set():  # wakes up to notice stop(): no thread outlives the view
            try:
                if not select.select([fd], [], [], 0.1)[0]:
                    continue
                data = os.read(fd, 256)
            except (OSError, ValueError):
                return
            if not data:
                return
            for ch in decoder.decode(data):
                if escape:  # skip an escape sequence (arrow keys ...) up to its final letter
                    escape = not ch.isalpha() and ch != "~"
                elif ch == "\x1b":
                    escape = True
                elif ch in "\r\n":
                    line, self.typing = self.typing.strip(), ""
                    if line.lower() == "q":
                        loop.call_soon_threadsafe(quit_cb)
                        return
                    if line:
                        loop.call_soon_threadsafe(text_cb, line)
                elif ch in "\x7f\b":
                    self.typing = self.typing[:-1]
                elif ch == "\x04" and not self.typing:
                    loop.call_soon_threadsafe(quit_cb)
                    return
                elif ch == "\x15":  # Ctrl-U
                    self.typing = ""
                elif ch.isprintable():
                    self.typing += ch

    def _restore_tty(self) -> None:
        if self._tty_saved is not None:
            try:
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._tty_saved)
            except (OSError, ValueError, termios.error):
                pass
            self._tty_saved = None


def _tail(prefix: Text, words: str | Text, width: int) -> Text:
    """``prefix`` and the end of ``words`` that fits in ``width`` cells, on one line: the
    words being said right now stay in sight."""
    body = words if isinstance(words, Text) else Text(words)
    room = width - len(prefix.plain)
    if room < 2:
        return Text(prefix.plain[:width], style=prefix.style)
    if len(body.plain) > room:
        body = Text.assemble(("…", "dim"), body[len(body.plain) - room + 1 :])
    return Text.assemble(prefix, body)


class _LiveStream:
    """A write()-able stream that prints log lines above the live view."""

    def __init__(self, print_above: Callable[[Text], None]) -> None:
        self._print_above = print_above

    def write(self, text: str) -> None:
        if text.strip():
            self._print_above(Text(text.rstrip("\n"), style="yellow"))

    def flush(self) -> None:
        pass
