"""Microphone audio reaches Voice Live as 24 kHz pcm16, resampled when the input runs at another
rate."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import soxr

from pipelines.agent import build_agent_pipeline
from pipelines.config import parse_config
from tests.support.audio import write_wav
from tests.support.replay_server import ReplayServer, ServerConn
from tests.support.scenarios import handshake
from transports.wav import WavInputTransport, WavOutputTransport


async def test_16khz_input_is_resampled_to_24khz(tmp_path: Path) -> None:
    t = np.arange(int(1.5 * 16000)) / 16000
    sweep = (8000 * np.sin(2 * np.pi * (200 + 400 * t) * t)).astype(np.int16)
    write_wav(tmp_path / "in16.wav", sweep.tobytes(), rate=16000)

    async def script(conn: ServerConn) -> None:
        await handshake(conn)

    async with ReplayServer(script) as server:
        config, _ = parse_config(
            [
                "--endpoint",
                server.url,
                "--api-key",
                "k",
                "--model",
                "m",
                "--log-dir",
                str(tmp_path / "logs"),
            ],
            env={},
            dotenv_path=None,
        )
        app = build_agent_pipeline(
            config,
            input=WavInputTransport(tmp_path / "in16.wav", sample_rate=16000),
            output=WavOutputTransport(tmp_path / "out.wav"),
        )
        assert await app.run(idle_grace_s=0.2) == 0
    (conn,) = server.connections
    appended = b"".join(
        base64.b64decode(e["audio"]) for e in conn.of_type("input_audio_buffer.append")
    )
    got = np.frombuffer(appended, dtype=np.int16).astype(np.float64)
    reference = soxr.resample(sweep.astype(np.float64), 16000, 24000)
    # Audio before session.updated is dropped, so match the tail of the sweep.
    tail = reference[-len(got) // 2 :]
    corr = np.correlate(got, tail, mode="valid")
    lag = int(np.argmax(corr))
    aligned = got[lag : lag + len(tail)]
    similarity = float(np.dot(aligned, tail) / (np.linalg.norm(aligned) * np.linalg.norm(tail)))
    assert similarity > 0.99, similarity
    # at least half of the 1.5 s arrived after session.updated
    assert len(got) >= len(reference) // 2


async def test_appends_leave_uncompressed(tmp_path: Path) -> None:
    """The client offers no permessage-deflate, even to a server that would accept it: base64
    PCM barely compresses, and deflating every append cost ~19 % of a worker's CPU."""
    write_wav(tmp_path / "in.wav", np.zeros(24000 // 2, dtype=np.int16).tobytes(), rate=24000)

    async def script(conn: ServerConn) -> None:
        await handshake(conn)

    async with ReplayServer(script) as server:  # websockets' server: deflate on by default
        argv = [
            "--endpoint",
            server.url,
            "--api-key",
            "k",
            "--model",
            "m",
            "--log-dir",
            str(tmp_path / "logs"),
        ]
        config, _ = parse_config(argv, env={}, dotenv_path=None)
        app = build_agent_pipeline(
            config,
            input=WavInputTransport(tmp_path / "in.wav"),
            output=WavOutputTransport(tmp_path / "out.wav"),
        )
        assert await app.run(idle_grace_s=0.2) == 0
    (conn,) = server.connections
    assert conn.of_type("input_audio_buffer.append"), "no audio reached the server"
    assert "sec-websocket-extensions" not in conn.headers, conn.headers.get(
        "sec-websocket-extensions"
    )
