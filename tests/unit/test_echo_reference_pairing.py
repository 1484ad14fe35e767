"""``EchoReference`` pairs each microphone frame with what the speaker played over the same span
of time, including the part the device has not read yet (reads come in bursts, late under load):
that part is what is queued for the device, not silence."""

from __future__ import annotations

import time

import numpy as np
from pipecat.frames.frames import InputAudioRawFrame

from processors.echo_reference import EchoReference
from transports.playback import PlaybackBuffer
from transports.streams import INPUT, OUTPUT, device_time

RATE = 24000


def ramp(n: int) -> np.ndarray:
    """``n`` samples, each saying where it was (sample k is k + 1)."""
    return (np.arange(n) % 30000 + 1).astype("<i2")


def heard(pairing: EchoReference, n: int, at: float, from_device: bool = True) -> np.ndarray:
    """Channel 1 (the reference) of an ``n``-sample silent microphone frame captured at ``at``."""
    frame = InputAudioRawFrame(audio=bytes(2 * n), sample_rate=RATE, num_channels=1)
    return np.frombuffer(pairing.stereo(frame, at, from_device).audio, "<i2")[1::2].astype(int)


def test_the_reference_ahead_of_the_devices_last_read_is_what_is_queued_for_it() -> None:
    playback = PlaybackBuffer(RATE)
    pairing = EchoReference(playback)
    playback.write(ramp(4800).tobytes(), "item")
    before = time.monotonic()
    playback.read(480, at=before)  # the device took 20 ms (its clock starts here)
    # A 40 ms microphone frame that began as the device read: its second half is still queued.
    reference = heard(pairing, 960, before)
    # Sample k of the frame is sample k of the ramp: the read happened at `before`.
    assert np.array_equal(reference[20:940], np.arange(20, 940) + 1), reference[470:490]
    assert playback.queued_frames() == 4320  # peeking took nothing from the device


def test_a_frame_that_begins_past_the_devices_last_read_is_what_is_queued_for_it() -> None:
    """Reads come late under load: a frame captured 30 ms after the device's last read (which
    took 20 ms) is all still queued, to its last sample."""
    playback = PlaybackBuffer(RATE)
    pairing = EchoReference(playback)
    playback.write(ramp(4800).tobytes(), "item")
    playback.read(480, at=1000.0)
    reference = heard(pairing, 960, 1000.03)
    assert np.array_equal(reference, np.arange(720, 1680) + 1), reference[-4:]


def test_what_the_device_played_after_the_peek_stays_in_the_reference() -> None:
    """The device thread may run between the reference's peek and its copy: here the queue is
    cleared (a barge-in), the next answer queued and 10 ms of it played. What was played is in
    the reference, not what the peek had seen queued before the clear."""

    class DeviceRunsAfterThePeek(PlaybackBuffer):
        def peek(self, n_frames: int) -> tuple[int, bytes]:
            seen = super().peek(n_frames)
            self.clear()
            self.write(np.full(4800, -7, "<i2").tobytes(), "next")
            self.read(240, at=1000.02)
            return seen

    playback = DeviceRunsAfterThePeek(RATE)
    pairing = EchoReference(playback)
    playback.write(ramp(4800).tobytes(), "item")
    playback.read(480, at=1000.0)
    reference = heard(pairing, 960, 1000.01)  # samples 240 .. 1199 of the speaker's timeline
    assert np.array_equal(reference[:240], np.arange(240, 480) + 1)  # played before the peek
    assert (reference[240:480] == -7).all(), reference[230:250]  # played after it


def test_a_stereo_speaker_gives_its_first_channel() -> None:
    playback = PlaybackBuffer(RATE, channels=2)
    pairing = EchoReference(playback)
    left = ramp(960)
    both = np.empty(2 * len(left), "<i2")
    both[0::2], both[1::2] = left, -1
    playback.write(both.tobytes(), "item")
    before = time.monotonic()
    playback.read(240)
    reference = heard(pairing, 480, before)
    assert (reference[20:460] > 0).all() and np.all(np.diff(reference[20:460]) == 1)


def test_device_times_come_from_portaudio_where_it_gives_them() -> None:
    """PortAudio's DAC/ADC times (its own clock) are moved onto time.monotonic() through the
    callback's current_time; zeros (a host API without them) or nonsense give None."""
    before = time.monotonic()
    played = device_time({"current_time": 500.0, "output_buffer_dac_time": 500.06}, OUTPUT)
    captured = device_time({"current_time": 500.0, "input_buffer_adc_time": 499.98}, INPUT)
    after = time.monotonic()
    assert played is not None and before + 0.059 <= played <= after + 0.061
    assert captured is not None and before - 0.021 <= captured <= after - 0.019
    assert device_time({"current_time": 500.0, "output_buffer_dac_time": 0.0}, OUTPUT) is None
    assert device_time({"current_time": 0.0, "input_buffer_adc_time": 0.0}, INPUT) is None
    assert device_time({"current_time": 500.0, "input_buffer_adc_time": 9.0}, INPUT) is None


def test_the_speaker_is_stamped_with_when_it_plays() -> None:
    playback = PlaybackBuffer(RATE)
    stamps: list[float] = []
    playback.add_tap(lambda block, at: stamps.append(at))
    playback.read(240, at=1234.5)
    now = time.monotonic()
    playback.read(240)
    assert stamps[0] == 1234.5 and abs(stamps[1] - now) < 0.1


def _played_then_heard(
    dac_times: list[float], heard_at: list[float], from_device: bool = True
) -> np.ndarray:
    """The device takes 10 ms blocks of a ramp, stamped with ``dac_times``; the reference paired
    with 20 ms microphone frames captured at ``heard_at`` (ADC times, or arrival times if not
    ``from_device``), as ramp values, one after the other."""
    playback = PlaybackBuffer(RATE)
    pairing = EchoReference(playback)
    playback.write(ramp(240 * len(dac_times)).tobytes(), "item")
    for at in dac_times:
        playback.read(240, at=at)
    return np.concatenate([heard(pairing, 480, at, from_device) for at in heard_at])


def test_after_an_output_underrun_the_reference_follows_the_device_times() -> None:
    """An underrun: the device played 30 ms of silence after its 20th block, so every block after
    it plays 30 ms later than the count says (its DAC times say so). What the microphone hears
    0.4 s in is what played then: the ramp from (0.4 - 0.03) s, not from 0.4 s (the reference
    would run 30 ms ahead of the echo; with a larger jump, beyond what is queued: silence)."""
    t0 = 1000.0
    dac = [t0 + k * 0.010 + (0.030 if k >= 20 else 0.0) for k in range(50)]
    reference = _played_then_heard(dac, [t0 + 0.400])
    first = round((0.400 - 0.030) * RATE)
    assert np.array_equal(reference, np.arange(first, first + 480) + 1), reference[:4]


def test_jitter_in_the_device_times_does_not_move_the_reference() -> None:
    t0 = 1000.0
    jitter = np.random.default_rng(7).uniform(-0.002, 0.002, 50)
    dac = [t0 + k * 0.010 + float(jitter[k]) * (k > 0) for k in range(50)]
    reference = _played_then_heard(dac, [t0 + 0.400])
    first = round(0.400 * RATE)
    assert np.array_equal(reference, np.arange(first, first + 480) + 1), reference[:4]


def test_microphone_arrival_times_are_not_followed() -> None:
    """Frames without an ADC time are stamped on arrival, which comes in bursts: a run of late
    arrivals must not step the reference (it stays the count's, one contiguous ramp)."""
    t0 = 1000.0
    dac = [t0 + k * 0.010 for k in range(100)]
    arrivals = [t0 + 0.1 + j * 0.02 + 0.01 * (j >= 5) for j in range(20)]
    reference = _played_then_heard(dac, arrivals, from_device=False)
    first = round(0.1 * RATE)
    assert np.array_equal(reference, np.arange(first, first + 480 * 20) + 1)


def test_with_the_audio_process_what_was_played_since_the_last_event_is_in_the_reference() -> None:
    """With ``--audio-process`` the taps get what the child played when its ``t`` event reaches
    the loop, or when the reference peeks at what is queued. A microphone frame over blocks the
    child played after the last event gets them in its reference, not silence in their place."""
    from transports.audio_child import SpeakerSource
    from transports.shared_playback import SharedPlayback
    from transports.shm_ring import SharedAudio

    shared = SharedAudio.create(48000 * 2, 4800, 4 * 4800)
    playback = SharedPlayback(shared, lambda _: None, RATE)
    pairing = EchoReference(playback)
    device = SpeakerSource(shared)  # the child's output callback
    playback.write(ramp(4800).tobytes(), "item")
    t0 = 1000.0
    device.read(480, at=t0)
    playback.on_child_event(b"t")  # the first block reached the taps: the speaker is anchored
    device.read(480, at=t0 + 0.02)  # its event is still on the way to the loop
    reference = heard(pairing, 960, t0 + 0.01)
    assert np.array_equal(reference, np.arange(240, 1200) + 1), reference[230:250]
