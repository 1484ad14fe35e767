"""TLS is verified, and a TLS failure is one line: a self-signed certificate on 127.0.0.1 is
refused (never trusted, never retried), a peer that does not speak TLS at an ``https://``
endpoint is reported as a failed handshake."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.support.fault_scenarios import handshake_only
from tests.support.faulty_server import FaultyServer
from tests.support.script_run import API_KEY, ScriptRun, check_no_crash, run_script
from tests.support.secrets import check_no_secret_runs
from tests.support.tls import self_signed_context

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def run_against(url: str, tmp: Path) -> ScriptRun:
    return await run_script(
        url, tmp, "--api-key", API_KEY, "--model", "gpt-realtime", input_s=1.0, timeout=30
    )


def check_one_line(run: ScriptRun, *needles: str) -> str:
    assert run.code != 0, run.describe()
    check_no_crash(run)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.describe()
    for needle in needles:
        assert needle in lines[0], lines[0]
    check_no_secret_runs(run.outputs(), [API_KEY])
    return lines[0]


async def test_self_signed_certificate_is_refused_with_one_line(tmp_path: Path) -> None:
    """A TLS server on 127.0.0.1 with a self-signed certificate. User sees one line, "TLS
    certificate of 127.0.0.1 could not be verified: self-signed certificate", exit 1; the
    upgrade request (with the key) is never sent, and there is no retry."""
    upgrades: list[str] = []

    def count(ws: ServerConnection, request: object) -> None:
        upgrades.append(ws.request.path if ws.request else "?")

    async def handler(ws: ServerConnection) -> None:
        await ws.close()

    quiet = logging.getLogger("tests.tls-server")
    quiet.setLevel(logging.CRITICAL)
    async with serve(
        handler,
        "127.0.0.1",
        0,
        ssl=self_signed_context(tmp_path),
        process_request=count,
        logger=quiet,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        run = await run_against(f"https://127.0.0.1:{port}", tmp_path / "run")
    line = check_one_line(run, "certificate", "127.0.0.1")
    assert run.elapsed < 5.0
    print(f"\nself-signed certificate: {line}")
    assert upgrades == [], "the client sent its upgrade request to an unverified server"
    assert "retrying" not in run.stdout


async def test_plain_socket_at_an_https_endpoint_fails_with_one_line_that_says_why(
    tmp_path: Path,
) -> None:
    """The endpoint says https but the peer speaks plain WebSocket: it resets the TLS handshake.
    User sees one line that says what went wrong (the TLS handshake failed, or the connection was
    reset), exit 1; no upgrade request reaches the peer. (A reset may be retried.)"""
    async with FaultyServer(handshake_only) as server:
        run = await run_against(f"https://127.0.0.1:{server.port}", tmp_path / "run")
    line = check_one_line(run)
    print(f"\nplain peer at https: {line} (after {run.elapsed:.1f} s)")
    assert server.attempts == 0
    cause = line.split("127.0.0.1", 1)[-1]
    assert re.search(r"(?i)tls|ssl|reset", cause), f"the line does not say what failed: {line!r}"
