"""The local server's command lines: ``python -m localserver`` prints its URL, serves a session
and stops cleanly on SIGTERM; ``python -m localserver.speak`` writes a 24 kHz mono int16 WAV."""

from __future__ import annotations

import signal
import wave
from pathlib import Path

import numpy as np
from ls_client import Client

from tests.support.script_run import script, send_signal, speak


async def test_cli_prints_url_serves_and_stops_on_sigterm() -> None:
    argv = ["--host", "127.0.0.1", "--port", "0", "--api-key", "k1"]
    async with script("-m", "localserver", *argv) as s:
        _, line = await s.wait_for("", timeout=20)  # its first line, whatever it is
        prefix = "Voice Live local server listening on "
        assert line.startswith(prefix + "http://127.0.0.1:"), line
        client = await Client.open(line[len(prefix) :], key="k1")
        await client.expect("session.created")
        send_signal(s.proc, signal.SIGTERM)
        assert await s.wait(10) == 0


async def test_speak_cli_writes_question_wav(tmp_path: Path) -> None:
    out = tmp_path / "question.wav"
    await speak("What is the capital of France?", out, pad_ms=300)
    with wave.open(str(out)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    assert 1.5 < len(pcm) / 24000 < 3.5
    assert np.abs(pcm[: 24000 * 300 // 1000 - 10]).max() == 0 and np.abs(pcm).max() > 5000
