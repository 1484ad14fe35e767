"""Audio device discovery and selection for the PyAudio transports, with one-line errors.

* :func:`pyaudio_session` — a PyAudio instance that is always terminated, created with the
  ALSA/JACK chatter PortAudio prints at start-up silenced (file descriptor 2 is pointed at
  /dev/null for the duration of ``Pa_Initialize``; anything else the process writes to stderr in
  those few milliseconds is lost too).
* :func:`list_devices` / :func:`format_devices` / :func:`print_devices` — what ``--list-devices``
  prints: index, name, host API, max input/output channels, default rate, and the defaults.
* :func:`resolve_device` — the default device, or one chosen by index or by name substring.
* :func:`choose_format` — 24 kHz mono int16 when the device takes it, else its own default rate
  (the transports then resample with soxr).
* :func:`device_error` — maps a PortAudio failure to :class:`TransportError` (no device, busy
  device, unsupported format) so users never see a PortAudio traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, TextIO

import pyaudio

from transports.errors import TransportError

Direction = Literal["input", "output"]

PA_DEVICE_UNAVAILABLE = -9985
PA_INVALID_DEVICE = -9996
PA_FORMAT_ERRORS = (-9997, -9998, -9994)  # invalid rate, invalid channel count, sample format


@dataclass(frozen=True)
class AudioDevice:
    """One PortAudio device as PyAudio reports it."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate: int

    def channels(self, direction: Direction) -> int:
        """The most channels the device offers for ``direction`` (input or output)."""
        return self.max_input_channels if direction == "input" else self.max_output_channels


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Point fd 2 at /dev/null for the block (PortAudio's ALSA/JACK probes print there)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def open_pyaudio() -> pyaudio.PyAudio:
    """Create a PyAudio instance quietly; the caller must ``terminate()`` it."""
    with quiet_stderr():
        return pyaudio.PyAudio()


@contextmanager
def pyaudio_session() -> Iterator[pyaudio.PyAudio]:
    """A quiet PyAudio instance, terminated on exit whatever happens."""
    pa = open_pyaudio()
    try:
        yield pa
    finally:
        pa.terminate()


def _device(pa: pyaudio.PyAudio, info: dict) -> AudioDevice:
    return AudioDevice(
        index=int(info["index"]),
        name=str(info["name"]),
        host_api=str(pa.get_host_api_info_by_index(info["hostApi"])["name"]),
        max_input_channels=int(info["maxInputChannels"]),
        max_output_channels=int(info["maxOutputChannels"]),
        default_sample_rate=int(info["defaultSampleRate"]),
    )


def list_devices(pa: pyaudio.PyAudio) -> list[AudioDevice]:
    """Every device PortAudio sees, in index order."""
    return [_device(pa, pa.get_device_info_by_index(i)) for i in range(pa.get_device_count())]


def default_device(pa: pyaudio.PyAudio, direction: Direction) -> AudioDevice:
    """The system default device for ``direction``; :class:`TransportError` when there is none."""
    try:
        info = (
            pa.get_default_input_device_info()
            if direction == "input"
            else pa.get_default_output_device_info()
        )
    except OSError:
        raise TransportError(
            f"no default {direction} audio device available (see --list-devices)"
        ) from None
    return _device(pa, info)


def format_devices(
    devices: list[AudioDevice], default_input: int | None = None, default_output: int | None = None
) -> str:
    """A plain-text table of ``devices``; defaults are marked ``*in`` / ``*out``."""
    header = (
        f"{'index':>5}  {'name':<32} {'host API':<12} {'in':>3} {'out':>3} {'rate':>6}  default"
    )
    lines = [header]
    for d in devices:
        marks = " ".join(
            m
            for m, on in (("*in", d.index == default_input), ("*out", d.index == default_output))
            if on
        )
        lines.append(
            f"{d.index:>5}  {d.name[:32]:<32} {d.host_api[:12]:<12} "
            f"{d.max_input_channels:>3} {d.max_output_channels:>3} "
            f"{d.default_sample_rate:>6}  {marks}".rstrip()
        )
    if not devices:
        lines.append("(no audio devices found)")
    return "\n".join(lines)


def print_devices(file: TextIO | None = None) -> None:
    """Print the device table (the ``--list-devices`` option)."""
    with pyaudio_session() as pa:
        devices = list_devices(pa)
        defaults = []
        for direction in ("input", "output"):
            try:
                defaults.append(default_device(pa, direction).index)
            except TransportError:
                defaults.append(None)
    from processors.console import say  # here, not at the top: the audio child imports this module

    say(format_devices(devices, *defaults), stream=file)


def resolve_device(
    pa: pyaudio.PyAudio, spec: int | str | None, direction: Direction
) -> AudioDevice:
    """Find a device: ``None`` = the default, an int (or digits) = an index, else a name
    substring (an exact name wins, then the first match that has ``direction`` channels)."""
    if spec is None or spec == "":
        return default_device(pa, direction)
    devices = list_devices(pa)
    if isinstance(spec, int) or str(spec).strip().isdigit():
        index = int(spec)
        match = next((d for d in devices if d.index == index), None)
        if match is None:
            raise TransportError(
                f"no audio device with index {index} (there are {len(devices)}; see --list-devices)"
            )
        if match.channels(direction) < 1:
            raise TransportError(
                f"audio device {index} '{match.name}' has no {direction} "
                "channels (see --list-devices)"
            )
        return match
    wanted = str(spec).casefold()
    usable = [d for d in devices if d.channels(direction) > 0]
    exact = [d for d in usable if d.name.casefold() == wanted]
    partial = [d for d in usable if wanted in d.name.casefold()]
    if exact or partial:
        return (exact or partial)[0]
    raise TransportError(f"no {direction} audio device matching '{spec}' (see --list-devices)")


def choose_format(
    pa: pyaudio.PyAudio, device: AudioDevice, direction: Direction, preferred_rate: int = 24000
) -> int:
    """The rate to open ``device`` at in mono int16: ``preferred_rate`` if supported, else the
    device's default rate; :class:`TransportError` if it cannot do mono int16 at all."""
    for rate in dict.fromkeys((preferred_rate, device.default_sample_rate)):
        kwargs = {
            f"{direction}_device": device.index,
            f"{direction}_channels": 1,
            f"{direction}_format": pyaudio.paInt16,
        }
        try:
            with quiet_stderr():
                if pa.is_format_supported(rate, **kwargs):
                    return rate
        except ValueError:
            continue
    raise TransportError(
        f"audio device {device.index} '{device.name}' does not support "
        f"mono 16-bit {direction} at {preferred_rate} or "
        f"{device.default_sample_rate} Hz"
    )


def device_error(error: Exception, device: AudioDevice, direction: Direction) -> TransportError:
    """A one-line :class:`TransportError` for a failure to open or start a stream."""
    code = getattr(error, "errno", None)
    if code is None and len(getattr(error, "args", ())) > 1:
        code = error.args[1]
    what = f"{direction} device {device.index} '{device.name}'"
    if code == PA_DEVICE_UNAVAILABLE:
        return TransportError(f"audio {what} is busy or unavailable")
    if code in PA_FORMAT_ERRORS:
        return TransportError(f"audio {what} does not support this format ({error})")
    if code == PA_INVALID_DEVICE:
        return TransportError(f"audio {what} is not a valid device (see --list-devices)")
    detail = getattr(error, "strerror", None) or (error.args[0] if error.args else error)
    return TransportError(f"cannot open audio {what}: {detail}")
