"""The default script on real PyAudio devices (a private PulseAudio), no WAV flags: a recorded
turn plays whole at the speaker, the barge-in silences it within one period plus PulseAudio's
own latency, and no late audio of the interrupted answer follows; the same with
``--audio-process`` (the streams in a lean child process, which is gone when the script ends),
also while a thread in the script's process holds the GIL 30 ms of every 40 ms and the first
answer's audio arrives at once: it is heard whole, without a gap."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.devices.processes import alive, audio_children
from tests.support.audio import contains_any_chunk, find, last_heard, matching_run
from tests.support.replay_server import ReplayServer
from tests.support.scenarios import barge_in_scenario
from tests.support.script_run import script

PERIOD_MS = 10  # the output transport's default period
# what PortAudio keeps queued in PulseAudio (about three periods) plus the pipe sink's block
HOST_LATENCY_MS = 80
# The GIL holder delays each turn of the script's event loop by up to one 30 ms hold, and the
# barge-in takes a few turns to reach the output: it must still stop the answer well before the
# 800 ms it had left (bench/transports/bargein.py measures how fast).
GIL_STOP_BOUND_MS = 400

# Started in the script's own process through Python's sitecustomize hook; the variable is
# removed at once, so the audio process (which inherits the environment) does not hold the GIL.
GIL_HOLDER = """
import os
if os.environ.pop("HOLD_GIL_FOR_TEST", None):
    import threading, time
    open(os.path.join(os.path.dirname(__file__), f"holding.{os.getpid()}"), "w").close()
    def hold():
        n = 100_000
        while True:  # calibrate one builtin call (sum over a range never releases the GIL)
            t = time.perf_counter(); sum(range(n)); took = time.perf_counter() - t
            if took > 0.015:
                n = int(n * 0.030 / took)
                break
            n *= 2
        while True:
            sum(range(n))  # ~30 ms holding the GIL
            time.sleep(0.010)
    threading.Thread(target=hold, name="gil-holder", daemon=True).start()
"""


def played_whole(heard, pcm: bytes) -> bool:
    start = find(heard, pcm)
    return start >= 0 and matching_run(heard, start, pcm) == len(pcm) // 2


@pytest.mark.parametrize(
    "flags, gil",
    [([], False), (["--audio-process"], False), (["--audio-process"], True)],
    ids=["in-process", "audio-process", "audio-process-gil-holder"],
)
async def test_default_script_on_pulseaudio_devices(
    pulse, speaker, script_env: dict[str, str], tmp_path: Path, flags: list[str], gil: bool
) -> None:
    # with the GIL holder, the first answer's audio arrives at once
    scenario = barge_in_scenario(speed=1000.0 if gil else 2.0)
    env = {**script_env, **pulse.env}
    if gil:
        hook = tmp_path / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(GIL_HOLDER)
        env["PYTHONPATH"] = f"{hook}{os.pathsep}{env['PYTHONPATH']}"
        env["HOLD_GIL_FOR_TEST"] = "1"
    async with (
        ReplayServer(scenario) as server,
        script(
            "-m",
            "pipelines.agent",
            "--endpoint",
            server.url,
            "--api-key",
            "K-pulse-1234",
            "--agent-id",
            "A",
            "--project-name",
            "P",
            "--agent-access-token",
            "T-pulse-5678",
            "--log-dir",
            str(tmp_path / "logs"),
            *flags,
            cwd=tmp_path,
            env=env,
            stdin=asyncio.subprocess.PIPE,
        ) as s,
    ):
        deadline = asyncio.get_running_loop().time() + 40
        while "script_done" not in (server.connections[0].marks if server.connections else {}):
            assert s.proc.returncode is None, s.stderr
            assert asyncio.get_running_loop().time() < deadline, "the conversation did not finish"
            await asyncio.sleep(0.05)
        children = audio_children(s.proc.pid)
        assert len(children) == (1 if flags else 0)
        # let the last answer play out: wait until the speaker played it whole (bounded)
        deadline = asyncio.get_running_loop().time() + 15
        while not played_whole(speaker.samples(), scenario.turn3.audio):
            if asyncio.get_running_loop().time() > deadline:
                break  # the assertions below say what is missing
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)  # and a little silence after it
        await s.write(b"q\n")
        code = await s.wait(20)
    assert code == 0, s.stderr
    if gil:  # the GIL holder ran in the script's process, and only there
        holders = [p.name for p in (tmp_path / "hook").glob("holding.*")]
        assert holders == [f"holding.{s.proc.pid}"]
    assert not audio_children(s.proc.pid) and not any(map(alive, children)), (
        "an audio process was left behind"
    )
    conn = server.connections[0]
    assert conn.close_code == 1000
    heard = speaker.samples()

    for turn in (scenario.turn1, scenario.turn3):
        start = find(heard, turn.audio)
        assert start >= 0, "an uninterrupted answer never reached the speaker"
        assert matching_run(heard, start, turn.audio) == len(turn.audio) // 2, (
            "an uninterrupted answer lost samples"
        )

    end2, heard2 = last_heard(heard, scenario.turn2.audio)
    assert end2 >= 0 and heard2 > 0, "the interrupted answer never reached the speaker"
    stopped_at = speaker.arrival_time(end2)
    stop_ms = (stopped_at - conn.marks["barge_in"]) * 1000
    print(f"speaker went silent {stop_ms:.1f} ms after speech_started was sent")
    bound = GIL_STOP_BOUND_MS if gil else PERIOD_MS + HOST_LATENCY_MS
    assert stop_ms <= bound, f"the interrupted answer went on for {stop_ms:.1f} ms"
    assert not contains_any_chunk(heard, scenario.late_audio), (
        "late audio of the interrupted answer was played"
    )
    # the truncate says what the device was handed: what was heard, plus at most what the abort
    # dropped from PulseAudio (the same with the audio process: counted across the processes)
    [truncate] = conn.of_type("conversation.item.truncate")
    # (with the GIL holder the deltas of the answer being interrupted, which arrive in real time,
    # reach the ring late: what the host holds at the abort varies more; seen: 111 ms)
    heard_ms = heard2 * 1000 // 24000
    slack = 2 * HOST_LATENCY_MS if gil else HOST_LATENCY_MS
    assert heard_ms - 1 <= truncate["audio_end_ms"] <= heard_ms + slack
    log = next((tmp_path / "logs").glob("session_*.log")).read_text(encoding="utf-8")
    assert f"Agent Audio Response: {scenario.turn3.agent_text}" in log
    assert "K-pulse-1234" not in s.stdout + s.stderr + log
