"""The audio process: PortAudio streams in a lean child, fed through shared memory.

Started by :class:`transports.audio_process.AudioProcess` as
``python -m transports.audio_child CONFIG_JSON`` in its own session (a terminal's Ctrl-C is the
parent's to handle). It imports only the standard library, PyAudio and the pipecat-free
transport modules (:mod:`transports.streams`, :mod:`transports.shm_ring`), so nothing the
pipeline process does — a processor holding the GIL, a busy event loop — reaches its callbacks.
Where permitted (root, ``CAP_SYS_NICE`` or ``RLIMIT_NICE``) it raises its own priority to nice
-11, as PulseAudio does for itself, so other processes' load does not starve the callbacks.

Protocol (the parent writes our stdin, reads our stdout):

* in: ``O{json}\\n`` open a device (``{"dir", "device", "rate", "fpb"}``), answered by
  ``R{json}\\n`` (the device, rate, period and latency) or ``E{json}\\n`` (a one-line error);
  ``i`` start the microphone; ``w`` audio was queued (start the speaker); ``f`` a flush was
  requested (apply it, abort the speaker); ``?`` list the loaded modules (answered by
  ``M{json}\n``: what the tests check to keep the child lean); ``q`` quit. End of input
  means the parent is gone: the child exits too (and on Linux the kernel kills it if the
  parent dies, via ``PR_SET_PDEATHSIG``).
* out, single bytes: ``m`` microphone audio is in its ring, ``p`` the speaker started handing
  out queued audio, ``d`` it took everything queued, ``f`` a flush was applied, ``t`` a played
  block is in the played ring (only while the parent taps the speaker).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from typing import Any

import pyaudio

from transports.errors import TransportError
from transports.shm_ring import (
    ABORTS,
    IN_HOST_OVERFLOWS,
    LAST_AUDIO_NS,
    OUT_R,
    OUT_W,
    RUNNING,
    STARTS,
    STREAMING,
    TAP_ON,
    UNDERFLOWS,
    UNDERRUNS,
    SharedAudio,
)
from transports.streams import INPUT, Device, OutputDriver, device_time

PR_SET_PDEATHSIG = 1
EXIT_WATCHDOG_S = 3.0  # longest the child takes to close its streams before it just exits
AUDIO_NICE = -11  # what PulseAudio asks for itself: the callbacks keep up on a busy machine


def _notify(code: bytes) -> None:
    """One event byte to the parent (atomic on a pipe); a gone parent is ignored here."""
    try:
        os.write(1, code)
    except OSError:
        pass


def _reply(kind: str, payload: dict[str, Any]) -> None:
    _notify(f"{kind}{json.dumps(payload)}\n".encode())


class SpeakerSource:
    """The speaker ring as the :class:`OutputDriver`'s source, with the parent's notices."""

    def __init__(self, shared: SharedAudio):
        self.shared = shared
        self._lock = threading.Lock()  # the callback thread and the control thread
        self._handing = False
        self._dry = False

    def read(self, n_frames: int, at: float | None = None) -> bytes:
        """Callback thread: apply pending flushes, then copy the next period out of the ring;
        while the pipeline taps the speaker, record the block and when it plays (``at``, else
        now) in the played ring."""
        shared, h = self.shared, self.shared.h
        with self._lock:
            flushed = shared.apply_flushes()
            data, got = shared.out_read(n_frames)
            tapped = bool(h[TAP_ON]) and shared.tap_write(
                time.monotonic_ns() if at is None else int(at * 1e9), data
            )
            queued = shared.out_queued()
            started = got > 0 and not self._handing
            drained = got > 0 and queued <= 0
            self._handing = got > 0 and queued > 0
            if got < n_frames * shared.frame_bytes and h[STREAMING]:
                if not self._dry:
                    h[UNDERRUNS] += 1
                    self._dry = True
            else:
                self._dry = False
        if flushed:
            _notify(b"f")
        if started:
            _notify(b"p")
        if drained:
            _notify(b"d")
        if tapped:
            _notify(b"t")
        return data

    def flush(self) -> None:
        """Control side: apply a flush now (the stream may be stopped)."""
        with self._lock:
            flushed = self.shared.apply_flushes()
            self._handing = False
        if flushed:
            _notify(b"f")

    @property
    def is_idle(self) -> bool:
        """Nothing is queued in the ring."""
        h = self.shared.h
        return h[OUT_W] <= h[OUT_R]

    @property
    def last_audio_at(self) -> float:
        """``time.monotonic()`` of the latest read that handed out audio."""
        return self.shared.h[LAST_AUDIO_NS] / 1e9  # time.monotonic_ns() of the last audio


class ChildDriver(OutputDriver):
    """:class:`OutputDriver` that publishes its state and counters in the shared header."""

    def _set_running(self, running: bool) -> None:
        super()._set_running(running)
        h = self.source.shared.h
        h[STARTS], h[ABORTS], h[RUNNING] = self.starts, self.aborts, int(running)

    def _callback(self, in_data, frame_count, time_info, status):
        if status & pyaudio.paOutputUnderflow:
            self.source.shared.h[UNDERFLOWS] += 1
        return super()._callback(in_data, frame_count, time_info, status)


class AudioChild:
    """The child's state: the shared rings, at most one speaker and one microphone."""

    def __init__(self, shared: SharedAudio):
        self.shared = shared
        self.speaker: ChildDriver | None = None
        self.source = SpeakerSource(shared)
        self.mic: Device | None = None
        self._mic_bytes_per_s = 0  # mono int16 at the microphone's rate

    def open(self, request: dict[str, Any]) -> None:
        """Open the requested device (stopped) and answer ``R`` or ``E``."""
        direction = request["dir"]
        try:
            device = Device(
                request.get("device"), direction, int(request["rate"]), request.get("fpb")
            )
            if direction == "output":
                self.speaker = ChildDriver(device, self.source, name="audio-child-out")
                self.speaker.open()
            else:
                device.open(self._mic_callback, False)  # started later, by "i"
                self.mic, self._mic_bytes_per_s = device, 2 * device.rate
        except TransportError as exc:
            _reply("E", {"error": str(exc)})
            return
        info = device.info
        _reply(
            "R",
            {
                "index": info.index,
                "name": info.name,
                "host_api": info.host_api,
                "max_input_channels": info.max_input_channels,
                "max_output_channels": info.max_output_channels,
                "default_sample_rate": info.default_sample_rate,
                "rate": device.rate,
                "fpb": device.frames_per_buffer,
                "latency": device.latency,
            },
        )

    def _mic_callback(self, in_data, frame_count, time_info, status):
        if status & pyaudio.paInputOverflow:
            self.shared.h[IN_HOST_OVERFLOWS] += 1
        at = device_time(time_info, INPUT)  # the ADC time, for the client echo reference
        self.shared.in_write(in_data, 0 if at is None else int(at * 1e9), self._mic_bytes_per_s)
        _notify(b"m")
        return None, pyaudio.paContinue

    def command(self, code: int) -> None:
        """Carry out a one-byte command from the parent."""
        if code == ord("w") and self.speaker:
            self.speaker.wake()
        elif code == ord("f"):
            self.source.flush()
            if self.speaker:
                self.speaker.flush()
        elif code == ord("?"):
            _reply("M", {"modules": sorted(sys.modules)})
        elif code == ord("i") and self.mic:
            try:
                self.mic.start()
            except TransportError as exc:
                _reply("!", {"error": str(exc)})

    def close(self) -> None:
        """Abort and close both streams."""
        if self.speaker:
            self.speaker.close(EXIT_WATCHDOG_S)
        if self.mic:
            self.mic.close()


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill us when the parent (thread) that spawned us dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the prctl
        os._exit(0)


def serve(child: AudioChild) -> None:
    """Read commands from stdin until ``q`` or end of input."""
    pending = b""
    while True:
        try:
            chunk = os.read(0, 4096)
        except OSError:
            return
        if not chunk:
            return  # the parent is gone
        pending += chunk
        while pending:
            if pending[:1] == b"O":
                line, sep, rest = pending.partition(b"\n")
                if not sep:
                    break
                pending = rest
                child.open(json.loads(line[1:]))
            elif pending[:1] == b"q":
                return
            else:
                child.command(pending[0])
                pending = pending[1:]


def main() -> None:
    """Entry point: ``python -m transports.audio_child CONFIG_JSON``."""
    config = json.loads(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if config.get("parent"):
        _die_with_parent(int(config["parent"]))
    try:  # before PortAudio starts its threads, which inherit it; needs CAP_SYS_NICE/RLIMIT_NICE
        os.setpriority(os.PRIO_PROCESS, 0, AUDIO_NICE)
    except OSError:
        pass  # not permitted: stay at the parent's priority
    shared = SharedAudio(
        int(config["fd"]),
        int(config["out_capacity"]),
        int(config["in_capacity"]),
        int(config["tap_capacity"]),
    )
    child = AudioChild(shared)
    try:
        serve(child)
    finally:
        watchdog = threading.Timer(EXIT_WATCHDOG_S, os._exit, (0,))  # a PortAudio call hangs
        watchdog.daemon = True
        watchdog.start()
        child.close()
        os._exit(0)


if __name__ == "__main__":
    main()
