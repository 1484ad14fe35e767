"""The audio process (``--audio-process``): lean, and never left behind.

Real PyAudio streams on the private PulseAudio, a real child process, real signals.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from tests.devices.processes import alive, audio_children
from tests.support.replay_server import ReplayServer, ServerConn
from tests.support.scenarios import (
    RATE,
    Turn,
    handshake,
    noise,
    response_start,
    transcript_deltas,
    user_speaks,
)
from tests.support.script_run import kill, script, send_signal
from transports.audio_process import AudioProcess


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_audio_child_imports_neither_pipecat_nor_the_voice_live_code(pulse):
    audio = AudioProcess()
    try:
        audio.open_device("output", None, 24000, None)
        audio.open_device("input", None, 24000, None)
        modules = audio.loaded_modules()
    finally:
        audio.close()
    assert "pyaudio" in modules and "transports.streams" in modules  # it did open the streams
    heavy = [
        m
        for m in modules
        if m.split(".")[0]
        in ("pipecat", "processors", "pipelines", "localserver", "loguru", "numpy")
    ]
    assert heavy == []
    assert not alive(audio.pid)


SPAWNER = """
import sys, threading
from transports.audio_process import AudioProcess
holder = []
def spawn():
    audio = AudioProcess()
    audio.open_device("output", None, 24000, None)
    audio.open_device("input", None, 24000, None)
    audio.send(b"i")
    holder.append(audio)
if sys.argv[1] == "thread":
    worker = threading.Thread(target=spawn)
    worker.start()
    worker.join()
else:
    spawn()
print(holder[0].pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("spawned_from", ["main", "thread"])
async def test_the_audio_child_dies_with_a_sigkilled_parent(pulse, spawned_from):
    async with script("-c", SPAWNER, spawned_from, stdin=asyncio.subprocess.PIPE) as parent:
        _, line = await parent.wait_for("", timeout=20)  # the child's pid
        child = int(line)
        assert alive(child) and audio_children(parent.proc.pid) == [child]
        kill(parent.proc)
        await parent.wait(10)
        assert await asyncio.to_thread(wait_gone, child, 5), (
            "the audio process outlived its SIGKILLed parent"
        )


async def long_answer(conn: ServerConn) -> None:
    """One turn whose answer streams in real time; ``mid`` is marked 1 s into its audio."""
    turn = Turn("Read me the whole poem", "Of all the seas I sailed", noise(4.0, seed=31))
    await handshake(conn)
    await conn.wait_audio(RATE * 2 // 5)  # the microphone runs (in the audio process)
    await user_speaks(conn, turn)
    await response_start(conn, turn)
    await transcript_deltas(conn, turn)
    await conn.stream_audio(turn.response_id, turn.item_id, turn.audio[: RATE * 2], speed=1.0)
    conn.mark("mid")
    await conn.stream_audio(turn.response_id, turn.item_id, turn.audio[RATE * 2 :], speed=1.0)


@pytest.mark.parametrize(
    "sig, accepted",
    [(signal.SIGINT, (0, 130)), (signal.SIGTERM, (0, 143)), (signal.SIGKILL, (-signal.SIGKILL,))],
    ids=["ctrl-c", "sigterm", "sigkill"],
)
async def test_a_signal_mid_answer_ends_the_script_and_its_audio_process(
    pulse, speaker, script_env: dict[str, str], tmp_path: Path, sig, accepted
) -> None:
    async with ReplayServer(long_answer) as server:
        flags = ["--endpoint", server.url, "--api-key", "K-audio-proc-1"]
        async with script(
            "-m",
            "pipelines.agent",
            "--audio-process",
            *flags,
            "--model",
            "gpt-realtime",
            "--log-dir",
            str(tmp_path / "logs"),
            cwd=tmp_path,
            env={**script_env, **pulse.env},
            stdin=asyncio.subprocess.PIPE,
        ) as s:
            deadline = asyncio.get_running_loop().time() + 40
            while "mid" not in (server.connections[0].marks if server.connections else {}):
                assert s.proc.returncode is None, s.stderr
                assert asyncio.get_running_loop().time() < deadline, "the answer never started"
                await asyncio.sleep(0.05)
            [child] = audio_children(s.proc.pid)
            send_signal(s.proc, sig)
            code = await s.wait(20)
    assert code in accepted, s.stderr
    assert "Traceback" not in s.stderr
    assert await asyncio.to_thread(wait_gone, child, 5), "the audio process was left behind"
    heard = speaker.samples()
    assert heard.any(), "the answer never reached the speaker"
