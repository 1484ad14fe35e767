"""``--record``: a stereo 24 kHz WAV, left the microphone as sent, right the agent as played (cut
at the barge-in), both on one timeline; valid after SIGTERM and after a write failure."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import wave
from pathlib import Path

import numpy as np
from pipecat.frames.frames import LLMFullResponseEndFrame, TTSAudioRawFrame

from localserver.speak import speak_to_wav
from processors.frames import AgentWords
from tests.support.audio import find, matching_run, read_wav, write_wav
from tests.support.local_session import local_session
from tests.support.script_run import run_to_end, script, send_signal

RATE = 24000
LOUD = 300


def speech(tmp: Path, text: str, name: str) -> bytes:
    speak_to_wav(text, tmp / name, pad_ms=0)
    with wave.open(str(tmp / name), "rb") as w:
        return w.readframes(w.getnframes())


def stereo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        frames = w.getnframes()
        data = np.frombuffer(w.readframes(frames), dtype="<i2").reshape(-1, 2)
    assert len(data) == frames, "the header promises more than the file holds"
    return data[:, 0].copy(), data[:, 1].copy()


def recording(mic: Path, out_wav: str) -> list[str]:
    """The default script against the embedded server, recording to conv.wav (cwd-relative)."""
    argv = ["-m", "pipelines.agent", "--local", "--plain", "--input-wav", str(mic)]
    return [*argv, "--output-wav", out_wav, "--record", "conv.wav", "--log-dir", "logs"]


def answered_stop(frames: list) -> bool:
    """The answer to 'Stop.' is over: its words came, then the end of its response, so all of
    its audio is queued for the speaker (its words alone may come before its audio does, and
    waiting for the speaker to drain then could end the session before the answer played)."""
    said = next(
        (k for k, f in enumerate(frames) if isinstance(f, AgentWords) and "stop" in f.text), None
    )
    return said is not None and any(isinstance(f, LLMFullResponseEndFrame) for f in frames[said:])


def loud(x: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.abs(x.astype(np.int32)) > LOUD)


def answers(frames: list[TTSAudioRawFrame]) -> list[bytes]:
    """The audio the service sent, one ``bytes`` per answer (response item), in order."""
    sent: dict[str, bytearray] = {}
    for f in frames:
        sent.setdefault(f.context_id or "", bytearray()).extend(f.audio)
    return [bytes(pcm) for pcm in sent.values()]


def audible(pcm: bytes) -> bytes:
    """``pcm`` from its first loud sample on (a leading silence would be found anywhere)."""
    return pcm[2 * int(loud(np.frombuffer(pcm, np.int16))[0]) :]


def played(heard: np.ndarray, sent: bytes) -> bytes:
    """What the speaker played of ``sent`` (audible from its start): up to where it was cut."""
    pcm = audible(sent)
    at = find(heard, pcm)
    assert at >= 0, "the story never reached the speaker"
    return pcm[: 2 * matching_run(heard, at, pcm)]


async def test_recording_holds_question_left_and_answer_as_heard_right_on_one_timeline(
    tmp_path: Path,
) -> None:
    story, stop = (
        speech(tmp_path, "Tell me a story.", "story.wav"),
        speech(tmp_path, "Stop.", "stop.wav"),
    )
    gap = bytes(2 * RATE * 4)
    mic = write_wav(
        tmp_path / "in.wav", bytes(2 * RATE) + story + gap + stop + bytes(2 * RATE * 30)
    )
    record = tmp_path / "conv.wav"
    async with local_session(tmp_path, ["--record", str(record)], input_wav=mic) as s:
        await s.watch.wait_for(answered_stop, 60)
        await s.app.output.playback.wait_drained(10)
    left, right = stereo(record)

    # Left: the microphone exactly as sent, at its place (1 s in, within one 20 ms chunk).
    at = find(left, story)
    assert at >= 0 and matching_run(left, at, story) == len(story) // 2
    stop_at = find(left, stop)
    assert stop_at > at and abs((stop_at - at) - (len(story) + len(gap)) // 2) <= RATE // 50

    # Right: the speaker's audio, sample for sample as out.wav heard it, after the question: the
    # story as far as it played, cut at the barge-in, then the whole answer to 'Stop.'. The two
    # are told apart by what the service sent (each answer's audio frames carry its item id), not
    # by the pause between them: that pause is the barge-in's reaction time and shrinks on a
    # loaded machine.
    story_sent, answer_sent = answers(s.watch.of_type(TTSAudioRawFrame))
    heard, _ = read_wav(tmp_path / "out.wav")
    story_heard = played(heard, story_sent)
    answer = audible(answer_sent)
    start = find(right, story_heard)
    assert start > at + len(story) // 2, "the answer is recorded before the question ended"
    assert matching_run(right, start, story_heard) == len(story_heard) // 2, (
        "the story is not what was played"
    )
    # Cut at the barge-in: the story (15 s long) stops after 'Stop.' begins on the left, as soon
    # as the server's VAD has heard it (bounded loosely: the server runs in this process, on a
    # machine running other tests; the story would go on for another 10 s).
    story_end = start + len(story_heard) // 2
    assert stop_at < story_end < stop_at + 3 * RATE, (stop_at / RATE, story_end / RATE)
    # Nothing from the agent on the right before the story; the answer to 'Stop.' follows it,
    # whole and as played.
    assert loud(right[:start])[:1].size == 0
    answer_at = find(right, answer)
    assert answer_at >= story_end, (answer_at / RATE, story_end / RATE)
    assert matching_run(right, answer_at, answer) == len(answer) // 2, "the answer is cut short"
    assert find(heard, answer) >= 0, "the answer recorded is not the one played"


async def test_recording_survives_sigterm_with_a_valid_header(
    tmp_path: Path, script_env: dict[str, str]
) -> None:
    mic = write_wav(
        tmp_path / "in.wav",
        bytes(2 * RATE) + speech(tmp_path, "Tell me a story.", "s.wav") + bytes(2 * RATE * 30),
    )
    async with script(
        *recording(mic, "out.wav"),
        cwd=tmp_path,
        env=script_env,
    ) as s:

        async def story_playing() -> None:  # 7 s on file: 1 s silence, question, VAD, story
            while (
                (tmp_path / "conv.wav").stat().st_size < 44 + 4 * RATE * 7
                if (tmp_path / "conv.wav").exists()
                else True
            ):
                assert s.proc.returncode is None, "the script ended early"
                await asyncio.sleep(0.05)

        await asyncio.wait_for(story_playing(), 60)
        send_signal(s.proc, signal.SIGTERM)
        await s.wait(20)
    assert "Traceback" not in s.stderr
    left, right = stereo(tmp_path / "conv.wav")
    assert loud(left).size > RATE // 2, "the question is missing from the recording"
    assert loud(right).size > RATE // 2, "the story is missing from the recording"
    assert loud(right)[0] > loud(left)[-1], "the answer is recorded before the question"


async def test_a_recording_cut_short_by_the_disk_keeps_a_valid_file_and_says_so(
    tmp_path: Path, script_env: dict[str, str]
) -> None:
    mic = write_wav(
        tmp_path / "in.wav",
        bytes(2 * RATE)
        + speech(tmp_path, "What is the capital of France?", "q.wav")
        + bytes(2 * RATE),
    )
    limit = 200_000  # about 2 s of stereo; the logs stay below it

    def limited() -> None:  # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    run = await run_to_end(
        *recording(mic, os.devnull),
        cwd=tmp_path,
        env=script_env,
        preexec_fn=limited,
        timeout=60,
    )
    assert run.code == 1, run.stderr
    # One error line (the nanobind lines some runs print at interpreter exit are not ours).
    (line,) = [x for x in run.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: recording 'conv.wav' stopped (File too large): the first "), line
    left, _ = stereo(tmp_path / "conv.wav")
    assert 44 + 4 * len(left) == (tmp_path / "conv.wav").stat().st_size > limit - 4
    assert (
        "Agent Audio Response: The capital of France is Paris."
        in next((tmp_path / "logs").glob("session_*.log")).read_text()
    )
