"""Keys that never appear in the process list, and a log folder only its owner can open.

``--api-key K`` puts the key in every user's ``ps`` output; ``--api-key-file PATH`` and
``--api-key -`` (typed at a hidden prompt on a terminal, or the first line of a pipe) keep it out.
Each is run as a user would: the default script as a subprocess against a peer on 127.0.0.1 that
records the ``api-key`` header it was given; the typed key goes through a real pseudo-terminal.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from processors.logfiles import make_private_dir
from tests.support.fault_scenarios import one_turn
from tests.support.faulty_server import FaultyServer
from tests.support.script_run import (
    ScriptRun,
    check_logs_private,
    check_no_crash,
    io_flags,
    run_script,
    run_to_end,
    script,
)
from tests.support.secrets import check_no_secret_runs
from tests.support.terminal import Terminal

KEY = "K-keyfile-0d5e9a7c31f2b84e"
MODEL = ("--model", "gpt-realtime")


async def config_error(tmp: Path, *args: str) -> ScriptRun:
    """Run the script with a configuration that must fail before connecting."""
    return await run_to_end(
        "-m",
        "pipelines.agent",
        "--endpoint",
        "ws://127.0.0.1:9/",
        *MODEL,
        "--log-dir",
        str(tmp / "logs"),
        *args,
        cwd=tmp,
        timeout=30,
    )


async def test_the_key_from_a_file_is_used_and_never_shown(tmp_path: Path) -> None:
    """User sees an ordinary session; the server got the key from the file (surrounding blank
    lines and spaces dropped); no output holds 8 characters of it."""
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"\n  {KEY}  \n\n", encoding="utf-8")
    async with FaultyServer(one_turn) as server:
        run = await run_script(
            server.url,
            tmp_path / "run",
            "--api-key-file",
            str(key_file),
            *MODEL,
            input_s=2.0,
            timeout=40,
        )
    assert run.code == 0, run.describe()
    check_no_crash(run)
    assert server.conns[0].record.headers.get("api-key") == KEY
    assert KEY not in " ".join(run.argv)
    check_no_secret_runs(run.outputs(), [KEY])
    check_logs_private(run)


@pytest.mark.parametrize(
    "content, needle",
    [
        (None, "not found"),
        ("", "is empty"),
        ("  \n\n", "is empty"),
        (f"{KEY}\nsecond-line-value\n", "holds 2 lines"),
    ],
)
async def test_an_unusable_key_file_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, needle: str
) -> None:
    """A missing, empty or two-line key file: one line naming the file, exit 2, and neither
    line of a two-line file is shown."""
    key_file = tmp_path / "key.txt"
    if content is not None:
        key_file.write_text(content, encoding="utf-8")
    result = await config_error(tmp_path, "--api-key-file", str(key_file))
    assert result.code == 2, result.describe()
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("error: --api-key-file") and needle in lines[0]
    ), result.stderr
    assert "key.txt" in lines[0]
    check_no_secret_runs(
        {"stdout": result.stdout, "stderr": result.stderr}, [KEY, "second-line-value"]
    )
    assert not (tmp_path / "logs").exists(), "bad configuration must fail before creating anything"


async def test_a_key_flag_and_a_key_file_together_are_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY, encoding="utf-8")
    result = await config_error(
        tmp_path, "--api-key", "K-other-value-123456", "--api-key-file", str(key_file)
    )
    assert result.code == 2 and "give only one" in result.stderr, result.describe()
    check_no_secret_runs(
        {"stdout": result.stdout, "stderr": result.stderr}, [KEY, "K-other-value-123456"]
    )


async def test_a_misspelt_key_flag_does_not_echo_the_key(tmp_path: Path) -> None:
    """``--api-ky KEY``: argparse names the unknown arguments; the key among them is masked."""
    result = await config_error(tmp_path, "--api-ky", KEY)
    assert result.code == 2, result.describe()
    assert "--api-ky" in result.stderr and "did you mean --api-key" in result.stderr, result.stderr
    check_no_secret_runs({"stdout": result.stdout, "stderr": result.stderr}, [KEY])


async def test_help_says_the_key_flag_is_visible_to_other_users(tmp_path: Path) -> None:
    result = await run_to_end("-m", "pipelines.agent", "--help", timeout=30)
    text = " ".join(result.stdout.split())
    assert result.code == 0
    assert (
        "visible to other users in the process list" in text
        and "--api-key-file" in text
        and "AZURE_VOICE_LIVE_API_KEY" in text
    ), text


async def test_the_key_piped_to_stdin_with_api_key_dash(tmp_path: Path) -> None:
    """``printf '%s\\n' "$KEY" | voicelive-agent --api-key - ...``: the first line of stdin is
    the key."""
    async with FaultyServer(one_turn) as server:
        run = await run_script(
            server.url,
            tmp_path / "run",
            "--api-key",
            "-",
            *MODEL,
            input_s=2.0,
            timeout=40,
            stdin=f"{KEY}\n".encode(),
        )
    assert run.code == 0, run.describe()
    assert server.conns[0].record.headers.get("api-key") == KEY
    check_no_secret_runs(run.outputs(), [KEY])


async def test_the_key_typed_at_a_hidden_prompt_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal, ``--api-key -`` asks ``API key:`` without echo: the typed key reaches the
    server and never appears on the terminal, stdout or stderr."""
    in_wav = tmp_path / "in.wav"
    from tests.support.audio import write_wav
    from tests.support.scenarios import noise

    write_wav(in_wav, noise(2.0, seed=5, amplitude=300))
    async with FaultyServer(one_turn) as server:
        with Terminal() as tty:
            async with script(
                "-m",
                "pipelines.agent",
                "--endpoint",
                server.url,
                "--api-key",
                "-",
                *MODEL,
                *io_flags(tmp_path, in_wav),
                "--idle-grace",
                "0.5",
                cwd=tmp_path,
                **tty.popen(),
            ) as s:
                tty.attached()
                await tty.wait_for(b"API key:", 20)
                tty.type(f"{KEY}\n".encode())
                run = await s.finish(40)
                assert not run.timed_out, run.describe()
                await tty.wait_for(None, 5)  # all it wrote on the terminal is on the screen
    outputs = {
        "terminal": tty.screen.decode("utf-8", "replace"),
        "stdout": run.stdout,
        "stderr": run.stderr,
    }
    assert run.code == 0, outputs
    assert server.conns[0].record.headers.get("api-key") == KEY
    check_no_secret_runs(outputs, [KEY])


def test_the_log_folders_we_create_are_private_and_existing_ones_keep_their_mode(
    tmp_path: Path,
) -> None:
    """Every folder the script creates for the logs is 0700 whatever the umask; a folder that
    already exists is the user's and keeps its mode."""
    existing = tmp_path / "shared"
    existing.mkdir()
    os.chmod(existing, 0o755)
    old = os.umask(0o022)
    try:
        make_private_dir(existing / "a" / "b")
    finally:
        os.umask(old)
    assert existing.stat().st_mode & 0o777 == 0o755
    assert (existing / "a").stat().st_mode & 0o777 == 0o700
    assert (existing / "a" / "b").stat().st_mode & 0o777 == 0o700
