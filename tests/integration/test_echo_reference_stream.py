"""``--echo-reference client`` on the wire: the query flag, the session fields, and stereo appends
whose channel 0 is the microphone as captured and channel 1 what the speaker played at that
moment (here the WAV transports: the input file's and the output file's timelines)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from pipelines.agent import build_agent_pipeline
from pipelines.config import parse_config
from tests.support.audio import find, matching_run, read_wav, write_wav
from tests.support.replay_server import ReplayServer, ServerConn
from tests.support.scenarios import Turn, handshake, noise, response_end, response_start
from transports.wav import WavInputTransport, WavOutputTransport

RATE = 24000


async def test_stereo_appends_carry_the_microphone_and_what_was_played(tmp_path: Path) -> None:
    mic = noise(5.0, seed=11, amplitude=300)
    write_wav(tmp_path / "in.wav", mic)
    burst = noise(1.0, seed=12, amplitude=8000)
    turn = Turn("hello", "a loud answer", burst)
    updates: list[dict] = []

    async def script(conn: ServerConn) -> None:
        updates.append(await handshake(conn))
        await conn.wait_audio(4 * RATE // 2)  # half a second of stereo appends
        await response_start(conn, turn)
        await conn.stream_audio(turn.response_id, turn.item_id, burst, speed=1.0)
        await response_end(conn, turn)

    async with ReplayServer(script) as server:
        argv = [
            "--endpoint",
            server.url,
            "--api-key",
            "k",
            "--model",
            "m",
            "--echo-reference",
            "client",
        ]
        config, _ = parse_config(
            [*argv, "--log-dir", str(tmp_path / "logs")], env={}, dotenv_path=None
        )
        app = build_agent_pipeline(
            config,
            input=WavInputTransport(tmp_path / "in.wav"),
            output=WavOutputTransport(tmp_path / "out.wav"),
        )
        assert await app.run(idle_grace_s=0.5) == 0
    assert not server.script_errors
    (conn,) = server.connections
    assert conn.query["features"] == "client_ec_reference:true"
    assert updates[0]["session"]["input_audio_echo_cancellation"] == {
        "type": "server_echo_cancellation",
        "reference_source": "client",
        "channels": 2,
    }

    sent = b"".join(base64.b64decode(e["audio"]) for e in conn.of_type("input_audio_buffer.append"))
    stereo = np.frombuffer(sent, dtype=np.int16).reshape(-1, 2)
    left, right = stereo[:, 0].copy(), stereo[:, 1].copy()
    # Channel 0: the microphone exactly (from where the session was ready).
    captured = np.frombuffer(mic, dtype=np.int16)
    start = find(captured, left[:480].tobytes())
    assert start >= 0
    assert (
        matching_run(captured, start, left[: len(captured) - start].tobytes())
        == len(captured) - start
    )
    # Channel 1: the burst as played, at the moment it was played.
    played, _ = read_wav(tmp_path / "out.wav")
    played_at = find(played, burst)
    assert played_at >= 0, "the burst was not played"
    # (compared with what the speaker played, gaps included, not with the burst as sent)
    heard = played[played_at : played_at + RATE].astype(np.float64)
    corr = np.correlate(right.astype(np.float64), heard, "valid")
    at = int(np.argmax(corr))
    similarity = corr[at] / (
        np.linalg.norm(heard) * np.linalg.norm(right[at : at + len(heard)]) + 1e-9
    )
    assert similarity > 0.95, similarity
    lag_ms = ((at + start) - played_at) * 1000 / RATE  # mic timeline vs speaker timeline
    # A constant offset: how late the first microphone frame and the first speaker block were
    # stamped (a few ms idle, tens of ms on a loaded machine), within what the canceller covers.
    assert abs(lag_ms) < 100, (lag_ms, similarity)
    assert (
        np.max(np.abs(right[: max(0, at - RATE // 10)].astype(np.int32)), initial=0) == 0
    )  # silence before
