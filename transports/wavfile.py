"""WAV file plumbing for the WAV transports: validated reading, and the recorder's clock thread.

* :func:`check_wav` / :func:`read_wav_mono` — open an integer PCM WAV (8, 16, 24 or 32 bit, any
  rate, any channel count), downmix to mono, resample to the pipeline rate; every failure is a
  one-line :class:`TransportError` that says what to do.
* :class:`WavRecorder` — the "virtual speaker": every tick it takes from a
  :class:`PlaybackBuffer` exactly the frames due since the stream started (absolute, from
  ``time.monotonic()``, so it never drifts) and appends them to a WAV. Silence is recorded where
  nothing was queued, so the file is the listener's timeline. :meth:`WavRecorder.cut` brings the
  timeline up to "now" and then clears the buffer, atomically with respect to the tick, which is
  how an interruption is recorded exactly where a listener would have stopped hearing (so is
  :meth:`WavRecorder.write` when the speaker was idle: the tick only moves whole blocks). The
  ticks of every recorder in the process come from one shared clock thread (:class:`WavClock`),
  so a hundred WAV sessions cost one thread, not a hundred. Only that thread writes the files;
  the loop side only moves buffers in memory.

The header is patched on close and about once a second while recording, so a process that dies
leaves a valid WAV holding at least everything up to the last second (trailing bytes after the
patched length are ignored by readers).
"""

from __future__ import annotations

import os
import struct
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from transports.errors import TransportError
from transports.pcm import downmix_samples, resample_all
from transports.playback import PlaybackBuffer

HEADER_PATCH_SECS = 1.0
WAV_HEADER_BYTES = 44  # the canonical PCM header Python's wave module writes


CONVERT_HINT = "convert it to 16-bit PCM, e.g. `sox in.wav -b 16 out.wav`"


def check_wav(path: str | os.PathLike) -> tuple[int, int, int]:
    """Validate ``path`` as an integer PCM WAV; return (rate, channels, frames)."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise TransportError(f"input WAV '{name}' is a folder, not a WAV file")
    if not os.path.isfile(name):
        raise TransportError(f"input WAV '{name}' not found")
    try:
        with wave.open(name, "rb") as wav:
            width, rate = wav.getsampwidth(), wav.getframerate()
            channels, frames = wav.getnchannels(), wav.getnframes()
    except wave.Error as e:
        reason = "floating-point samples are not supported" if "format: 3" in str(e) else str(e)
        raise TransportError(
            f"input WAV '{name}' cannot be read ({reason}): {CONVERT_HINT}"
        ) from None
    except EOFError:
        raise TransportError(
            f"input WAV '{name}' is empty or cut short (no complete WAV header)"
        ) from None
    except OSError as e:
        raise TransportError(f"input WAV '{name}' cannot be read: {e.strerror or e}") from None
    if width not in (1, 2, 3, 4):
        raise TransportError(f"input WAV '{name}' has {8 * width}-bit samples: {CONVERT_HINT}")
    if frames == 0:
        raise TransportError(f"input WAV '{name}' holds no audio (0 frames)")
    return rate, channels, frames


def pcm_to_int16(raw: bytes, width: int) -> np.ndarray:
    """Little-endian integer PCM of ``width`` bytes per sample as int16 (the top 16 bits)."""
    if width == 1:  # WAV's 8-bit PCM is unsigned
        return ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if width == 2:
        return np.frombuffer(raw, dtype="<i2")
    if width == 3:
        return np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)[:, 1:].copy().view("<i2").ravel()
    return (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)


def read_wav_mono(path: str | os.PathLike, sample_rate: int) -> bytes:
    """Read the whole WAV as mono int16 PCM at ``sample_rate`` (blocking: run it in a thread)."""
    rate, channels, _ = check_wav(path)
    with wave.open(os.fspath(path), "rb") as wav:
        width = wav.getsampwidth()
        raw = wav.readframes(wav.getnframes())
    raw = raw[: len(raw) - len(raw) % (width * channels)]  # a cut-short last frame
    samples = pcm_to_int16(raw, width)
    samples = resample_all(downmix_samples(samples, channels), rate, sample_rate)
    return samples.astype("<i2").tobytes()


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, in one line, when the output WAV cannot be created."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise TransportError(f"output WAV '{target}' is a directory")
    if not parent.is_dir():
        raise TransportError(f"output WAV '{target}': folder '{parent}' does not exist")
    if not os.access(parent, os.W_OK):
        raise TransportError(f"output WAV '{target}': folder '{parent}' is not writable")
    return target


def fit_header(path: str | os.PathLike, frame_bytes: int, sample_rate: int) -> float:
    """After a failed write: make a WAV's header describe exactly the whole frames on disk (an
    in-place overwrite of two sizes, which a full disk still allows); returns their length."""
    try:
        with open(path, "r+b") as f:
            data = (os.fstat(f.fileno()).st_size - WAV_HEADER_BYTES) // frame_bytes * frame_bytes
            if data < 0:
                return 0.0
            f.seek(4)
            f.write(struct.pack("<I", WAV_HEADER_BYTES - 8 + data))
            f.seek(WAV_HEADER_BYTES - 4)
            f.write(struct.pack("<I", data))
    except OSError:
        return 0.0
    return data / frame_bytes / sample_rate


class WavRecorder:
    """Records what a speaker fed from ``buffer`` would play, into a WAV, on its own thread.

    ``realtime=True``: the timeline advances with the clock (silence where nothing is queued).
    ``realtime=False``: whatever is queued is written as soon as the thread sees it, no silence.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        buffer: PlaybackBuffer,
        *,
        realtime: bool = True,
        tick_secs: float = 0.04,
        on_error: Callable[[str], None] | None = None,
    ):
        self.path = Path(path)
        self.on_error = on_error
        """Called once, from the clock thread, with a one-line reason if writing fails."""
        self.error: str | None = None
        """Why the recording stopped early (the file keeps what was written until then)."""
        self.buffer = buffer
        self.realtime = realtime
        self.tick_secs = tick_secs
        self.started_at = 0.0
        self.frames_written = 0
        self._frames_taken = 0
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        self._file = None
        self._wav: wave.Wave_write | None = None

    def open(self) -> None:
        """Create the file and start the clock (blocking: call it in a thread)."""
        try:
            self._file = open(self.path, "wb")
        except OSError as e:
            raise TransportError(
                f"output WAV '{self.path}' cannot be created ({e.strerror})"
            ) from None
        self._wav = wave.open(self._file, "wb")
        self._wav.setnchannels(self.buffer.channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(self.buffer.sample_rate)
        try:
            self._wav.writeframes(b"")  # a valid empty WAV from the start
            self._file.flush()
        except OSError as e:
            self._release()
            raise TransportError(self._failed(e)) from None
        self.started_at = time.monotonic()
        self._next_patch = self.started_at + HEADER_PATCH_SECS
        WavClock.shared().add(self)

    def write(self, pcm: bytes, item_id: str | None) -> None:
        """Queue audio so that, if the speaker was idle, it starts exactly now (not at the
        previous tick): the silence due until now is taken first, under the clock lock."""
        with self._lock:
            if self._wav is not None and self.buffer.is_idle:
                self._take_due(time.monotonic())
            self.buffer.write(pcm, item_id)

    def cut(self) -> int:
        """Record everything due until now, then clear the buffer; returns frames dropped."""
        with self._lock:
            if self._wav is not None:
                self._take_due(time.monotonic())
            return self.buffer.clear()

    def close(self) -> None:
        """Record up to now, stop the thread, finalise the header (blocking: run in a thread)."""
        WavClock.shared().remove(self)  # after this no tick touches the recorder
        if self._wav is None:
            return
        if self.error is None:
            with self._lock:
                self._take_due(time.monotonic())
            try:
                self._write_pending()
            except OSError as e:
                self.error = self._failed(e)
        self._release()

    def _failed(self, e: OSError) -> str:
        return f"output WAV '{self.path}' cannot be written ({e.strerror or e})"

    def _release(self) -> None:
        """Patch the header to what was written, if the disk still lets us, and close the file."""
        wav, self._wav = self._wav, None
        try:
            if wav is not None:
                wav.close()  # patches the header; drops its file reference even when it fails
        except OSError:
            pass
        finally:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass
        if self.error is not None:
            secs = fit_header(self.path, self.buffer.frame_bytes, self.buffer.sample_rate)
            if secs:
                self.error += f": the first {secs:.1f} s are kept"

    # -------------------------------------------------------------- the thread

    def _take_due(self, now: float) -> None:
        """Move the frames due by ``now`` from the buffer to the pending list (lock held). In
        real time the block is stamped, for the buffer's taps, with when its first frame plays on
        the WAV's timeline, not with ``now`` (its end, later still after a late tick: a recorder
        took a stall of the clock thread for a gap in what was played, and an echo reference
        read what played a tick late)."""
        if self.realtime:
            rate = self.buffer.sample_rate
            # round(), not int(): 40 ms after a start at 637.39 s is 959.9999999991 frames
            due = round((now - self.started_at) * rate) - self._frames_taken
            at: float | None = self.started_at + self._frames_taken / rate
        else:
            due, at = self.buffer.queued_frames(), None
        if due > 0:
            self._pending.append(self.buffer.read(due, at=at))
            self._frames_taken += due

    def _write_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for data in pending:
            self._wav.writeframesraw(data)
            self.frames_written += len(data) // self.buffer.frame_bytes

    def tick(self, now: float) -> bool:
        """Advance to ``now`` and write (called by the clock thread); False once it failed."""
        with self._lock:
            if self._wav is None:
                return False
            self._take_due(now)
        try:
            self._write_pending()
            if now >= self._next_patch:
                self._next_patch += HEADER_PATCH_SECS
                self._wav.writeframes(b"")  # patches nframes / data size in the header
                self._file.flush()
        except OSError as e:  # disk full, file too large, device gone: stop, say so once
            self.error = self._failed(e)
            self._release()  # keeps what reached the disk, header fitted to it
            if self.on_error is not None:
                self.on_error(self.error)
            return False
        return True


class WavClock:
    """One thread ticking every :class:`WavRecorder` of the process (each at its own period).

    It runs while at least one recorder is open; :meth:`remove` returns only once no tick of
    that recorder is in progress, so a closing recorder owns its file again.
    """

    _shared: WavClock | None = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        self._recorders: dict[WavRecorder, float] = {}  # recorder -> its next tick (monotonic)
        self._lock = threading.Lock()  # held while ticking: remove() waits for it
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    @classmethod
    def shared(cls) -> WavClock:
        """The process's one clock (created on first use)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def add(self, recorder: WavRecorder) -> None:
        """Tick ``recorder`` every ``tick_secs`` from now on, starting the thread if needed."""
        with self._wake:
            self._recorders[recorder] = time.monotonic() + recorder.tick_secs
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wav-clock", daemon=True)
                self._thread.start()
            self._wake.notify()

    def remove(self, recorder: WavRecorder) -> None:
        """Stop ticking ``recorder``; returns once no tick of it is in progress."""
        with self._wake:
            self._recorders.pop(recorder, None)
            self._wake.notify()

    def _run(self) -> None:
        with self._wake:
            while self._recorders:
                now = time.monotonic()
                for recorder, due in list(self._recorders.items()):
                    if due <= now:
                        if recorder.tick(now):
                            # absolute deadlines; after a stall, skip to the next one ahead
                            ahead = max(due + recorder.tick_secs, now)
                            self._recorders[recorder] = ahead
                        else:
                            self._recorders.pop(recorder, None)
                if self._recorders:
                    wait = min(self._recorders.values()) - time.monotonic()
                    if wait > 0:
                        self._wake.wait(wait)
            self._thread = None
