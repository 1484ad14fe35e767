"""The wire between a pipeline and a processor in its own process (``pipelines.multiprocess``).

Two stream sockets per boundary, one for system frames and one for everything else, so an
``InterruptionFrame`` or a ``CancelFrame`` overtakes data frames already queued in the data
socket, as a ``SystemFrame`` overtakes queued data frames inside a pipecat processor. Each message
is a header (payload length, kind, direction, epoch) and a payload:

- audio frames (``InputAudioRawFrame``, ``OutputAudioRawFrame``, ``TTSAudioRawFrame``) in their
  plain form (no metadata, no transport routing) are packed by hand: a small struct and the
  samples as they are, no pickling of the frame's object graph (measured in
  ``bench/multiprocess.py``: about 5x cheaper than pickling the frame);
- any other frame is pickled (protocol 5); a frame that cannot be pickled raises
  :class:`FrameEncodeError` naming its type, at the sending side;
- control messages (start, started, ended, heartbeat, failures) are small pickled tuples.

**Interruptions across the boundary.** Inside one process an ``InterruptionFrame`` drops the data
frames queued at the processor it reaches. Here the frames "queued" are those still in flight in
the data socket, so every message carries the sender's *epoch*, the number of interruptions it
has sent: the receiver drops interruptible data frames of an older epoch than the last
interruption it received, and holds one of a newer epoch until that interruption has arrived.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import (
    ControlFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    SystemFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection

HEADER = struct.Struct("!IBBI")  # payload length, kind, direction, epoch
KIND_FRAME, KIND_AUDIO, KIND_CONTROL = 1, 2, 3
_DIRECTIONS = {FrameDirection.DOWNSTREAM: 0, FrameDirection.UPSTREAM: 1}
_BY_CODE = {0: FrameDirection.DOWNSTREAM, 1: FrameDirection.UPSTREAM}

# Audio: class code, sample rate, channels, id, pts (-1: None), then name and context id (UTF-8).
_AUDIO = struct.Struct("!BIBqqHH")
_AUDIO_CLASSES: list[type[Frame]] = [InputAudioRawFrame, OutputAudioRawFrame, TTSAudioRawFrame]
_AUDIO_CODES = {cls: code for code, cls in enumerate(_AUDIO_CLASSES)}
_PLAIN_KEYS = {
    InputAudioRawFrame: frozenset(InputAudioRawFrame(b"", 24000, 1).__dict__),
    OutputAudioRawFrame: frozenset(OutputAudioRawFrame(b"", 24000, 1).__dict__),
    TTSAudioRawFrame: frozenset(TTSAudioRawFrame(b"", 24000, 1).__dict__),
}

Deliver = Callable[[Frame, FrameDirection], Awaitable[None]]
Control = Callable[[tuple[Any, ...]], Awaitable[None]]


@dataclass
class ParkedFrame(ControlFrame):
    """Stands in, through the child, for a frame that must stay in its process (a flush probe
    carries its worker's ``asyncio.Event``): same place in the order, swapped back on return."""

    interruptible: bool = field(default=False, init=False)
    token: int = 0


class FrameEncodeError(Exception):
    """A frame that cannot cross a process boundary (it cannot be pickled)."""

    def __init__(self, frame: Frame, cause: BaseException) -> None:
        self.frame_type = type(frame).__name__
        super().__init__(f"{self.frame_type} cannot be sent to another process ({cause})")


def encode_frame(frame: Frame) -> tuple[int, bytes]:
    """``(kind, payload)`` for ``frame``; raises :class:`FrameEncodeError`."""
    code = _AUDIO_CODES.get(type(frame))
    if code is not None and _plain(frame):
        name = frame.name.encode()
        context = getattr(frame, "context_id", None)
        ctx = b"\xff" if context is None else context.encode()
        pts = -1 if frame.pts is None else frame.pts
        head = _AUDIO.pack(
            code, frame.sample_rate, frame.num_channels, frame.id, pts, len(name), len(ctx)
        )
        return KIND_AUDIO, b"".join((head, name, ctx, frame.audio))
    if isinstance(frame, ErrorFrame):
        return KIND_FRAME, _encode_error(frame)
    try:
        return KIND_FRAME, pickle.dumps(frame, protocol=5)
    except Exception as exc:  # noqa: BLE001 - pickling raises whatever the objects raise
        raise FrameEncodeError(frame, exc) from None


def _encode_error(frame: ErrorFrame) -> bytes:
    """An error crosses without its processor (the receiver puts the original or its own back)
    and, if its exception cannot be pickled, without the exception: it is never lost for that."""
    copy = ErrorFrame(
        frame.error, fatal=frame.fatal, exception=frame.exception, category=frame.category
    )
    copy.id, copy.name, copy.metadata = frame.id, frame.name, frame.metadata
    try:
        return pickle.dumps(copy, protocol=5)
    except Exception:  # noqa: BLE001 - an exception object that does not pickle
        copy.exception = None
        return pickle.dumps(copy, protocol=5)


def _plain(frame: Any) -> bool:
    d = frame.__dict__
    return (
        d.keys() == _PLAIN_KEYS[type(frame)]
        and not d["metadata"]
        and d["transport_source"] is None
        and d["transport_destination"] is None
        and d["broadcast_sibling_id"] is None
    )


def decode_frame(kind: int, payload: bytes) -> Frame:
    """The frame :func:`encode_frame` encoded."""
    if kind == KIND_FRAME:
        return pickle.loads(payload)
    code, rate, channels, frame_id, pts, name_len, ctx_len = _AUDIO.unpack_from(payload)
    cls = _AUDIO_CLASSES[code]
    at = _AUDIO.size
    name = payload[at : at + name_len].decode()
    ctx = payload[at + name_len : at + name_len + ctx_len]
    audio = payload[at + name_len + ctx_len :]
    frame = cls.__new__(cls)
    state = {
        "audio": audio,
        "sample_rate": rate,
        "num_channels": channels,
        "num_frames": len(audio) // (channels * 2) if channels else 0,
        "id": frame_id,
        "name": name,
        "pts": None if pts < 0 else pts,
        "broadcast_sibling_id": None,
        "metadata": {},
        "transport_source": None,
        "transport_destination": None,
    }
    if cls is TTSAudioRawFrame:
        state["context_id"] = None if ctx == b"\xff" else ctx.decode()
    frame.__dict__.update(state)
    return frame


class FrameLink:
    """One side of the boundary: send frames and control messages, receive them in order.

    ``system`` and ``data`` are connected stream sockets (the other side holds their peers).
    """

    def __init__(self, system: socket.socket, data: socket.socket) -> None:
        self._socks = (system, data)
        self._sys_w: asyncio.StreamWriter | None = None
        self._data_w: asyncio.StreamWriter | None = None
        self._readers: tuple[asyncio.StreamReader, asyncio.StreamReader] | None = None
        self.out_epoch = 0
        self.in_epoch = 0
        self._epoch_moved = asyncio.Event()
        self.closed = False

    async def open(self) -> None:
        """Attach the sockets to the running loop."""
        sys_r, self._sys_w = await asyncio.open_connection(sock=self._socks[0])
        data_r, self._data_w = await asyncio.open_connection(sock=self._socks[1])
        self._readers = (sys_r, data_r)

    def send_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Queue ``frame`` on its channel (system frames on the system one); raises
        :class:`FrameEncodeError` (nothing is sent then)."""
        kind, payload = encode_frame(frame)
        system = isinstance(frame, SystemFrame)
        if isinstance(frame, InterruptionFrame):
            self.out_epoch += 1
        writer = self._sys_w if system else self._data_w
        if writer is None or self.closed:
            return
        writer.write(
            HEADER.pack(len(payload), kind, _DIRECTIONS[direction], self.out_epoch) + payload
        )

    def send_control(self, message: tuple[Any, ...], *, ordered: bool = False) -> None:
        """Queue a control message: on the system channel, or with ``ordered`` on the data one
        (after every data frame sent before it)."""
        writer = self._data_w if ordered else self._sys_w
        if writer is None or self.closed:
            return
        payload = pickle.dumps(message, protocol=5)
        writer.write(HEADER.pack(len(payload), KIND_CONTROL, 0, self.out_epoch) + payload)

    async def drain(self) -> None:
        """Wait while either socket's send buffer is over its high-water mark."""
        for writer in (self._sys_w, self._data_w):
            if writer is not None and not self.closed:
                await writer.drain()

    async def receive(self, deliver: Deliver, control: Control, *, system: bool) -> None:
        """Read one channel until it closes, handing each frame to ``deliver`` (in order) and each
        control message to ``control``. Returns at EOF or on a broken socket."""
        assert self._readers is not None
        reader = self._readers[0 if system else 1]
        try:
            while True:
                length, kind, direction, epoch = HEADER.unpack(
                    await reader.readexactly(HEADER.size)
                )
                payload = await reader.readexactly(length)
                if kind == KIND_CONTROL:
                    await control(pickle.loads(payload))
                    continue
                try:
                    frame = decode_frame(kind, payload)
                except Exception as exc:  # noqa: BLE001 - e.g. a frame class the receiver lacks
                    await control(("undecodable", f"{type(exc).__name__}: {exc}"))
                    continue
                if system:
                    if isinstance(frame, InterruptionFrame):
                        self.in_epoch = max(self.in_epoch, epoch)
                        self._epoch_moved.set()
                elif epoch > self.in_epoch:  # its interruption is still on the way: wait for it
                    while epoch > self.in_epoch and not self.closed:
                        self._epoch_moved.clear()
                        await self._epoch_moved.wait()
                elif epoch < self.in_epoch and frame.interruptible:
                    continue  # sent before an interruption that has crossed already: dropped
                await deliver(frame, _BY_CODE[direction])
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return

    def close(self) -> None:
        """Close both channels (the peer reads EOF)."""
        self.closed = True
        self._epoch_moved.set()
        for writer in (self._sys_w, self._data_w):
            if writer is not None:
                writer.close()
        if self._sys_w is None:
            for sock in self._socks:
                sock.close()
