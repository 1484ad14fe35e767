"""Device tests: real PyAudio streams on a private PulseAudio server started for the session.

In CI (``CI=true``) a missing PulseAudio is a failure, never a skip; locally the tests skip.
"""

import os
import runpy
from pathlib import Path

import pytest

runpy.run_path(str(Path(__file__).resolve().parents[1] / "audio_rig" / "bootstrap.py"))

from audio_rig.pulse import PulseRig  # noqa: E402


@pytest.fixture(scope="session")
def pulse():
    """A running PulseRig whose PULSE_SERVER is exported to this process."""
    if not PulseRig.available():
        message = (
            "PulseAudio is not installed (need pulseaudio, pactl, pacat, paplay): "
            "run `make setup` or apt-get install pulseaudio pulseaudio-utils "
            "libasound2-plugins"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    rig = PulseRig()
    rig.start(export=True)
    yield rig
    rig.stop()


@pytest.fixture
def speaker(pulse):
    """What the fake speaker plays from now on (a SpeakerCapture, stopped after the test)."""
    capture = pulse.speaker()
    capture.start()
    yield capture
    capture.stop()
