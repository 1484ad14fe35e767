"""transports.pcm, the one audio conversion module: chunking without copies, downmixing, and
resampling, and the input transports delivering the session's rate (resampled once at most)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from pipelines.agent import make_transports
from pipelines.config import parse_config
from tests.support.audio import write_wav
from transports.pcm import Chunker, PcmResampler, downmix, downmix_samples


def test_a_piece_that_is_one_chunk_passes_through_without_a_copy() -> None:
    chunker = Chunker(1920)
    piece = bytes(range(256)) * 7 + bytes(128)
    assert chunker.feed(piece) == [piece] and chunker.feed(piece)[0] is piece


def test_chunks_are_exact_and_nothing_is_lost_or_reordered() -> None:
    rng = random.Random(3)
    chunker, sent, out = Chunker(640), bytearray(), []
    for _ in range(300):
        piece = rng.randbytes(rng.choice([640, 1, 320, 641, 1920, 17]))
        sent += piece
        out += chunker.feed(piece)
    assert all(len(c) == 640 for c in out)
    assert b"".join(out) == bytes(sent[: len(out) * 640]) and chunker.pending == len(sent) % 640


def test_downmix_is_the_rounded_mean_and_mono_passes_through() -> None:
    stereo = np.array([100, 300, -3, 4, 32767, 32767, -32768, -32768], dtype="<i2")
    assert downmix(stereo.tobytes(), 2) == np.array([200, 0, 32767, -32768], dtype="<i2").tobytes()
    mono = b"\x01\x02\x03\x04"
    assert downmix(mono, 1) is mono
    assert list(downmix_samples(np.array([1, 2, 3, 9], dtype=np.int16), 3)) == [2]  # cut frame


@pytest.mark.parametrize("in_rate,out_rate", [(48000, 16000), (16000, 24000), (44100, 24000)])
def test_streaming_resampling_keeps_the_duration(in_rate: int, out_rate: int) -> None:
    resampler = PcmResampler(in_rate, out_rate)
    tone = (np.sin(np.arange(in_rate) * 2 * np.pi * 440 / in_rate) * 8000).astype(np.int16)
    out = (
        b"".join(
            resampler.resample(tone[i : i + in_rate // 50].tobytes())
            for i in range(0, in_rate, in_rate // 50)
        )
        + resampler.flush()
    )
    assert abs(len(out) // 2 - out_rate) <= out_rate // 100


def test_the_input_transport_delivers_the_sessions_rate(tmp_path: Path) -> None:
    write_wav(tmp_path / "in.wav", bytes(9600))
    (tmp_path / "s.json").write_text(json.dumps({"input_audio_sampling_rate": 16000}))
    config, _ = parse_config(
        [
            "--local",
            "--log-dir",
            str(tmp_path),
            "--input-wav",
            str(tmp_path / "in.wav"),
            "--output-wav",
            str(tmp_path / "out.wav"),
            "--session-json",
            str(tmp_path / "s.json"),
        ],
        env={},
        dotenv_path=None,
    )
    input_t, _ = make_transports(config)
    assert input_t._params.audio_in_sample_rate == 16000  # the service has nothing to resample
