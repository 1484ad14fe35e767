"""WAV transports in a real pipecat pipeline: pacing, the recorded timeline, interruption cuts."""

import asyncio
import time
import wave

import numpy as np
import pytest
from audio_rig.harness import PipelineHarness
from audio_rig.signals import read_wav, tone, write_wav
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)

from transports.errors import TransportError
from transports.playback import PlaybackBuffer
from transports.wav import WavInputTransport, WavOutputTransport
from transports.wavfile import WavClock, WavRecorder

RATE = 24000


def input_audio(harness: PipelineHarness) -> np.ndarray:
    frames = harness.tail.of_type(InputAudioRawFrame)
    return np.frombuffer(b"".join(f.audio for f in frames), dtype=np.int16)


async def test_input_is_paced_like_a_microphone(tmp_path):
    signal = tone(440, 1.0, offset=2000)
    mic = WavInputTransport(write_wav(tmp_path / "in.wav", signal), chunk_ms=20)
    loop = asyncio.get_running_loop()
    async with PipelineHarness([mic]) as harness:
        start = loop.time()
        await asyncio.wait_for(mic.input_done.wait(), 5)
        elapsed = loop.time() - start
        frames = harness.tail.of_type(InputAudioRawFrame)
    assert len(frames) >= 50
    assert all(len(f.audio) == 960 and f.sample_rate == RATE for f in frames)
    assert np.array_equal(input_audio(harness)[:RATE], signal)
    assert 0.9 <= elapsed < 2.5  # 50 chunks of 20 ms, paced by absolute deadlines


async def test_input_not_realtime_pushes_the_file_at_once_then_paced_silence(tmp_path):
    signal = tone(440, 3.0, offset=2000)
    mic = WavInputTransport(
        write_wav(tmp_path / "in.wav", signal), realtime=False, trailing_silence_ms=100, chunk_ms=20
    )
    loop = asyncio.get_running_loop()
    async with PipelineHarness([mic]) as harness:
        start = loop.time()
        await asyncio.wait_for(mic.input_done.wait(), 5)
        assert loop.time() - start < 1.5  # 3 s of audio in well under real time
        await harness.tail.wait_for_type(InputAudioRawFrame, count=155)
    audio = input_audio(harness)
    assert np.array_equal(audio[: len(signal)], signal)
    assert len(audio) == len(signal) + 5 * 480 and not audio[len(signal) :].any()


async def test_input_downmixes_and_resamples_to_the_pipeline_rate(tmp_path):
    left = tone(300, 0.5, rate=16000)
    stereo = np.stack([left, left], axis=1).reshape(-1)
    mic = WavInputTransport(
        write_wav(tmp_path / "st.wav", stereo, rate=16000, channels=2),
        realtime=False,
        trailing_silence_ms=0,
    )
    async with PipelineHarness([mic]):
        await asyncio.wait_for(mic.input_done.wait(), 5)
    assert mic.frames_pushed == 12000  # 0.5 s at 24 kHz


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "input WAV '{}' not found"),
        (
            b"not a wav at all",
            "input WAV '{}' cannot be read (file does not start with RIFF id): "
            "convert it to 16-bit PCM",
        ),
    ],
)
def test_input_bad_files_give_one_clear_error(tmp_path, content, message):
    path = tmp_path / "x.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TransportError) as error:
        WavInputTransport(path)
    assert str(error.value).startswith(message.format(path))
    assert "\n" not in str(error.value)


def test_input_rejects_wavs_without_audio(tmp_path):
    path = tmp_path / "u8.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(1), w.setframerate(8000)
        w.writeframes(b"")
    with pytest.raises(TransportError, match="holds no audio"):
        WavInputTransport(path)


def test_output_in_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(TransportError, match="does not exist"):
        WavOutputTransport(tmp_path / "nope" / "out.wav")


class TimedWavOutput(WavOutputTransport):
    """Notes when audio reached the speaker and when it was flushed."""

    written_at: float = 0.0
    written_by: float = 0.0  # the call returned (another thread may run in between)
    flushed_at: float = 0.0

    def _queue_audio(self, pcm, item_id):
        first = not self.written_at
        if first:
            self.written_at = time.monotonic()
        super()._queue_audio(pcm, item_id)
        if first:
            self.written_by = time.monotonic()

    def _flush_playback(self):
        self.flushed_at = time.monotonic()
        return super()._flush_playback()


async def test_output_records_silence_then_the_audio_at_its_arrival_time(tmp_path):
    out = TimedWavOutput(tmp_path / "out.wav")
    signal = tone(440, 0.5, offset=2000)
    async with PipelineHarness([out]) as harness:
        await asyncio.sleep(0.2)  # let the speaker's timeline run empty for a while
        await harness.send(TTSAudioRawFrame(signal.tobytes(), RATE, 1, context_id="item1"))
        await harness.send(TTSStoppedFrame())
        assert await out.playback.wait_drained(timeout=5)
        await harness.tail.wait_for_type(BotStoppedSpeakingFrame)
        await harness.end()
    recorded, rate = read_wav(tmp_path / "out.wav")
    assert rate == RATE and len(recorded) == out.recorder.frames_written
    first = int(np.flatnonzero(recorded)[0])
    arrived = [(t - out.recorder.started_at) * RATE for t in (out.written_at, out.written_by)]
    assert first >= 0.19 * RATE
    assert arrived[0] - 24 <= first <= arrived[1] + 24, (first, arrived)  # as it arrived, ±1 ms
    assert np.array_equal(recorded[first : first + len(signal)], signal)
    assert not recorded[first + len(signal) :].any()
    assert out.playback.played_frames("item1") == len(signal)
    assert harness.head.of_type(BotStartedSpeakingFrame)  # broadcast upstream too


async def test_interruption_cuts_the_recording_where_the_listener_stopped_hearing(tmp_path):
    out = TimedWavOutput(tmp_path / "out.wav")
    signal = tone(440, 2.0, offset=2000)
    async with PipelineHarness([out]) as harness:
        await harness.send(TTSAudioRawFrame(signal.tobytes(), RATE, 1, context_id="a"))
        await harness.tail.wait_for_type(BotStartedSpeakingFrame)
        await asyncio.sleep(0.3)  # let part of the response play
        since = out.playback.flush_count
        await harness.send(InterruptionFrame())
        assert await out.playback.wait_flushed(since, timeout=2)
        await harness.tail.wait_for_type(BotStoppedSpeakingFrame)
        await harness.end()
    recorded, _ = read_wav(tmp_path / "out.wav")
    heard = np.flatnonzero(recorded)
    start, last = int(heard[0]), int(heard[-1])
    cut_expected = (out.flushed_at - out.recorder.started_at) * RATE
    assert abs((last + 1) - cut_expected) <= 240  # within one 10 ms tick of the flush
    assert len(heard) == last + 1 - start  # one contiguous run, nothing after the cut
    assert np.array_equal(recorded[start : last + 1], signal[: last + 1 - start])
    assert out.playback.played_frames("a") == len(heard)
    assert out.playback.received_frames("a") == len(signal)


async def test_output_not_realtime_writes_audio_as_it_arrives_resampled(tmp_path):
    out = WavOutputTransport(tmp_path / "fast.wav", realtime=False)
    pieces = [tone(440, 0.2, rate=16000, offset=1000) for _ in range(3)]
    loop = asyncio.get_running_loop()
    async with PipelineHarness([out]) as harness:
        start = loop.time()
        for i, piece in enumerate(pieces):
            await harness.send(TTSAudioRawFrame(piece.tobytes(), 16000, 1, context_id=f"r{i}"))
        await harness.send(TTSStoppedFrame())
        await harness.end()
        assert loop.time() - start < 0.5
    recorded, rate = read_wav(tmp_path / "fast.wav")
    assert rate == RATE
    assert abs(len(recorded) - 0.6 * RATE) <= 2  # 3 x 0.2 s at 16 kHz -> 24 kHz, tails flushed
    assert len(harness.tail.of_type(OutputAudioRawFrame)) == 3  # audio still flows downstream
    assert all(abs(out.playback.received_frames(f"r{i}") - 4800) <= 2 for i in range(3))


async def test_header_is_valid_while_recording_and_after_cancel(tmp_path):
    path = tmp_path / "live.wav"
    out = WavOutputTransport(path)
    async with PipelineHarness([out]):
        await asyncio.sleep(1.25)  # past the first periodic header patch
        with wave.open(str(path), "rb") as live:
            assert live.getnframes() >= RATE
    # leaving the harness cancels the pipeline: the header is still finalised
    with wave.open(str(path), "rb") as done:
        assert done.getnframes() == out.recorder.frames_written >= 1.2 * RATE


def test_the_wav_speaker_stamps_each_block_with_where_it_plays_on_its_timeline(tmp_path):
    """A tap (the recording, the echo reference) gets each block with when its first frame plays:
    contiguous blocks, contiguous times, also after the clock thread ticked late (it stamped the
    tick's time: a 250 ms late tick looked like 210 ms of silence between two blocks)."""
    buffer = PlaybackBuffer(24000)
    stamps: list[tuple[float, int]] = []
    buffer.add_tap(lambda block, at: stamps.append((at, len(block) // 2)))
    speaker = WavRecorder(tmp_path / "out.wav", buffer)
    speaker.open()
    WavClock.shared().remove(speaker)  # this test ticks it
    # A start at which 40 ms later is not a whole number of frames in floating point (at 637.39 s
    # it is 959.9999999991): the block is still 960 frames, not one short. A fixed time, not one
    # searched near the machine's monotonic clock: with a small uptime (a fresh CI machine) there
    # may be none within reach.
    t0 = 637.39
    assert ((t0 + 0.04) - t0) * 24000 < 960
    speaker.started_at = t0
    try:
        assert speaker.tick(t0 + 0.04) and speaker.tick(t0 + 0.04 + 0.25)  # the second is late
    finally:
        # close() records up to time.monotonic(): move the start so that "now" is where the
        # ticks stopped (from 637.39 s, a machine up for hours would record hours of silence)
        speaker.started_at = time.monotonic() - 0.29
        speaker.close()
    assert speaker.frames_written == pytest.approx(0.29 * 24000, abs=240)
    (first, n1), (second, n2) = stamps[:2]
    assert first == pytest.approx(t0, abs=1e-6) and (n1, n2) == (960, 6000)
    assert second == pytest.approx(first + n1 / 24000, abs=1e-6)
