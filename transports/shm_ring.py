"""The shared memory between the pipeline process and the audio child: two SPSC byte rings.

One ``memfd`` (anonymous shared memory: nothing in /dev/shm to leak when a process is killed,
no resource-tracker process) is mapped by both processes. It holds a header of int64 slots and
two rings of int16 PCM:

* the **speaker ring**: the pipeline writes (``W``), the child's output callback reads (``R``).
  A flush cannot move ``R`` from the writer's side, so the writer asks: it stores the flush
  point ``FLUSH_TO[k % 8] = W`` and then ``FLUSH_REQ = k``; the reader, at its next read or as
  soon as the child's control thread hears of it, stores where it was (``SKIP_FROM[k % 8] = R``),
  then ``FLUSH_ACK = k``, then jumps ``R`` to the flush point. With the writer reading ``R``
  before ``FLUSH_ACK``, it never takes a skipped stretch for a played one, which is what lets it
  count, per response item, the samples the device was handed (the truncate number);
* the **microphone ring**: the child's input callback writes, the pipeline reads; its capture
  clock (``IN_EPOCH_NS``: when byte 0 would have been captured, moved to each buffer's ADC time
  before the buffer is published) tells the pipeline when any byte it reads was captured;
* the **played ring** (only while the pipeline sets ``TAP_ON``: someone taps the speaker, e.g.
  the client echo reference, the recording, the console's speaker meter): the child's output
  callback writes each block it hands the device as one record (when it plays, in
  ``time.monotonic_ns()``; the speaker ring's position after it; the block, silence included),
  the pipeline reads them. A record that does not fit is dropped whole and counted.

Positions are byte counts since the start (never wrapped), so ``W - R`` is what is queued. Each
index has one writer; an aligned 8-byte store is atomic on the platforms PortAudio runs here
(x86-64, arm64), and data is written before the index that publishes it.

Nothing here imports pipecat, asyncio or numpy: the audio child imports this module.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

# header slots (int64)
OUT_W, OUT_R, FLUSH_REQ, FLUSH_ACK, STREAMING, RUNNING, LAST_AUDIO_NS = range(7)
FRAMES_PLAYED, FRAMES_READ, UNDERRUNS, UNDERRUN_FRAMES, UNDERFLOWS, STARTS, ABORTS = range(7, 14)
FLUSH_TO = 16  # 8 slots
SKIP_FROM = 24  # 8 slots
IN_W, IN_R, IN_OVERFLOWS, IN_DROPPED = 32, 33, 34, 35
TAP_ON, TAP_W, TAP_R, TAP_DROPPED = 36, 37, 38, 39
IN_HOST_OVERFLOWS = 40  # the device's own input overflows (PortAudio's paInputOverflow)
# When microphone ring byte 0 would have been captured (time.monotonic_ns(), from the device's ADC
# times; one slot, so a reader never sees half of an update); 0: the device gives none.
IN_EPOCH_NS = 41
HEADER_SLOTS = 64
HEADER_BYTES = HEADER_SLOTS * 8
FLUSH_SLOTS = 8
_RECORD = struct.Struct("<qqq")  # played ring record head: at (ns), speaker ring position, bytes


class SharedAudio:
    """The mapped header and rings (both processes use this class; each only writes its slots)."""

    def __init__(
        self,
        fd: int,
        out_capacity: int,
        in_capacity: int,
        tap_capacity: int = 0,
        frame_bytes: int = 2,
    ):
        self.fd = fd
        self.out_capacity = out_capacity - out_capacity % frame_bytes
        self.in_capacity = in_capacity - in_capacity % frame_bytes
        self.tap_capacity = tap_capacity
        self.frame_bytes = frame_bytes
        in_end = HEADER_BYTES + self.out_capacity + self.in_capacity
        self.size = in_end + tap_capacity
        self._mm = mmap.mmap(fd, self.size)
        view = memoryview(self._mm)
        self.h = view[:HEADER_BYTES].cast("q")
        self._out = view[HEADER_BYTES : HEADER_BYTES + self.out_capacity]
        self._in = view[HEADER_BYTES + self.out_capacity : in_end]
        self._tap = view[in_end : self.size]

    @classmethod
    def create(cls, out_capacity: int, in_capacity: int, tap_capacity: int = 0) -> SharedAudio:
        """New zeroed shared memory (the parent's side); pass :attr:`fd` to the child."""
        fd = os.memfd_create("voicelive-audio")  # Linux only; close-on-exec unless passed
        out_capacity -= out_capacity % 2
        in_capacity -= in_capacity % 2
        os.ftruncate(fd, HEADER_BYTES + out_capacity + in_capacity + tap_capacity)
        return cls(fd, out_capacity, in_capacity, tap_capacity)

    def close_fd(self) -> None:
        """Close the descriptor (idempotent); the mapping stays valid until garbage-collected,
        so late readers of the counters never fault."""
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1

    # ----------------------------------------------------------- ring copies

    @staticmethod
    def _put(ring: memoryview, capacity: int, pos: int, data: bytes | memoryview) -> None:
        at = pos % capacity
        first = min(len(data), capacity - at)
        ring[at : at + first] = data[:first]
        if first < len(data):
            ring[: len(data) - first] = data[first:]

    @staticmethod
    def _get(ring: memoryview, capacity: int, pos: int, n: int) -> bytes:
        at = pos % capacity
        first = min(n, capacity - at)
        if first == n:
            return ring[at : at + n].tobytes()
        return ring[at:capacity].tobytes() + ring[: n - first].tobytes()

    # ----------------------------------------------- speaker ring, writer side

    def out_free(self) -> int:
        """Bytes the writer may still append to the speaker ring."""
        return self.out_capacity - (self.h[OUT_W] - self.h[OUT_R])

    def out_write(self, data: bytes) -> tuple[int, int]:
        """Append what fits of ``data`` (whole frames); returns (start position, bytes written)."""
        w = self.h[OUT_W]
        n = min(len(data), self.out_free())
        n -= n % self.frame_bytes
        if n > 0:
            self._put(self._out, self.out_capacity, w, memoryview(data)[:n])
            self.h[OUT_W] = w + n
        return w, n

    def request_flush(self) -> int:
        """Ask the reader to drop everything written so far; returns the flush number."""
        k = self.h[FLUSH_REQ] + 1
        self.h[FLUSH_TO + k % FLUSH_SLOTS] = self.h[OUT_W]
        self.h[FLUSH_REQ] = k
        return k

    # ----------------------------------------------- speaker ring, reader side

    def apply_flushes(self) -> bool:
        """Reader: carry out pending flush requests (see the module docstring); True if any."""
        req, ack = self.h[FLUSH_REQ], self.h[FLUSH_ACK]
        if req == ack:
            return False
        h = self.h
        for k in range(ack + 1, req + 1):
            h[SKIP_FROM + k % FLUSH_SLOTS] = h[OUT_R]
            h[FLUSH_ACK] = k
            h[OUT_R] = max(h[OUT_R], h[FLUSH_TO + k % FLUSH_SLOTS])
        return True

    def out_read(self, n_frames: int) -> tuple[bytes, int]:
        """Reader: exactly ``n_frames`` frames, queued audio first then silence; also returns
        how many bytes were queued audio. Counts played frames, underruns and the audio time."""
        h = self.h
        need = n_frames * self.frame_bytes
        r = h[OUT_R]
        got = min(need, h[OUT_W] - r)
        h[FRAMES_READ] += n_frames
        if got <= 0:
            if h[STREAMING]:
                h[UNDERRUN_FRAMES] += n_frames
            return bytes(need), 0
        data = self._get(self._out, self.out_capacity, r, got)
        h[OUT_R] = r + got
        h[FRAMES_PLAYED] += got // self.frame_bytes
        h[LAST_AUDIO_NS] = time.monotonic_ns()
        if got < need:
            if h[STREAMING]:
                h[UNDERRUN_FRAMES] += (need - got) // self.frame_bytes
            data += bytes(need - got)
        return data, got

    def out_queued(self) -> int:
        """Bytes written and not yet read (a pending flush is not applied here)."""
        return self.h[OUT_W] - self.h[OUT_R]

    # ----------------------------------------------------------- mic ring

    def in_write(self, data: bytes, captured_ns: int = 0, bytes_per_s: int = 0) -> bool:
        """Child: append a captured buffer; False (and counted) when the ring is full. With
        ``captured_ns`` (the ADC time of its first frame, ``time.monotonic_ns()``) and the
        stream's ``bytes_per_s``, the ring's capture clock is moved to it first."""
        w = self.h[IN_W]
        if len(data) > self.in_capacity - (w - self.h[IN_R]):
            self.h[IN_OVERFLOWS] += 1
            self.h[IN_DROPPED] += len(data)
            return False
        if captured_ns and bytes_per_s:
            self.h[IN_EPOCH_NS] = captured_ns - w * 1_000_000_000 // bytes_per_s or 1
        self._put(self._in, self.in_capacity, w, data)
        self.h[IN_W] = w + len(data)
        return True

    def in_read(self) -> tuple[int, bytes]:
        """Pipeline: everything captured since the last call, and the position of its first
        byte (for :meth:`in_captured_at`)."""
        r, w = self.h[IN_R], self.h[IN_W]
        if w == r:
            return r, b""
        data = self._get(self._in, self.in_capacity, r, w - r)
        self.h[IN_R] = w
        return r, data

    def in_captured_at(self, position: int, bytes_per_s: int) -> float | None:
        """When the microphone byte at ``position`` was captured (``time.monotonic()``), from
        the device's ADC times; ``None`` when the device gives none."""
        epoch = self.h[IN_EPOCH_NS]
        return (epoch + position * 1_000_000_000 // bytes_per_s) / 1e9 if epoch else None

    # ----------------------------------------------------------- played ring

    def tap_write(self, at_ns: int, block: bytes) -> bool:
        """Child: record a block handed to the device (when it plays; the speaker ring's read
        position after it). False (and counted) when the record does not fit."""
        w = self.h[TAP_W]
        head = _RECORD.pack(at_ns, self.h[OUT_R], len(block))
        if len(head) + len(block) > self.tap_capacity - (w - self.h[TAP_R]):
            self.h[TAP_DROPPED] += 1
            return False
        self._put(self._tap, self.tap_capacity, w, head)
        self._put(self._tap, self.tap_capacity, w + len(head), block)
        self.h[TAP_W] = w + len(head) + len(block)
        return True

    def tap_read(self) -> list[tuple[int, int, bytes]]:
        """Pipeline: every record since the last call, as (at_ns, speaker ring position after
        the block, block)."""
        r, w = self.h[TAP_R], self.h[TAP_W]
        records = []
        while r < w:
            head = self._get(self._tap, self.tap_capacity, r, _RECORD.size)
            at_ns, position, n = _RECORD.unpack(head)
            r += _RECORD.size
            records.append((at_ns, position, self._get(self._tap, self.tap_capacity, r, n)))
            r += n
        self.h[TAP_R] = r
        return records

    def out_ahead(self, position: int, n: int) -> bytes:
        """Pipeline (the speaker ring's writer): up to ``n`` bytes written from ``position`` on
        (what the device takes next, unless a flush skips it)."""
        w = self.h[OUT_W]
        start = max(position, w - self.out_capacity)  # older bytes are overwritten
        end = min(w, position + n)
        return self._get(self._out, self.out_capacity, start, end - start) if end > start else b""
