"""The local server's client echo reference: stereo input is read as (microphone, reference),
the reference's echo is removed from the microphone (an agent answer heard back through a
speaker-to-microphone path: 40 ms, -6 dB, one reflection) while the user talking over it is kept,
and invalid echo settings get the real service's error codes."""

from __future__ import annotations

import numpy as np
from ls_client import Client

from localserver.brain import STORY
from localserver.echo_canceller import EchoCanceller
from localserver.server import LocalServer
from localserver.tts import synthesize

RATE = 24000


def echo_path(played: np.ndarray) -> np.ndarray:
    """What a laptop's microphone picks up of its speaker: 40 ms late, -6 dB, plus a reflection."""
    delay = int(0.040 * RATE)
    out = np.zeros(len(played) + delay + 400)
    out[delay : delay + len(played)] += 0.5 * played
    out[delay + 400 : delay + 400 + len(played)] += 0.15 * played
    return out[: len(played)]


USER = synthesize("Stop.", RATE).pcm.astype(np.float64)


def scene(user_at_s: float | None) -> tuple[np.ndarray, np.ndarray, int]:
    """(microphone, reference, where the user starts) with the story playing from 0.5 s."""
    story = synthesize(STORY[:120], RATE).pcm.astype(np.float64)
    reference = np.concatenate([np.zeros(RATE // 2), story, np.zeros(RATE)])
    mic = echo_path(reference)
    at = -1
    if user_at_s is not None:
        at = int(user_at_s * RATE)
        mic[at : at + len(USER)] += USER
    mic += np.random.default_rng(3).normal(0, 8, len(mic))
    return np.clip(mic, -32768, 32767).astype(np.int16), reference.astype(np.int16), at


def test_the_canceller_removes_the_echo_and_keeps_the_user() -> None:
    mic, ref, at = scene(user_at_s=4.0)
    aec = EchoCanceller()
    out = np.concatenate(
        [aec.process(mic[i : i + 960], ref[i : i + 960]) for i in range(0, len(mic), 960)]
    )

    def power(x: np.ndarray) -> float:
        return float(np.mean(x.astype(np.float64) ** 2))

    echo_only = slice(int(1.5 * RATE), at)
    erle_db = 10 * np.log10(power(mic[echo_only]) / power(out[echo_only]))
    assert erle_db > 15, erle_db
    heard = out[at : at + len(USER) + 512].astype(np.float64)  # the output lags by < 1 block
    corr = np.correlate(heard, USER, "valid")
    lag = int(np.argmax(corr))
    similarity = corr[lag] / (np.linalg.norm(USER) * np.linalg.norm(heard[lag : lag + len(USER)]))
    assert similarity > 0.9, similarity


async def _speech_starts(
    server: LocalServer, stereo: bool, mic: np.ndarray, ref: np.ndarray
) -> list[int]:
    """Where the server's VAD started user turns in ``mic`` (with ``ref`` as the client echo
    reference when ``stereo``)."""
    client = await Client.open(server.url)
    await client.expect("session.created")
    session: dict = {"turn_detection": {"type": "server_vad", "create_response": False}}
    if stereo:
        session["input_audio_echo_cancellation"] = {
            "type": "server_echo_cancellation",
            "reference_source": "client",
            "channels": 2,
        }
    await client.send({"type": "session.update", "session": session})
    await client.expect("session.updated")
    audio = np.column_stack([mic, ref]).reshape(-1) if stereo else mic
    await client.send_audio(audio, rate=RATE * (2 if stereo else 1))
    await client.alive("end")
    await client.close()
    return [e["audio_start_ms"] for e in client.seen("input_audio_buffer.speech_started")]


async def test_with_a_client_reference_the_answer_no_longer_interrupts_itself(
    server: LocalServer,
) -> None:
    mic, ref, _ = scene(user_at_s=None)
    assert await _speech_starts(server, False, mic, ref), (
        "without a reference the echo starts a turn"
    )
    assert await _speech_starts(server, True, mic, ref) == []


async def test_the_user_still_interrupts_over_the_echo(server: LocalServer) -> None:
    mic, ref, at = scene(user_at_s=4.0)
    starts = await _speech_starts(server, True, mic, ref)
    user_ms = at * 1000 // RATE
    assert len(starts) == 1 and user_ms - 500 < starts[0] < user_ms + 300, (starts, user_ms)


async def test_stereo_input_is_heard_on_channel_0(server: LocalServer, utterance) -> None:
    """With a client reference the input is stereo: the question on channel 0 is recognised
    (read as mono, the interleaved samples would be noise at half speed)."""
    question = utterance("What time is it?")
    client = await Client.open(server.url)
    await client.expect("session.created")
    await client.send(
        {
            "type": "session.update",
            "session": {
                "input_audio_transcription": {"model": "azure-speech"},
                "turn_detection": {"type": "server_vad", "create_response": False},
                "input_audio_echo_cancellation": {
                    "type": "server_echo_cancellation",
                    "reference_source": "client",
                    "channels": 2,
                },
            },
        }
    )
    await client.expect("session.updated")
    quiet = np.zeros(len(question.pcm), np.int16)
    await client.send_audio(np.column_stack([question.pcm, quiet]).reshape(-1), rate=2 * RATE)
    heard = await client.expect("conversation.item.input_audio_transcription.completed")
    assert heard["transcript"] == "What time is it?"
    stopped = client.seen("input_audio_buffer.speech_stopped")[0]
    assert abs(stopped["audio_end_ms"] - question.end_ms) < 300  # ms of the session's timeline
    await client.close()


async def test_invalid_echo_settings_are_refused_with_the_services_codes(
    server: LocalServer,
) -> None:
    client = await Client.open(server.url)
    await client.expect("session.created")
    for echo, code in (
        ({"reference_source": "server", "channels": 2}, "invalid_ec_channels_requires_client"),
        ({"reference_source": "client", "channels": 1}, "invalid_ec_reference_channels"),
    ):
        await client.send(
            {"type": "session.update", "session": {"input_audio_echo_cancellation": echo}}
        )
        error = await client.expect("error")
        assert error["error"]["code"] == code
    await client.close()


async def test_a_shift_of_the_echo_path_mid_answer_does_not_start_a_turn(
    server: LocalServer,
) -> None:
    """The speaker plays 10 ms of silence the client never counted (an output underrun, seen on
    the PulseAudio rig): from then on the echo comes 10 ms later than the reference says. The
    canceller must learn the new path instead of taking the echo for the user talking."""
    story = synthesize(STORY[:200], RATE).pcm.astype(np.float64)
    reference = np.concatenate([np.zeros(RATE // 2), story, np.zeros(RATE)])
    cut, gap = 3 * RATE, RATE // 100
    played = np.concatenate([reference[:cut], np.zeros(gap), reference[cut:-gap]])
    mic = echo_path(played) + np.random.default_rng(5).normal(0, 8, len(played))
    mic = np.clip(mic, -32768, 32767).astype(np.int16)
    assert await _speech_starts(server, True, mic, reference.astype(np.int16)) == []
