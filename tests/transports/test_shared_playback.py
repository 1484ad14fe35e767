"""The speaker ring of the audio process, both sides in this process (no devices, real memfd).

The reader side is what the audio child's callback does (``apply_flushes`` + ``out_read``);
the writer side is :class:`SharedPlayback`, whose per-item played counts truncation uses.
"""

from __future__ import annotations

import asyncio

import numpy as np

from transports.shared_playback import SharedPlayback
from transports.shm_ring import FLUSH_ACK, SharedAudio


def pcm(frames: int, value: int) -> bytes:
    return np.full(frames, value, np.int16).tobytes()


def make(
    capacity_frames: int = 48000, tap_bytes: int = 0
) -> tuple[SharedAudio, SharedPlayback, list[bytes]]:
    """The rings (``tap_bytes`` of played ring), the pipeline's side of them, the commands sent."""
    shared = SharedAudio.create(capacity_frames * 2, 4800, tap_bytes)
    sent: list[bytes] = []
    return shared, SharedPlayback(shared, sent.append, 24000), sent


def device_reads(shared: SharedAudio, frames: int) -> np.ndarray:
    """One callback of the audio child: apply pending flushes, take ``frames`` frames."""
    shared.apply_flushes()
    return np.frombuffer(shared.out_read(frames)[0], np.int16)


def test_played_counts_follow_what_the_device_took_per_item():
    shared, playback, sent = make()
    playback.write(pcm(1000, 1), "a")
    playback.write(pcm(500, 2), "b")
    assert sent == [b"w", b"w"]  # the child's speaker is not running: wake it
    assert playback.queued_frames() == 1500
    got = device_reads(shared, 1200)
    assert (got[:1000] == 1).all() and (got[1000:] == 2).all()
    assert (playback.played_frames("a"), playback.played_frames("b")) == (1000, 200)
    got = device_reads(shared, 400)  # 300 left, then silence
    assert (got[:300] == 2).all() and (got[300:] == 0).all()
    assert playback.played_frames("b") == 500 and playback.is_idle
    assert playback.received_frames("a") == 1000


def test_a_flush_stops_the_counts_where_the_device_was_and_skips_the_rest():
    shared, playback, sent = make()
    playback.write(pcm(1000, 1), "a")
    device_reads(shared, 300)
    since = playback.flush_count
    assert playback.clear() == 700 and sent[-1] == b"f"
    assert playback.is_idle  # the skipped audio no longer counts as queued
    playback.write(pcm(200, 3), "next")  # the next answer, written before the child applied it
    got = device_reads(shared, 300)  # the child applies the flush at its next read
    assert (got[:200] == 3).all() and (got[200:] == 0).all()
    assert shared.h[FLUSH_ACK] > since
    assert playback.played_frames("a") == 300  # never the skipped 700
    assert playback.played_frames("next") == 200


def test_two_flushes_before_the_child_reads_count_nothing_for_the_audio_between():
    shared, playback, _ = make()
    playback.write(pcm(1000, 1), "a")
    device_reads(shared, 100)
    playback.clear()
    playback.write(pcm(500, 2), "b")
    playback.clear()
    device_reads(shared, 100)
    assert (playback.played_frames("a"), playback.played_frames("b")) == (100, 0)


def test_the_ring_wraps_around_and_overflow_drops_the_newest_audio():
    shared, playback, _ = make(capacity_frames=1000)
    for k in range(5):  # 5 x 700 frames through a 1000-frame ring
        playback.write(pcm(700, k + 1), f"i{k}")
        got = device_reads(shared, 700)
        assert (got == k + 1).all()
    playback.write(pcm(800, 9), "big")
    playback.write(pcm(800, 8), "late")  # only 200 fit
    assert playback.stats.overflows == 1 and playback.stats.overflow_frames == 600
    got = device_reads(shared, 1000)
    assert (got[:800] == 9).all() and (got[800:] == 8).all()


async def test_wait_flushed_returns_once_the_child_applied_the_flush():
    shared, playback, _ = make()
    playback.attach_loop(asyncio.get_running_loop())
    playback.write(pcm(1000, 1), "a")
    since = playback.flush_count
    playback.clear()
    assert not await playback.wait_flushed(since, timeout=0.05)  # the child has not read yet
    device_reads(shared, 10)
    playback.on_child_event(b"f")  # what the child's 'f' event does on the loop
    assert await playback.wait_flushed(since, timeout=1.0)


def test_taps_get_every_block_the_child_handed_the_device_with_when_it_plays():
    from transports.audio_child import SpeakerSource

    shared, playback, _ = make(tap_bytes=4 * 4800)
    source = SpeakerSource(shared)  # the child's side: its output callback calls read()
    source.read(240, at=99.0)  # before anyone taps: not recorded
    tapped: list[tuple[bytes, float]] = []
    playback.add_tap(lambda block, at: tapped.append((block, at)))
    playback.write(pcm(600, 5), "a")
    source.read(480, at=100.0)
    source.read(480, at=100.02)  # 120 frames of audio, then silence
    assert playback.peek(10) == (960, b"")  # peek first hands what was played to the taps
    assert [at for _, at in tapped] == [100.0, 100.02]
    blocks = [np.frombuffer(b, np.int16) for b, _ in tapped]
    assert (blocks[0] == 5).all() and len(blocks[0]) == 480
    assert (blocks[1][:120] == 5).all() and (blocks[1][120:] == 0).all()
    assert playback.frames_read == 960
    playback.write(pcm(100, 7), "b")
    read, ahead = playback.peek(50)  # what the device takes next
    assert read == 960 and np.array_equal(np.frombuffer(ahead, np.int16), np.full(50, 7))


def test_a_full_played_ring_drops_whole_blocks_and_counts_them():
    from transports.audio_child import SpeakerSource
    from transports.shm_ring import TAP_DROPPED

    shared, playback, _ = make(tap_bytes=2000)
    source = SpeakerSource(shared)
    tapped: list[bytes] = []
    playback.add_tap(lambda block, at: tapped.append(block))
    for _ in range(3):  # 3 x (24 + 960) bytes: the third does not fit in 2000
        source.read(480, at=1.0)
    playback.on_child_event(b"t")
    assert len(tapped) == 2 and shared.h[TAP_DROPPED] == 1
    source.read(480, at=1.0)  # room again once the pipeline took them
    playback.on_child_event(b"t")
    assert len(tapped) == 3
