"""The microphone ring of the audio process, both sides in this process (no devices, real
memfd): the ADC time of each captured buffer crosses with the audio, so the pipeline can say
when any byte it reads was captured (the client echo reference pairs by it)."""

from __future__ import annotations

import pytest

from transports.shm_ring import IN_OVERFLOWS, SharedAudio

RATE = 16000
BYTES_PER_S = 2 * RATE
PERIOD = 2 * RATE // 100  # 10 ms of mono int16


def captured(shared: SharedAudio, start: int, data: bytes) -> list[float | None]:
    """The capture time of each period of a read, as the input transport asks for it."""
    return [shared.in_captured_at(start + at, BYTES_PER_S) for at in range(0, len(data), PERIOD)]


def test_each_period_read_has_the_adc_time_it_was_captured_at() -> None:
    shared = SharedAudio.create(4800, 48000)
    t0 = 1000.0
    for k in range(5):  # five callbacks, 10 ms apart, each stamped by the device
        assert shared.in_write(bytes(PERIOD), int((t0 + k * 0.01) * 1e9), BYTES_PER_S)
    start, data = shared.in_read()  # one burst: the loop was busy
    assert (start, len(data)) == (0, 5 * PERIOD)
    assert captured(shared, start, data) == pytest.approx([t0 + k * 0.01 for k in range(5)])


def test_after_an_input_gap_the_times_follow_the_device() -> None:
    """The device lost 30 ms (an overflow on the host side): the next buffer's ADC time says
    so, and what is read from then on is placed by it, not by counting bytes."""
    shared = SharedAudio.create(4800, 48000)
    shared.in_write(bytes(PERIOD), int(50.00 * 1e9), BYTES_PER_S)
    start, first = shared.in_read()
    shared.in_write(bytes(PERIOD), int(50.04 * 1e9), BYTES_PER_S)  # 30 ms after the first ended
    start, second = shared.in_read()
    assert start == len(first)
    assert captured(shared, start, second) == pytest.approx([50.04])


def test_a_device_without_adc_times_gives_none_and_a_full_ring_drops_whole_buffers() -> None:
    shared = SharedAudio.create(4800, 2 * PERIOD)
    assert shared.in_write(bytes(PERIOD)) and shared.in_write(bytes(PERIOD))
    assert not shared.in_write(bytes(PERIOD), int(7.0 * 1e9), BYTES_PER_S)  # no room: dropped
    assert shared.h[IN_OVERFLOWS] == 1
    start, data = shared.in_read()
    assert len(data) == 2 * PERIOD
    assert captured(shared, start, data) == [None, None]  # the dropped buffer's time unused
