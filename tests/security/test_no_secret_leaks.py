"""Whole sessions with distinctive secrets: no output of any kind ever holds them.

Each session runs the default script with ``--verbose`` (so the console shows every library line,
websockets' request line and headers included) and a reconnect (so credentials are used twice),
in each mode: model mode with the key from the environment, classic agent mode (key and agent
access token, the token travelling in the URL), current agent mode, and a refused upgrade (the
error path). Then every output is searched: stdout, stderr, every file under ``--log-dir``.
Every log file must have mode 0600.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from loguru import logger

from processors.logsetup import add_technical_log, remove_technical_log
from processors.redaction import add_secret
from tests.support.fault_scenarios import ResumeOutcome, agent_info, handshake_only, resume_session
from tests.support.faulty_server import FaultyServer, close_with, drop, refuse_always
from tests.support.pool import SessionPool, uses
from tests.support.script_run import (
    ROOT,
    ScriptRun,
    check_logs_private,
    check_no_crash,
    run_script,
    script_env,
)
from tests.support.secrets import check_no_secret_runs, leaked_runs

IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

KEY = "K-leakcheck-api-5b1f0e9d7c3a"
TOKEN = "T-leakcheck-tok-8a2e4c6f1b9d"
SECRETS = (KEY, TOKEN)
VERBOSE = ("--verbose", "--debug")


async def refused_session(tmp: Path) -> ScriptRun:
    async with FaultyServer(handshake_only, refuse=refuse_always(401)) as server:
        return await run_script(
            server.url,
            tmp,
            "--api-key",
            KEY,
            "--agent-id",
            "asst_A",
            "--project-name",
            "proj",
            "--agent-access-token",
            TOKEN,
            *VERBOSE,
            input_s=1.0,
            timeout=30,
        )


SESSIONS: dict[str, Any] = {
    "model, key from the environment": resume_session(
        lambda c: drop,
        ("--model", "gpt-realtime"),
        env=script_env(AZURE_VOICE_LIVE_API_KEY=KEY),
        extra=VERBOSE,
    ),
    "classic agent, token in the URL": resume_session(
        lambda c: lambda conn: close_with(conn, 1011, "internal error"),
        ("--api-key", KEY, "--agent-id", "asst_A", "--project-name", "proj"),
        env=script_env(AI_FOUNDRY_AGENT_ACCESS_TOKEN=TOKEN),
        extra=VERBOSE,
    ),
    "current agent": resume_session(
        lambda c: drop,
        ("--api-key", KEY, "--agent-name", "my-agent", "--project-name", "proj"),
        replay=0,
        agent=agent_info(),
        extra=VERBOSE,
    ),
    "refused 401": refused_session,
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    async with SessionPool.for_module(request, SESSIONS, tmp_path_factory) as p:
        yield p


def check_no_secret(run: ScriptRun) -> None:
    """No 8 consecutive characters of either secret in stdout, stderr or any log file."""
    outputs = run.outputs()
    assert len(outputs) >= 5, f"expected stdout, stderr and the log files, got {sorted(outputs)}"
    check_no_secret_runs(outputs, SECRETS)


def check_request_logged(run: ScriptRun) -> None:
    """The leak check covered the dangerous lines: websockets' request line and headers."""
    log = run.tech_log()
    assert re.search(r"> GET /voice-live/realtime\?", log), (
        "websockets' request line is not in voicelive.log"
    )
    assert re.search(r"(?im)> api-key: \*\*\*$", log), (
        "websockets' api-key header line is not in voicelive.log"
    )
    assert "> GET /voice-live/realtime?" in run.stdout, (
        "--verbose did not show the request line on the console"
    )


@IN_MODULE_LOOP
@pytest.mark.parametrize("name", [n for n in SESSIONS if n != "refused 401"])
@uses(*[n for n in SESSIONS if n != "refused 401"])
async def test_a_whole_session_with_a_reconnect_leaks_no_secret(
    pool: SessionPool, name: str
) -> None:
    """User sees: the usual console (request lines with ``***`` in place of the key and the
    token); nothing they could paste into a bug report holds a credential."""
    out: ResumeOutcome = await pool.get(name)
    run = out.run
    assert run.code == 0, run.describe()
    check_no_crash(run)
    assert len(out.server.conns) == 2, (
        "the session did not reconnect: credentials were used only once"
    )
    assert not out.server.script_errors, out.server.script_errors
    assert out.second.record.headers.get("api-key") == KEY  # the secret really was in use
    if "classic" in name:
        assert out.second.record.query.get("agent-access-token") == TOKEN
        assert re.search(r"agent-access-token=\*\*\*", run.tech_log()), (
            "the URL with the token was never logged"
        )
    check_request_logged(run)
    check_no_secret(run)
    check_logs_private(run)


@IN_MODULE_LOOP
@uses("refused 401")
async def test_a_refused_upgrade_leaks_no_secret(pool: SessionPool) -> None:
    """The error path (401 with both credentials set). User sees one line naming the credential
    to check, never its value."""
    run: ScriptRun = await pool.get("refused 401")
    assert run.code != 0, run.describe()
    check_no_crash(run)
    check_no_secret(run)
    check_logs_private(run)


def test_a_traceback_holding_a_secret_is_redacted_in_the_technical_log(tmp_path: Path) -> None:
    """An exception whose message holds a secret, logged with its traceback (loguru) and through
    stdlib logging (as websockets logs), reaches voicelive.log masked."""
    secret = "S-tb-5ecre7-77e1d2c3"
    add_secret(secret)
    path = tmp_path / "voicelive.log"
    sink = add_technical_log(path, level="DEBUG", frames=True)
    try:
        try:
            raise RuntimeError(
                f"upgrade failed for wss://x/voice-live/realtime?agent-access-token={secret} "
                f"with api-key: {secret}"
            )
        except RuntimeError:
            logger.exception("connection failed")
            logging.getLogger("websockets.client").exception("> GET /?api-key=%s", secret)
    finally:
        remove_technical_log(sink)
    text = path.read_text(encoding="utf-8")
    assert "Traceback" in text and "RuntimeError" in text
    assert not leaked_runs(text, secret), text
    assert path.stat().st_mode & 0o777 == 0o600


def test_tls_verification_is_never_turned_off() -> None:
    """No code path disables certificate or host-name checks."""
    pattern = re.compile(
        r"CERT_NONE|check_hostname\s*=\s*False|verify\s*=\s*False|_create_unverified_context|ssl\s*=\s*False"
    )
    offenders = []
    for folder in ("processors", "pipelines", "transports"):
        for path in (ROOT / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders


def test_every_console_line_leaves_through_the_one_redacting_function() -> None:
    """No ``print()`` and no direct write to stdout/stderr outside ``processors/console.py``:
    a new print path could not bypass the redactor unnoticed."""
    pattern = re.compile(
        r"(?<![\w.])print\(|sys\.(?:stdout|stderr)\.write|file=sys\.std(?:out|err)"
    )
    offenders = []
    for folder in ("pipelines", "processors", "transports", "localserver"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "processors" / "console.py":
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders
