"""Things that go wrong once the session runs (a full disk, a file-size limit, a server-side
traceback, a long pasted value, Ctrl-D): one line on stderr, a non-zero exit when something was
lost, what was written kept and readable, and never a hang or a traceback. Sessions run against
the embedded server (``--local``)."""

from __future__ import annotations

import os
import resource
import wave
from pathlib import Path

import pytest

from localserver.speak import speak_to_wav
from tests.support.script_run import io_flags, run_to_end, script
from tests.support.terminal import Terminal


def question(tmp: Path) -> Path:
    speak_to_wav("What is the capital of France?", tmp / "q.wav", pad_ms=500)
    return tmp / "q.wav"


async def run_local(
    tmp: Path, env: dict[str, str], *argv: str, file_limit: int | None = None
) -> tuple[int, str, str]:
    def limit() -> None:  # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    run = await run_to_end(
        "-m", "pipelines.agent", "--local", *argv, cwd=tmp, env=env, preexec_fn=limit, timeout=60
    )  # a hang fails here
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    return run.code, run.stdout, run.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_output_wav_on_a_full_disk_ends_the_session_with_one_line(
    tmp_path: Path, script_env: dict[str, str]
) -> None:
    code, _, err = await run_local(
        tmp_path,
        script_env,
        "--input-wav",
        str(question(tmp_path)),
        "--output-wav",
        "/dev/full",
        "--log-dir",
        "logs",
    )
    assert code == 1
    assert err.splitlines() == [
        "error: output WAV '/dev/full' cannot be written (No space left on device)"
    ]


async def test_output_wav_cut_short_mid_session_keeps_a_valid_file_and_says_how_much(
    tmp_path: Path, script_env: dict[str, str]
) -> None:
    limit = 150_000  # about 3 s of the 24 kHz recording; the logs stay far below it
    code, _, err = await run_local(
        tmp_path,
        script_env,
        "--input-wav",
        str(question(tmp_path)),
        "--output-wav",
        "out.wav",
        "--log-dir",
        "logs",
        file_limit=limit,
    )
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith(
        "error: output WAV 'out.wav' cannot be written (File too large): the first "
    ) and line.endswith(" s are kept"), line
    with wave.open(str(tmp_path / "out.wav"), "rb") as w:
        frames = w.getnframes()
        assert len(w.readframes(frames)) == 2 * frames, (
            "the header promises more than the file holds"
        )
    assert 44 + 2 * frames == (tmp_path / "out.wav").stat().st_size > limit - 2
    assert f"the first {frames / 24000:.1f} s are kept" in line
    assert any((tmp_path / "logs").glob("session_*.log"))


async def test_a_log_that_cannot_be_written_is_one_line_and_a_failed_exit(
    tmp_path: Path, script_env: dict[str, str]
) -> None:
    code, out, err = await run_local(
        tmp_path,
        script_env,
        "--input-wav",
        str(question(tmp_path)),
        "--output-wav",
        os.devnull,
        "--log-dir",
        "logs",
        "--debug",
        file_limit=20_000,
    )
    assert code == 1
    assert err.splitlines() == [
        "error: log file 'logs/voicelive.log' cannot be written (File too large): "
        "its later lines are lost"
    ]
    assert (
        "Agent Audio Response: The capital of France is Paris."
        in (next((tmp_path / "logs").glob("session_*.log"))).read_text()
    )


async def test_the_embedded_server_keeps_its_tracebacks_in_the_technical_log(
    tmp_path: Path, script_env: dict[str, str]
) -> None:
    # A 10 000-character agent name makes a request line the server refuses to read.
    code, _, err = await run_local(
        tmp_path,
        script_env,
        "--agent-name",
        "a" * 10_000,
        "--project-name",
        "p",
        "--input-wav",
        str(question(tmp_path)),
        "--output-wav",
        "out.wav",
        "--log-dir",
        "logs",
    )
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith("error: WebSocket handshake"), err
    assert "opening handshake failed" in (tmp_path / "logs" / "voicelive.log").read_text()


async def test_a_huge_pasted_value_is_cut_in_the_error_line(
    tmp_path: Path, script_env: dict[str, str]
) -> None:
    code, _, err = await run_local(tmp_path, script_env, "--voice", "v" * 5000)
    assert code == 2
    (line,) = err.splitlines()
    assert "…(5000 characters)" in line and len(line) < 400


async def test_ctrl_d_on_a_terminal_quits_like_q(
    tmp_path: Path, script_env: dict[str, str]
) -> None:
    wav = question(tmp_path)
    with Terminal() as tty:
        async with script(
            "-m",
            "pipelines.agent",
            "--local",
            *io_flags(tmp_path, wav),
            "--idle-grace",
            "60",
            cwd=tmp_path,
            env=script_env,
            **tty.popen(output=True),
        ) as s:
            tty.attached()
            await tty.wait_for(b"Starting the chat", 30)
            tty.type(b"\x04")  # Ctrl-D at the start of a line: end of input
            try:
                code = await s.wait(20)
                await tty.wait_for(None, 5)  # all it printed is on the screen
            except TimeoutError:
                raise AssertionError(
                    "Ctrl-D did not end the session (the idle grace is 60 s)"
                ) from None
    assert code == 0
    assert b"Quitting the chat..." in tty.screen and b"Chat done." in tty.screen
