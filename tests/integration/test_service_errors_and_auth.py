"""Service errors become frames or end the run; Entra tokens are minted per connection."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from azure.core.credentials import AccessToken

from pipelines.agent import AgentPipeline, build_agent_pipeline
from pipelines.config import parse_config
from processors.voicelive.connection import Credentials
from tests.support.audio import write_wav
from tests.support.replay_server import ReplayServer, ServerConn
from tests.support.scenarios import (
    barge_in_scenario,
    handshake,
    noise,
    response_end,
    response_start,
    transcript_deltas,
    user_speaks,
)
from transports.wav import WavInputTransport, WavOutputTransport


def build(tmp: Path, url: str, *argv: str, input_s: float = 2.0) -> AgentPipeline:
    config, _ = parse_config(
        ["--endpoint", url, "--log-dir", str(tmp / "logs"), *argv], env={}, dotenv_path=None
    )
    write_wav(tmp / "in.wav", noise(input_s, seed=5, amplitude=100))
    return build_agent_pipeline(
        config, input=WavInputTransport(tmp / "in.wav"), output=WavOutputTransport(tmp / "out.wav")
    )


async def test_non_benign_error_becomes_an_error_frame_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    scenario = barge_in_scenario()
    turn = scenario.turn1

    async def script(conn: ServerConn) -> None:
        await handshake(conn)
        await conn.send(
            {
                "type": "error",
                "event_id": "event_e1",
                "error": {
                    "type": "invalid_request_error",
                    "code": "response_cancel_not_active",
                    "message": "Cancellation failed: no active response found",
                },
            }
        )
        await conn.send(
            {
                "type": "error",
                "event_id": "event_e2",
                "error": {
                    "type": "invalid_request_error",
                    "code": "unknown_parameter",
                    "message": "Unknown parameter: 'session.type'.",
                    "param": "session.type",
                },
            }
        )
        await user_speaks(conn, turn)
        await response_start(conn, turn)
        await transcript_deltas(conn, turn)
        await conn.stream_audio(turn.response_id, turn.item_id, turn.audio, speed=4.0)
        await response_end(conn, turn)

    errors: list[str] = []
    async with ReplayServer(script) as server:
        app = build(tmp_path, server.url, "--api-key", "k", "--model", "m")

        @app.worker.event_handler("on_pipeline_error")
        async def on_error(worker, frame) -> None:
            errors.append(frame.error)

        assert await app.run(idle_grace_s=0.3) == 0
    assert len(errors) == 1 and "unknown_parameter" in errors[0], errors
    log = next((tmp_path / "logs").glob("session_*.log")).read_text(encoding="utf-8")
    assert f"Agent Audio Response: {turn.agent_text}" in log


REJECTED = "Text-based end-of-utterance detection requires a local speech recognizer"


async def test_rejected_session_update_ends_the_run_with_one_line(tmp_path: Path) -> None:
    async def script(conn: ServerConn) -> None:
        await conn.send({"type": "session.created", "event_id": "e", "session": {"id": "sess_x"}})
        update = await conn.wait_for("session.update")
        await conn.send(
            {
                "type": "error",
                "event_id": "e2",
                "error": {
                    "type": "invalid_request_error",
                    "code": "invalid_value",
                    "message": REJECTED,
                    "event_id": update["event_id"],
                },
            }
        )

    async with ReplayServer(script) as server:
        app = build(tmp_path, server.url, "--api-key", "k", "--model", "m", input_s=10.0)
        started = time.monotonic()
        assert await asyncio.wait_for(app.run(), 15) == 1
        assert time.monotonic() - started < 5
    assert app.failure == (f"Voice Live error invalid_value: session.update rejected: {REJECTED}")
    assert server.connections[0].close_code == 1000


class CountingCredential:
    """An azure-core async token credential that issues a new token each time (as Entra does)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.calls.append(scopes)
        return AccessToken(f"entra-token-{len(self.calls)}-abcdefgh", int(time.time()) + 3600)

    async def close(self) -> None:
        pass


async def test_entra_token_is_minted_per_connection_and_used_for_both_credentials(
    tmp_path: Path,
) -> None:
    async def script(conn: ServerConn) -> None:
        await handshake(conn)
        if len(server.connections) == 1:
            await asyncio.sleep(0.2)
            conn.ws.transport.abort()  # a drop: the client reconnects with a fresh token

    async with ReplayServer(script) as server:
        app = build(
            tmp_path, server.url, "--agent-id", "asst_1", "--project-name", "p", input_s=2.0
        )
        credential = CountingCredential()
        app.service.settings.credentials = Credentials(token_credential=credential)
        assert await app.run(idle_grace_s=0.5) == 0
    first, second = server.connections[:2]
    assert first.headers["authorization"] == "Bearer entra-token-1-abcdefgh"
    assert first.query["agent-access-token"] == "entra-token-1-abcdefgh"
    assert second.headers["authorization"] == "Bearer entra-token-2-abcdefgh"
    assert "api-key" not in first.headers
    assert all(scopes == ("https://ai.azure.com/.default",) for scopes in credential.calls)
    for path in (tmp_path / "logs").iterdir():
        assert "entra-token-" not in path.read_text(encoding="utf-8")
