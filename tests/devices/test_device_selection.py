"""Device listing and selection against the PulseAudio devices, and one-line errors."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from transports.devices import list_devices, print_devices, pyaudio_session
from transports.errors import TransportError
from transports.pyaudio import PyAudioInputTransport, PyAudioOutputTransport

ROOT = Path(__file__).resolve().parents[2]


def test_list_devices_prints_index_name_host_api_channels_rate_and_defaults(pulse):
    out = io.StringIO()
    print_devices(out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["index", "name", "host", "API", "in", "out", "rate", "default"]
    pulse_row = next(line for line in lines if " pulse " in line)
    assert pulse_row.split()[:3] == [pulse_row.split()[0], "pulse", "ALSA"]
    assert any("*in" in line for line in lines) and any("*out" in line for line in lines)
    with pyaudio_session() as pa:
        devices = list_devices(pa)
    assert [d.index for d in devices] == list(range(len(devices)))
    assert all(d.max_input_channels >= 1 and d.max_output_channels >= 1 for d in devices)


def test_devices_are_chosen_by_index_or_name_substring(pulse):
    with pyaudio_session() as pa:
        pulse_index = next(d.index for d in list_devices(pa) if d.name == "pulse")
    by_name = PyAudioOutputTransport("PULS")
    by_index = PyAudioInputTransport(str(pulse_index))
    assert by_name.device.name == "pulse" and by_index.device.index == pulse_index
    for transport in (by_name, by_index):
        transport._device.close()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: PyAudioOutputTransport(999), "no audio device with index 999 (there are "),
        (
            lambda: PyAudioInputTransport("no-such-mic"),
            "no input audio device matching 'no-such-mic' (see --list-devices)",
        ),
    ],
)
def test_a_bad_device_is_one_clear_error(pulse, make, message):
    with pytest.raises(TransportError) as error:
        make()
    assert str(error.value).startswith(message)


def test_no_audio_server_is_one_line_without_portaudio_noise(pulse):
    script = (
        "from transports.errors import TransportError\n"
        "from transports.pyaudio import PyAudioOutputTransport\n"
        "try:\n    PyAudioOutputTransport()\n"
        "except TransportError as e:\n    print(e)\n    raise SystemExit(2)\n"
    )
    env = {**os.environ, "PULSE_SERVER": "unix:/nonexistent/native"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == "no default output audio device available (see --list-devices)\n"
    assert "ALSA lib" not in result.stderr and "Traceback" not in result.stderr
