"""The input side of one local-server session: the client's audio (any input format/rate) is
decoded, resampled to 16 kHz, run through the VAD and streamed into the recogniser while the user
speaks. Produces turn signals (speech started / speech stopped + transcript / committed) on the
input-audio timeline in milliseconds since the session's first audio.

Synchronous and not thread-safe: a session drives one instance from one worker at a time
(``asyncio.to_thread``), so the event loop never runs VAD or recognition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soxr

from localserver.codecs import decode
from localserver.echo_canceller import EchoCanceller
from localserver.played_record import PlayedRecord
from localserver.session_config import VadSettings
from localserver.stt import POOL, Recognizer
from localserver.vad import RATE, VoiceActivityDetector

_SAMPLES_PER_MS = RATE // 1000
_TAIL_MS = 200  # silence after the speech end still fed to the recogniser
MIN_COMMIT_MS = 100
# How late the client may play what the server sent, and the echo reach the microphone, when
# the server's own record is the echo reference (playback buffer, devices, capture chunks).
SERVER_ECHO_DELAY_MS = 600


@dataclass(frozen=True)
class VadSpeechStarted:
    """VAD found speech; ``audio_start_ms`` includes the prefix padding."""

    audio_start_ms: int


@dataclass(frozen=True)
class VadSpeechStopped:
    """VAD found the end of speech; the turn is committed with this transcript."""

    audio_start_ms: int
    audio_end_ms: int
    transcript: str


@dataclass(frozen=True)
class Committed:
    """A client ``input_audio_buffer.commit`` of ``duration_ms`` of audio."""

    duration_ms: int
    transcript: str


class InputAudio:
    """Audio in -> turn signals, for one session."""

    def __init__(
        self,
        fmt: str,
        rate: int,
        vad: VadSettings | None,
        phrases: Sequence[str] | None,
        echo: str | None = None,
    ) -> None:
        self.fmt, self.rate = fmt, rate
        # echo "client": stereo, the client's echo reference on channel 1, removed from channel
        # 0 first; "server": the server's own record of what it sent stands in for it.
        self._echo = EchoCanceller() if echo == "client" else None
        self.played: PlayedRecord | None = None
        if echo == "server":
            self.played = PlayedRecord(rate)
            self._echo = EchoCanceller(max_delay=rate * SERVER_ECHO_DELAY_MS // 1000)
        self._in_samples = 0  # input samples (per channel) received at the input's rate
        self._resampler = (
            soxr.ResampleStream(rate, RATE, 1, dtype="int16") if rate != RATE else None
        )
        self._phrases = list(phrases) if phrases else None
        self._recognizer: Recognizer | None = None
        self._buf = bytearray()  # 16 kHz int16 since sample index self._buf_start
        self._buf_start = 0
        self._total = 0  # 16 kHz samples received
        self._commit_from = 0  # sample index where the uncommitted buffer starts
        self._utt_start = 0
        self._fed = 0
        self.configure(vad)

    def configure(self, vad: VadSettings | None) -> None:
        """Switch turn detection (None = manual turns); any speech in progress is dropped."""
        self.vad = vad
        self._detector = (
            VoiceActivityDetector(vad.threshold, vad.min_speech_ms, vad.silence_duration_ms)
            if vad
            else None
        )
        if self._detector:
            self._detector.frames = self._total // (RATE // 50)

    def set_phrases(self, phrases: Sequence[str] | None) -> None:
        """Change the recognition phrase list (takes effect at the next utterance)."""
        new = list(phrases) if phrases else None
        if new != self._phrases:
            self.close()
            self._phrases = new

    @property
    def recognizer(self) -> Recognizer:
        """The session's recogniser, built on first use."""
        if self._recognizer is None:
            self._recognizer = POOL.acquire(self._phrases)
        return self._recognizer

    def close(self) -> None:
        """Hand the recogniser back to the process-wide pool."""
        if self._recognizer is not None:
            POOL.release(self._recognizer)
            self._recognizer = None

    @property
    def position_ms(self) -> int:
        """Milliseconds of input audio received so far."""
        return self._total // _SAMPLES_PER_MS

    @property
    def buffered_ms(self) -> int:
        """Milliseconds of uncommitted audio."""
        return (self._total - self._commit_from) // _SAMPLES_PER_MS

    def _slice(self, start: int, end: int) -> np.ndarray:
        start, end = max(start, self._buf_start), min(end, self._total)
        if end <= start:
            return np.zeros(0, np.int16)
        a, b = (start - self._buf_start) * 2, (end - self._buf_start) * 2
        return np.frombuffer(bytes(self._buf[a:b]), np.int16)

    def _trim(self, keep_from: int) -> None:
        keep_from = min(max(keep_from, self._buf_start), self._total)
        del self._buf[: (keep_from - self._buf_start) * 2]
        self._buf_start = keep_from

    @property
    def samples_in(self) -> int:
        """Input samples (per channel, at the input's rate) taken so far, while this input keeps
        a played record (server echo cancellation): where what is sent now lands on its input."""
        return self._in_samples

    def process(self, data: bytes) -> list[VadSpeechStarted | VadSpeechStopped]:
        """Feed wire audio bytes; return the turn signals they complete."""
        pcm = decode(data, self.fmt)
        if self._echo is not None and self.played is not None:
            reference = self.played.take(self._in_samples, len(pcm))
            self._in_samples += len(pcm)
            pcm = self._echo.process(pcm, reference)
        elif self._echo is not None:
            frames = pcm[: len(pcm) - len(pcm) % 2].reshape(-1, 2)
            pcm = self._echo.process(frames[:, 0], frames[:, 1])
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(pcm)
        self._buf += pcm.astype(np.int16).tobytes()
        self._total += len(pcm)
        if self._detector is None or self.vad is None:
            return []
        signals: list[VadSpeechStarted | VadSpeechStopped] = []
        for event in self._detector.process(pcm):
            at = event.ms * _SAMPLES_PER_MS
            if event.kind == "start":
                pad = self.vad.prefix_padding_ms * _SAMPLES_PER_MS
                self._utt_start = max(at - pad, self._commit_from, self._buf_start, 0)
                self.recognizer.start()
                self._fed = self._utt_start
                signals.append(VadSpeechStarted(self._utt_start // _SAMPLES_PER_MS))
            else:
                tail_end = min(at + _TAIL_MS * _SAMPLES_PER_MS, self._total)
                self.recognizer.feed(self._slice(self._fed, tail_end))
                transcript = self.recognizer.finish()
                start_ms = self._utt_start // _SAMPLES_PER_MS
                signals.append(VadSpeechStopped(start_ms, event.ms, transcript))
                self._commit_from = at
        if self._detector.in_speech:
            self.recognizer.feed(self._slice(self._fed, self._total))
            self._fed = self._total
        else:
            window = (self.vad.prefix_padding_ms + self.vad.min_speech_ms + 1000) * _SAMPLES_PER_MS
            self._trim(self._total - window)
            self._commit_from = max(self._commit_from, self._buf_start)
        return signals

    def commit(self) -> Committed | None:
        """Commit the uncommitted audio as a user turn (None when under 100 ms)."""
        if self.buffered_ms < MIN_COMMIT_MS:
            return None
        duration = self.buffered_ms
        if self._detector is not None and self._detector.in_speech:
            self.recognizer.feed(self._slice(self._fed, self._total))
            transcript = self.recognizer.finish()
            self._detector.reset()
        else:
            transcript = self.recognizer.transcribe(self._slice(self._commit_from, self._total))
        self._commit_from = self._total
        self._trim(self._total)
        return Committed(duration, transcript)

    def clear(self) -> None:
        """Drop the uncommitted audio and any speech in progress."""
        if self._detector is not None and self._detector.in_speech:
            self.recognizer.finish()
            self._detector.reset()
        self._commit_from = self._total
        self._trim(self._total)
