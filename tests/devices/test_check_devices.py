"""``--check-devices`` on the PulseAudio rig: a microphone that hears speech, and one that hears
nothing; what was recorded is played back on the speaker."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from localserver.speak import speak_to_wav
from tests.support.script_run import script


async def run_check(env: dict[str, str], cwd: Path, feed=None) -> tuple[int, str, str]:
    async with script("-m", "pipelines.agent", "--check-devices", cwd=cwd, env=env) as s:
        await s.wait_for("", timeout=20)  # its first line: recording has started
        player = feed() if feed is not None else None
        code = await s.wait(20)
    if player is not None:
        player.wait(timeout=10)
    return code, s.stdout, s.stderr


async def test_check_devices_hears_speech_and_plays_it_back(
    pulse, speaker, script_env: dict[str, str], tmp_path: Path
) -> None:
    speak_to_wav("What is the capital of France?", tmp_path / "q.wav", pad_ms=0)
    code, out, err = await run_check(
        {**script_env, **pulse.env}, tmp_path, lambda: pulse.play_into_mic(tmp_path / "q.wav")
    )
    assert code == 0, out + err
    assert out.splitlines()[0].startswith("Recording 3 s from '")
    verdict = out.splitlines()[-1]
    assert verdict.startswith("Microphone OK: it heard something (peak -"), verdict
    assert float(verdict.split("peak ")[1].split(" dBFS")[0]) > -30
    heard = speaker.samples()
    assert np.count_nonzero(np.abs(heard.astype(np.int32)) > 1000) > 24000 // 2, (
        "nothing was played back"
    )


async def test_check_devices_says_when_the_microphone_hears_nothing(
    pulse, speaker, script_env: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = await run_check({**script_env, **pulse.env}, tmp_path)
    assert code == 1, out + err
    verdict = out.splitlines()[-1]
    assert verdict.startswith("The microphone heard nothing (peak -∞ dBFS): check that '"), verdict
    assert "Traceback" not in err and "error:" not in err, err
