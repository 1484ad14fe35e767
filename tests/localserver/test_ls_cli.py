"""The local server's command lines: ``python -m localserver`` prints its URL, serves a session
and stops cleanly on SIGTERM; ``python -m localserver.speak`` writes a 24 kHz mono int16 WAV."""

from __future__ import annotations

import asyncio
import signal
import sys
import wave
from pathlib import Path

import numpy as np
from ls_client import Client

ROOT = Path(__file__).resolve().parents[2]


async def test_cli_prints_url_serves_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "localserver",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-key",
        "k1",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        prefix = "Voice Live local server listening on "
        assert line.startswith(prefix + "http://127.0.0.1:"), line
        client = await Client.open(line[len(prefix) :], key="k1")
        await client.expect("session.created")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_speak_cli_writes_question_wav(tmp_path: Path) -> None:
    out = tmp_path / "question.wav"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "localserver.speak",
        "What is the capital of France?",
        str(out),
        "--pad-ms",
        "300",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    with wave.open(str(out)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    assert 1.5 < len(pcm) / 24000 < 3.5
    assert np.abs(pcm[: 24000 * 300 // 1000 - 10]).max() == 0 and np.abs(pcm).max() > 5000
