"""Talking on speakers, on the PulseAudio rig with its echo path (the microphone hears the speaker
40 ms late at -6 dB): the default script against the embedded server (``--local``, whose VAD
listens to what the microphone picks up), asked "Tell me a story." (an 18-second answer).

(a) without echo handling (``--echo-reference none``) the answer interrupts itself;
(b) with ``--echo-reference client`` the same answer plays to the end;
(c) with ``--echo-reference client``, "Stop." spoken over the answer still interrupts it, and
    the speaker goes silent within the barge-in bound.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from localserver.brain import STORY
from localserver.speak import speak_to_wav
from tests.support.script_run import Script, script

RATE = 24000
BARGE_IN_BOUND_MS = 1500  # user's first word -> the speaker silent (VAD onset + turn + abort)
USER_AT_S = 4.0  # the user speaks this far into the answer


@pytest.fixture
def echo_path(pulse):
    pulse.add_echo_path()
    yield pulse
    pulse.remove_echo_path()


@asynccontextmanager
async def start(echo: str, env: dict[str, str], cwd: Path) -> AsyncIterator[Script]:
    """One session of the default script, its stdin a pipe to type into, once it is ready."""
    async with script(
        "-m", "pipelines.agent", "--local", "--plain", "--echo-reference", echo,
        "--log-dir", "logs", cwd=cwd, env=env, stdin=asyncio.subprocess.PIPE,
    ) as run:  # fmt: skip
        await run.wait_for(r"Session updated: sess_", timeout=90)
        yield run


def underruns(run: Script) -> int:
    return run.stderr.count("underrun occurred")


async def say(run: Script, text: str) -> None:
    await run.write(text.encode() + b"\n")


async def finish(run: Script) -> None:
    """'q', then the script must end cleanly (bounded)."""
    await say(run, "q")
    assert await run.wait(40) == 0, run.printed()


async def wait_for_sound(speaker, after: int, timeout: float) -> int:
    """The index of the first sample after ``after`` that the speaker played loudly."""
    deadline = time.monotonic() + timeout
    while True:
        heard = speaker.samples()[after:]
        loud = np.flatnonzero(np.abs(heard.astype(np.int32)) > 1000)
        if loud.size:
            return after + int(loud[0])
        assert time.monotonic() < deadline, "the answer never reached the speaker"
        await asyncio.sleep(0.05)


def story_stop(speaker, not_before: float, quiet_s: float = 0.25) -> int:
    """The last loud sample before the first ``quiet_s`` pause on the speaker that began after
    ``not_before`` (a monotonic time): where the interrupted answer stopped."""
    heard = np.abs(speaker.samples().astype(np.int32)) > 300
    start = next(i for i in range(0, len(heard), 240) if speaker.arrival_time(i) >= not_before)
    loud = np.flatnonzero(heard[start:]) + start
    gaps = np.flatnonzero(np.diff(loud) > quiet_s * RATE)
    assert gaps.size, "the speaker never paused after the user spoke"
    return int(loud[gaps[0]])


async def story(echo: str, env: dict[str, str], cwd: Path, speaker) -> tuple[Script, bool]:
    """Ask for the story; (the run, whether the answer interrupted itself)."""
    async with start(echo, env, cwd) as run:
        mark = len(speaker.samples())
        await say(run, "Tell me a story.")
        await wait_for_sound(speaker, mark, 30)
        _, line = await run.wait_for(r"User started speaking", r"Response done", timeout=90)
        await finish(run)
    return run, "User started speaking" in line


async def test_without_echo_handling_a_long_answer_interrupts_itself(
    echo_path, speaker, script_env: dict[str, str], tmp_path: Path
) -> None:
    run, interrupted = await story("none", {**script_env, **echo_path.env}, tmp_path, speaker)
    assert interrupted, "the agent did not hear itself: the rig's echo path does not work"
    log = next((tmp_path / "logs").glob("session_*.log")).read_text(encoding="utf-8")
    first = re.search(r"Agent Audio Response: (.*)", log)
    assert first and len(first.group(1)) < len(STORY), "the story was not cut short"
    print(f"echo none: self-interrupted, {underruns(run)} output underruns")


async def test_with_the_client_reference_the_answer_plays_to_the_end(
    echo_path, speaker, script_env: dict[str, str], tmp_path: Path
) -> None:
    run, interrupted = await story("client", {**script_env, **echo_path.env}, tmp_path, speaker)
    print(f"echo client: interrupted={interrupted}, {underruns(run)} output underruns")
    assert not interrupted, "the agent interrupted itself despite the reference:\n" + run.printed()
    log = next((tmp_path / "logs").glob("session_*.log")).read_text(encoding="utf-8")
    assert f"Agent Audio Response: {STORY}" in log
    assert "User Input:" not in log.split("User Input: Tell me a story.")[1]


async def test_with_the_reference_the_user_talking_over_the_answer_still_interrupts_it(
    echo_path, speaker, script_env: dict[str, str], tmp_path: Path
) -> None:
    speech_ms, _ = speak_to_wav("Stop.", tmp_path / "stop.wav", pad_ms=300)
    async with start("client", {**script_env, **echo_path.env}, tmp_path) as run:
        mark = len(speaker.samples())
        await say(run, "Tell me a story.")
        onset = await wait_for_sound(speaker, mark, 30)
        deadline = time.monotonic() + 30
        while len(speaker.samples()) < onset + USER_AT_S * RATE:
            assert time.monotonic() < deadline, "the speaker stopped playing"
            await asyncio.sleep(0.05)
        player = echo_path.play_into_mic(tmp_path / "stop.wav")
        spoken_at = time.monotonic() + speech_ms / 1000  # when "Stop." begins (paplay starts later)
        started_at, _ = await run.wait_for(r"User started speaking", timeout=20)
        await asyncio.wait_for(asyncio.to_thread(player.wait), 20)
        await run.wait_for(r"Agent Audio Response: Okay, I will stop\.", timeout=30)
        await finish(run)
        stopped = story_stop(speaker, started_at - 0.2)
    barge_in_ms = (speaker.arrival_time(stopped) - spoken_at) * 1000
    print(
        f"double talk: the speaker went silent {barge_in_ms:.0f} ms after the user began "
        f"({underruns(run)} output underruns)"
    )
    assert 0 < barge_in_ms <= BARGE_IN_BOUND_MS, barge_in_ms
    log = next((tmp_path / "logs").glob("session_*.log")).read_text(encoding="utf-8")
    assert "User Input: Stop." in log
