"""PortAudio failures map to one-line TransportErrors (the busy case cannot be staged on Pulse)."""

import pytest

from transports.devices import AudioDevice, device_error, format_devices

SPEAKER = AudioDevice(3, "USB Speaker", "ALSA", 0, 2, 48000)


@pytest.mark.parametrize(
    "error, message",
    [
        (
            OSError(-9985, "Device unavailable"),
            "audio output device 3 'USB Speaker' is busy or unavailable",
        ),
        (
            ValueError("Invalid sample rate", -9997),
            "audio output device 3 'USB Speaker' does not support this format",
        ),
        (
            OSError(-9996, "Invalid device"),
            "audio output device 3 'USB Speaker' is not a valid device",
        ),
        (
            OSError(-9999, "Unanticipated host error"),
            "cannot open audio output device 3 'USB Speaker': Unanticipated host error",
        ),
    ],
)
def test_portaudio_errors_become_one_clear_line(error, message):
    text = str(device_error(error, SPEAKER, "output"))
    assert text.startswith(message) and "\n" not in text


def test_device_table_marks_the_defaults():
    mic = AudioDevice(0, "Built-in Mic", "ALSA", 1, 0, 44100)
    table = format_devices([mic, SPEAKER], default_input=0, default_output=3).splitlines()
    assert table[1].split() == ["0", "Built-in", "Mic", "ALSA", "1", "0", "44100", "*in"]
    assert table[2].endswith("*out")
    assert format_devices([]).endswith("(no audio devices found)")
