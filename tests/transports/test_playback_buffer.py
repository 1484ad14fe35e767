"""PlaybackBuffer: per-item counts, flushing, zero padding, thread safety and loop notifications."""

import asyncio
import threading

import numpy as np
import pytest

from transports.playback import PlaybackBuffer


def pcm(frames: int, value: int = 1000) -> bytes:
    return np.full(frames, value, dtype=np.int16).tobytes()


def test_read_returns_exactly_n_frames_zero_padded_when_short():
    buf = PlaybackBuffer(sample_rate=24000)
    buf.write(pcm(100, 7), "a")
    out = np.frombuffer(buf.read(480), dtype=np.int16)
    assert len(out) == 480
    assert (out[:100] == 7).all() and (out[100:] == 0).all()
    assert buf.is_idle and buf.queued_frames() == 0


def test_counts_played_and_received_frames_per_item_in_fifo_order():
    buf = PlaybackBuffer()
    buf.write(pcm(300, 1), "a")
    buf.write(pcm(200, 2), "b")
    out = np.frombuffer(buf.read(400), dtype=np.int16)
    assert (out[:300] == 1).all() and (out[300:] == 2).all()
    assert buf.played_frames("a") == 300 and buf.played_frames("b") == 100
    assert buf.received_frames("a") == 300 and buf.received_frames("b") == 200
    assert buf.queued_frames() == 100
    assert buf.played_ms("a") == 12  # 300 frames at 24 kHz
    assert buf.first_played_at("b") == buf.last_played_at("b")


def test_clear_mid_item_drops_the_rest_and_keeps_what_was_played():
    buf = PlaybackBuffer()
    buf.write(pcm(1000), "a")
    buf.read(240)
    assert buf.clear() == 760
    assert buf.flush_count == 1 and buf.is_idle
    assert buf.played_frames("a") == 240 and buf.received_frames("a") == 1000
    assert not np.frombuffer(buf.read(240), dtype=np.int16).any()
    assert buf.played_frames("a") == 240
    assert buf.stats.flushed_frames == 760


def test_partial_frames_are_never_queued():
    buf = PlaybackBuffer(channels=2)
    buf.write(b"\x01" * 7, "a")  # one whole stereo frame (4 bytes) + 3 stray bytes
    assert buf.received_frames("a") == 1 and buf.queued_frames() == 1
    assert len(buf.read(3)) == 12


def test_overflow_drops_the_oldest_audio_and_is_counted():
    buf = PlaybackBuffer(sample_rate=1000, max_seconds=1.0)
    buf.write(pcm(800, 1), "a")
    buf.write(pcm(500, 2), "b")
    assert buf.queued_frames() == 1000
    assert buf.stats.overflows == 1 and buf.stats.overflow_frames == 300
    out = np.frombuffer(buf.read(1000), dtype=np.int16)
    assert (out[:500] == 1).all() and (out[500:] == 2).all()


def test_underrun_counted_only_while_a_response_is_streaming():
    buf = PlaybackBuffer()
    buf.read(480)  # idle: not an underrun
    buf.write(pcm(480), "a")
    buf.read(480)
    buf.read(480)  # dry mid-stream
    buf.read(480)  # same dry spell: counted once, frames keep adding up
    assert buf.stats.underruns == 1 and buf.stats.underrun_frames == 960
    buf.write(pcm(480), "a")
    buf.mark_stream_end()
    buf.read(480)
    buf.read(480)  # drained after the end of the stream: fine
    assert buf.stats.underruns == 1


def test_rejects_non_positive_configuration():
    with pytest.raises(ValueError):
        PlaybackBuffer(sample_rate=0)


def test_concurrent_reader_thread_sees_every_frame_once_in_order():
    buf = PlaybackBuffer(sample_rate=24000)
    total = 48000
    ramp = (np.arange(total) % 30000 + 1).astype(np.int16)
    got: list[bytes] = []
    done = threading.Event()

    def reader():
        while not done.is_set() or not buf.is_idle:
            got.append(buf.read(97))

    thread = threading.Thread(target=reader)
    thread.start()
    for start in range(0, total, 331):
        buf.write(ramp[start : start + 331].tobytes(), f"item{start // 9930}")
    done.set()
    thread.join(timeout=10)
    out = np.frombuffer(b"".join(got), dtype=np.int16)
    assert np.array_equal(out[out != 0], ramp)
    assert sum(buf.played_frames(f"item{i}") for i in range(6)) == total
    assert buf.stats.frames_played == total


async def test_wait_flushed_wakes_on_clear_and_times_out_without_one():
    buf = PlaybackBuffer()
    buf.write(pcm(2400), "a")
    since = buf.flush_count
    assert not await buf.wait_flushed(since, timeout=0.01)
    waiter = asyncio.create_task(buf.wait_flushed(since, timeout=5))
    await asyncio.sleep(0)
    assert not waiter.done()
    buf.clear()
    assert await waiter


async def test_wait_drained_is_woken_by_a_device_thread_and_calls_listeners():
    buf = PlaybackBuffer()
    events: list[str] = []
    buf.on_playing = lambda: events.append("playing")
    buf.on_drained = lambda: events.append("drained")
    buf.write(pcm(960), "a")
    assert not await buf.wait_drained(timeout=0.01)
    reader = threading.Thread(target=lambda: [buf.read(480) for _ in range(3)])
    waiter = asyncio.create_task(buf.wait_drained(timeout=5))
    reader.start()
    assert await waiter
    reader.join()
    await asyncio.sleep(0)  # let the thread's call_soon_threadsafe callbacks run
    assert events == ["playing", "drained"]
