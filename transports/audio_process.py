"""The pipeline process's handle on the audio child (``--audio-process``).

:class:`AudioProcess` starts ``python -m transports.audio_child`` (see that module for the
protocol) with a ``memfd`` of shared memory (:mod:`transports.shm_ring`) passed as a file
descriptor, and the two pipes of a ``subprocess``: our writes to its stdin are commands, its
stdout carries replies and one-byte events, which the event loop reads with ``add_reader``.

* The child is a fresh interpreter started with ``-m``, not a ``multiprocessing`` spawn: a spawn
  re-imports the parent's main module (pipecat and all), and the child must stay lean.
* It never outlives us: it exits at the end of its stdin (our death closes it, SIGKILL
  included), the kernel kills it when we die (``PR_SET_PDEATHSIG`` on Linux, when started from
  the main thread), and at interpreter exit we stop any child still running. It runs in its
  own session, so a terminal's Ctrl-C is ours to handle, and we stop it.
* One process serves both transports: pass the same :class:`AudioProcess` to
  ``PyAudioInputTransport`` and ``PyAudioOutputTransport``; it ends when both released it.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from transports.devices import AudioDevice
from transports.errors import TransportError
from transports.shm_ring import SharedAudio

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 15.0  # child start-up plus PortAudio's device scan, on a loaded machine
STOP_TIMEOUT_S = 3.0
MAX_RATE = 48000
TAP_SECONDS = 2.0  # the played ring: blocks the pipeline has not taken yet (it takes them at once)
_alive: weakref.WeakSet[AudioProcess] = weakref.WeakSet()


@dataclass(frozen=True)
class OpenedDevice:
    """A device the child opened: what it is, and the stream's rate, period and latency."""

    info: AudioDevice
    rate: int
    frames_per_buffer: int
    latency: float


class AudioProcess:
    """A lean child process running the PortAudio streams (see the module docstring).

    Args:
        speaker_seconds: capacity of the speaker ring at 48 kHz (twice that at 24 kHz); audio
            written past it is dropped and counted as an overflow.
        mic_seconds: capacity of the microphone ring at 48 kHz.
    """

    def __init__(self, *, speaker_seconds: float = 120.0, mic_seconds: float = 10.0):
        if not hasattr(os, "memfd_create"):
            raise TransportError("--audio-process needs Linux (memfd shared memory)")
        self.shared = SharedAudio.create(
            int(speaker_seconds * MAX_RATE * 2),
            int(mic_seconds * MAX_RATE * 2),
            int(TAP_SECONDS * MAX_RATE * 2 * 2),  # stereo at most, plus the small record heads
        )
        config = {
            "fd": self.shared.fd,
            "out_capacity": self.shared.out_capacity,
            "in_capacity": self.shared.in_capacity,
            "tap_capacity": self.shared.tap_capacity,
            "spawner": os.getpid(),
            "parent": os.getpid()
            if threading.current_thread() is threading.main_thread()
            else None,
        }
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "transports.audio_child", json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=[self.shared.fd],
                start_new_session=True,
                env=env,
                cwd=ROOT,
            )
        except OSError as exc:
            self.shared.close_fd()
            raise TransportError(f"cannot start the audio process: {exc}") from None
        self.pid = self.process.pid
        self._ctl = self.process.stdin.fileno()
        self._evt = self.process.stdout.fileno()
        os.set_blocking(self._evt, False)
        self._pending = b""
        self._users = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.on_speaker: Callable[[bytes], None] | None = None
        """Called on the loop with each speaker event (``p``, ``d``, ``f``, ``t``)."""
        self.on_mic: Callable[[], None] | None = None
        """Called on the loop when microphone audio is in the ring."""
        _alive.add(self)

    # ------------------------------------------------------------- set-up

    def open_device(
        self, direction: str, device: int | str | None, rate: int, frames_per_buffer: int | None
    ) -> OpenedDevice:
        """Have the child open a stream (stopped); blocks until it answers. One-line
        :class:`TransportError` for anything a user can fix."""
        request = {"dir": direction, "device": device, "rate": rate, "fpb": frames_per_buffer}
        self.send(f"O{json.dumps(request)}\n".encode())
        kind, payload = self._read_reply(START_TIMEOUT_S)
        if kind == "E":
            raise TransportError(payload["error"])
        info = AudioDevice(
            index=payload["index"],
            name=payload["name"],
            host_api=payload["host_api"],
            max_input_channels=payload["max_input_channels"],
            max_output_channels=payload["max_output_channels"],
            default_sample_rate=payload["default_sample_rate"],
        )
        self._users += 1
        return OpenedDevice(info, payload["rate"], payload["fpb"], payload["latency"])

    def loaded_modules(self) -> list[str]:
        """The names in the child's ``sys.modules`` (blocking; for tests and diagnostics)."""
        self.send(b"?")
        return self._read_reply(START_TIMEOUT_S)[1]["modules"]

    def _read_reply(self, timeout: float) -> tuple[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            kind, payload = self._take_line()
            if kind is not None:
                return kind, payload
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._evt], [], [], left)[0]:
                self.kill()
                raise TransportError(f"the audio process did not answer within {timeout:.0f} s")
            chunk = self._read_events()
            if chunk is None:
                code = self.process.wait(STOP_TIMEOUT_S)
                raise TransportError(f"the audio process ended while starting (exit code {code})")

    def _read_events(self) -> bytes | None:
        """Whatever the child wrote (b'' if nothing yet); None once it is gone."""
        try:
            chunk = os.read(self._evt, 4096)
        except BlockingIOError:
            return b""
        except OSError:
            return None
        if not chunk:
            return None
        self._pending += chunk
        return chunk

    def _take_line(self) -> tuple[str | None, dict[str, Any] | None]:
        """Consume leading event bytes (dispatched) up to the first complete reply line."""
        while self._pending:
            head = self._pending[:1]
            if head in (b"R", b"E", b"M", b"!"):
                line, sep, rest = self._pending.partition(b"\n")
                if not sep:
                    break
                self._pending = rest
                payload = json.loads(line[1:])
                if head == b"!":
                    logger.warning(f"audio process: {payload.get('error')}")
                    continue
                return head.decode(), payload
            self._pending = self._pending[1:]
            self._dispatch(head)
        return None, None

    def _dispatch(self, code: bytes) -> None:
        if self._loop is None:
            return  # not attached yet: the rings hold the data, nothing is waiting
        if code == b"m":
            if self.on_mic:
                self.on_mic()
        elif self.on_speaker:
            self.on_speaker(code)

    # ------------------------------------------------------------- running

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver the child's events on ``loop`` (idempotent)."""
        if self._loop is None and not self._closed:
            self._loop = loop
            loop.add_reader(self._evt, self._on_readable)

    def _on_readable(self) -> None:
        if self._read_events() is None:
            self._detach()
            if not self._closed:
                code = self.process.poll()
                logger.error(
                    f"the audio process (pid {self.pid}) ended unexpectedly "
                    f"(exit code {code}); no more audio in or out"
                )
        while self._take_line()[0] is not None:
            pass

    def _detach(self) -> None:
        if self._loop is not None:
            try:
                self._loop.remove_reader(self._evt)
            except (RuntimeError, ValueError):
                pass
            self._loop = None

    def send(self, command: bytes) -> None:
        """A command to the child (non-blocking for the few bytes we send)."""
        try:
            os.write(self._ctl, command)
        except OSError:
            pass  # the child is gone: reported by the event reader

    # ------------------------------------------------------------- ending

    def release(self) -> None:
        """A transport is done with the child; the last one ends it (blocking, bounded)."""
        self._users -= 1
        if self._users <= 0:
            self.close()

    def close(self) -> None:
        """Ask the child to quit, wait (bounded), kill it if it hangs (blocking; idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.send(b"q")
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning(f"the audio process (pid {self.pid}) did not stop; killing it")
            self.kill()
        self.process.stdout.close()
        self.shared.close_fd()

    async def aclose(self) -> None:
        """:meth:`release` from the loop, without blocking it."""
        if self._users <= 1:
            self._detach()
        await asyncio.to_thread(self.release)

    def kill(self) -> None:
        """SIGKILL the child and reap it."""
        self.process.kill()
        self.process.wait()

    def is_alive(self) -> bool:
        """The child is still running."""
        return self.process.poll() is None


@atexit.register
def _stop_leftovers() -> None:
    for audio in list(_alive):
        if audio.is_alive():
            audio.kill()
