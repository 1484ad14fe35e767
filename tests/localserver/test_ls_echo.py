"""The local server's client echo reference: stereo input is read as (microphone, reference),
the reference's echo is removed from the microphone (an agent answer heard back through a
speaker-to-microphone path: 40 ms, -6 dB, one reflection) while the user talking over it is kept,
and invalid echo settings get the real service's error codes."""

from __future__ import annotations

import asyncio
import base64
import time

import numpy as np
import pytest
from ls_client import Client

from localserver.brain import STORY
from localserver.echo_canceller import EchoCanceller
from localserver.played_record import PlayedRecord
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


def test_an_echo_half_a_second_late_from_the_first_sample_is_found_and_removed() -> None:
    """The server's own record with a slow client: the answer plays from the input's first sample
    and comes back 500 ms late, beyond the filter's span. The bulk delay is found before the
    reference has a past that long; the filter's earlier blocks are then silence (the canceller
    raised a ValueError there: a block read from before the reference began)."""
    played = np.random.default_rng(1).normal(0, 3000, 4 * RATE)  # loud from its first sample
    late = RATE // 2
    mic = np.concatenate([np.zeros(late), 0.5 * played])[: len(played)]
    mic16, ref16 = mic.astype(np.int16), np.clip(played, -32768, 32767).astype(np.int16)
    aec = EchoCanceller(max_delay=RATE * 600 // 1000)  # as the server runs it on its own record
    out = np.concatenate(
        [aec.process(mic16[i : i + 480], ref16[i : i + 480]) for i in range(0, len(mic), 480)]
    )
    assert aec.initial_delay == late
    echo_only = slice(int(1.5 * RATE), len(mic))
    mic_power = np.mean(mic16[echo_only].astype(np.float64) ** 2)
    erle_db = 10 * np.log10(mic_power / (np.mean(out[echo_only].astype(np.float64) ** 2) + 1e-9))
    assert erle_db > 15, erle_db


async def _speech_starts(
    server: LocalServer, stereo: bool, mic: np.ndarray, ref: np.ndarray, **vad: float
) -> list[int]:
    """Where the server's VAD started user turns in ``mic`` (with ``ref`` as the client echo
    reference when ``stereo``)."""
    client = await Client.open(server.url)
    await client.expect("session.created")
    session: dict = {"turn_detection": {"type": "server_vad", "create_response": False, **vad}}
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


@pytest.mark.parametrize("gap_ms", [5, 10, 20])
async def test_a_shift_of_the_echo_path_mid_answer_does_not_start_a_turn(
    server: LocalServer, gap_ms: int
) -> None:
    """The speaker plays a few ms of silence the client never counted (an output underrun, or
    the rig's loopback running dry): from then on the echo comes later than the reference says.
    Until the canceller has learnt the new path its estimate is wrong (its error louder than the
    microphone itself); what it lets through must not start a turn, at the default script's VAD
    sensitivity (threshold 0.3, 80 ms of speech)."""
    story = synthesize(STORY[:200], RATE).pcm.astype(np.float64)
    reference = np.concatenate([np.zeros(RATE // 2), story, np.zeros(RATE)])
    cut, gap = 3 * RATE, RATE * gap_ms // 1000
    played = np.concatenate([reference[:cut], np.zeros(gap), reference[cut:-gap]])
    mic = echo_path(played) + np.random.default_rng(5).normal(0, 8, len(played))
    mic = np.clip(mic, -32768, 32767).astype(np.int16)
    starts = await _speech_starts(
        server, True, mic, reference.astype(np.int16), threshold=0.3, speech_duration_ms=80
    )
    assert starts == []


class SpeakerClient:
    """A client whose microphone hears its own speaker: what it receives plays ``latency_s``
    after the first delta arrived (a playback buffer), comes back through :func:`echo_path`,
    and the microphone streams in real time, 20 ms at a time, with the user's voice mixed in
    from ``user_at_s`` of the answer's playback."""

    def __init__(self, client: Client, latency_s: float, user_at_s: float | None = None) -> None:
        self.client, self.latency = client, latency_s
        self.user_at_s = user_at_s
        self.played = np.zeros(0)
        self.first_delta: float | None = None  # wall time of the answer's first audio
        self.started: list[float] = []  # seconds into the answer's playback, per speech_started
        self._noise = np.random.default_rng(5)  # the room's noise: the same in every run

    async def _listen(self) -> None:
        while True:
            event = await self.client._next(30)
            if event["type"] == "response.audio.delta":
                if self.first_delta is None:
                    self.first_delta = time.monotonic()
                pcm = np.frombuffer(base64.b64decode(event["delta"]), "<i2")
                self.played = np.concatenate([self.played, pcm])
            elif event["type"] == "input_audio_buffer.speech_started" and self.first_delta:
                self.started.append(time.monotonic() - self.first_delta - self.latency)

    def _mic(self, wall: float, n: int) -> np.ndarray:
        """``n`` microphone samples from wall time ``wall`` on."""
        noise = self._noise.normal(0, 8, n)
        if self.first_delta is None:
            return noise
        at = int(round((wall - self.first_delta - self.latency) * RATE))  # into the playback
        span = np.zeros(n + 2 * RATE // 10)
        lo, hi = max(at - RATE // 10, 0), max(at + n, 0)
        part = self.played[lo:hi]
        span[lo - (at - RATE // 10) : lo - (at - RATE // 10) + len(part)] = part
        mic = echo_path(span)[RATE // 10 : RATE // 10 + n] + noise
        if self.user_at_s is not None:
            start = at - int(self.user_at_s * RATE)
            if -n < start < len(USER):
                voice = np.zeros(n)
                s0, s1 = max(start, 0), min(start + n, len(USER))
                voice[s0 - start : s1 - start] = USER[s0:s1]
                mic += voice
        return mic

    async def run(self, seconds: float) -> list[float]:
        """Stream the microphone for ``seconds``; where turns started (s into the playback)."""
        listener = asyncio.create_task(self._listen())
        step, t0 = RATE // 50, time.monotonic()
        try:
            for k in range(int(seconds * 50)):
                await asyncio.sleep(max(t0 + k / 50 - time.monotonic(), 0))
                mic = np.clip(self._mic(t0 + k / 50, step), -32768, 32767).astype("<i2")
                await self.client.send_audio(mic, chunk_ms=20)
        finally:
            listener.cancel()
        return self.started


async def _story_on_speakers(
    server: LocalServer, echo: dict | None, user_at_s: float | None = None
) -> list[float]:
    client = await Client.open(server.url)
    await client.expect("session.created")
    session = {
        "turn_detection": {"type": "server_vad", "create_response": False},
        "input_audio_echo_cancellation": echo,
    }
    await client.send({"type": "session.update", "session": session})
    await client.expect("session.updated")
    await client.ask("Tell me a story.")
    speaker = SpeakerClient(client, latency_s=0.2, user_at_s=user_at_s)
    started = await speaker.run(seconds=6.0)
    await client.close()
    return started


async def test_server_echo_cancellation_without_a_reference_uses_what_the_server_sent(
    realtime_server: LocalServer,
) -> None:
    """``server_echo_cancellation`` with no client reference (the default script's
    ``--echo-reference server``): the server cancels the echo with its own record of what it
    sent, although the client plays it 200 ms late (beyond the filter's span: a bulk delay).
    Three sessions at once: without echo cancellation, with it, and with the user speaking."""
    server_ec = {"type": "server_echo_cancellation"}
    without, cancelled, user = await asyncio.gather(
        _story_on_speakers(realtime_server, None),
        _story_on_speakers(realtime_server, server_ec),
        _story_on_speakers(realtime_server, server_ec, user_at_s=3.0),
    )
    assert without, "without echo handling the echo starts a turn"
    assert cancelled == []
    assert len(user) == 1 and 3.0 < user[0] < 3.8, user


def test_the_servers_record_plays_what_it_sent_back_to_back_and_stops_when_told() -> None:
    record = PlayedRecord(24000)
    first, second = np.full(480, 100, np.int16), np.full(480, 200, np.int16)
    record.sent(1000, first, 24000)
    record.sent(1100, second, 24000)  # sent while the first still plays: it follows it
    assert np.array_equal(record.take(1000, 960), np.r_[np.full(480, 100), np.full(480, 200)])
    record.sent(5000, first, 24000)  # sent after the rest ran out: plays from where input is
    assert not record.take(1960, 3040).any()
    record.stop(5100)  # the client stopped playing (a barge-in)
    assert np.array_equal(record.take(5000, 480), np.r_[np.full(100, 100), np.zeros(380)])
    record.sent(6000, np.full(240, 300, np.int16), 12000)  # another rate: resampled
    assert abs(len(np.flatnonzero(record.take(6000, 960))) - 480) < 40


def test_a_microphone_that_hears_no_echo_is_left_alone_while_the_answer_plays() -> None:
    """The server's own record (no client reference) on a headset: no echo path, the user talks
    over the answer's start. Until its first guess (half a second of the answer) the canceller
    assumes an echo, as it must for the answer's first words; the guess finds nothing in the
    microphone that correlates with what was sent, so from then on the user's words pass
    untouched (they were cut by 6 dB, 20 dB in places: a spoken question went unrecognised)."""
    story = synthesize(STORY[:120], RATE).pcm.astype(np.float64)
    reference = np.concatenate([np.zeros(RATE // 2), story, np.zeros(RATE)])
    at = int(0.7 * RATE)
    mic = np.random.default_rng(5).normal(0, 8, len(reference))
    for start in (at, at + len(USER) + RATE // 4):  # two words, close together
        mic[start : start + len(USER)] += 4 * USER
    mic = np.clip(mic, -32768, 32767).astype(np.int16)
    aec = EchoCanceller(max_delay=RATE * 600 // 1000)  # as the server runs it on its own record
    ref = reference.astype(np.int16)
    out = np.concatenate(
        [aec.process(mic[i : i + 480], ref[i : i + 480]) for i in range(0, len(mic), 480)]
    )
    assert aec.no_echo_heard and aec.initial_delay is None
    second = at + len(USER) + RATE // 4  # the second word, after the first guess
    spoken = slice(second, second + len(USER))
    kept_db = 10 * np.log10(
        np.mean(out[spoken].astype(np.float64) ** 2) / np.mean(mic[spoken].astype(np.float64) ** 2)
    )
    assert kept_db > -1.0, f"the user's words were cut by {-kept_db:.1f} dB"
