"""Offline input transcription for the local server: pocketsphinx 5 with the en-us model shipped
in its wheel, at 16 kHz.

With a phrase list (the session's ``input_audio_transcription.phrase_list``, or the agent's known
questions) recognition is narrowed to those phrases by a JSGF grammar — accurate and cheap (about
0.01 CPU-s per audio-s). Without one it falls back to the bundled open-vocabulary language model
(about 0.15 CPU-s per audio-s, and far less accurate on synthetic speech). A recognised phrase is
returned as written in the list (capitals, punctuation). Blocking: callers run it in a thread.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np
from pocketsphinx import Decoder

_GRAMMAR = "phrases"


def _dither_table(n: int = 16000) -> np.ndarray:
    """One second of fixed white noise with a standard deviation of about 8 (-72 dBFS, the
    floor of a quiet real line), from a hash of the sample index (numpy.random would do, but a
    Generator alive at exit made nanobind report soxr objects as leaked)."""
    x = np.arange(n, dtype=np.uint32) * np.uint32(0x9E3779B1)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x85EBCA77)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    x ^= x >> np.uint32(16)
    return (x / 2.0**32 - 0.5) * 28.0


_DITHER = _dither_table()


def normalise(text: str) -> str:
    """Lower-case words without punctuation (the form pocketsphinx returns)."""
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


class Recognizer:
    """A streaming recogniser: ``start()``, ``feed()`` 16 kHz int16 audio, ``finish()`` -> text."""

    def __init__(self, phrases: Sequence[str] | None = None) -> None:
        self.requested = tuple(phrases or ())
        self.phrases = [p for p in (phrases or []) if normalise(p)]
        if self.phrases:
            self._decoder = Decoder(samprate=16000, lm=None, loglevel="FATAL")
            known = self._in_dictionary(self.phrases)
            if known:
                alternatives = " | ".join(sorted({normalise(p) for p in known}))
                self._decoder.add_jsgf_string(
                    _GRAMMAR, f"#JSGF V1.0;\ngrammar {_GRAMMAR};\npublic <s> = {alternatives};\n"
                )
                self._decoder.activate_search(_GRAMMAR)
                self.mode = "grammar"
            else:  # nothing pronounceable: open vocabulary after all
                self._decoder = Decoder(samprate=16000, loglevel="FATAL")
                self.mode = "lm"
        else:
            self._decoder = Decoder(samprate=16000, loglevel="FATAL")
            self.mode = "lm"
        self._written = {normalise(p): p.strip() for p in self.phrases}
        self._active = False
        self._dithered = 0  # samples fed since the recogniser was made (the dither's phase)

    def _in_dictionary(self, phrases: Sequence[str]) -> list[str]:
        return [
            p for p in phrases if all(self._decoder.lookup_word(w) for w in normalise(p).split())
        ]

    def start(self) -> None:
        """Begin an utterance (ends any unfinished one)."""
        if self._active:
            self._decoder.end_utt()
        self._decoder.start_utt()
        self._active = True

    def feed(self, pcm: np.ndarray) -> None:
        """Add 16 kHz int16 audio to the current utterance."""
        if not self._active:
            self.start()
        if len(pcm):
            # Digital silence (synthetic speech, a muted line) throws pocketsphinx's cepstral mean
            # off: "What is the weather in Paris?" came out as "What is the weather in". A faint
            # noise floor, as every real microphone has, keeps it on track.
            at = self._dithered % len(_DITHER)
            self._dithered += len(pcm)
            noise = np.resize(np.roll(_DITHER, -at), len(pcm))
            noisy = pcm + noise
            data = np.clip(noisy, -32768, 32767).astype(np.int16)
            self._decoder.process_raw(data.tobytes(), False, False)

    def finish(self) -> str:
        """End the utterance and return its transcript ("" when nothing was recognised)."""
        if not self._active:
            return ""
        self._decoder.end_utt()
        self._active = False
        hyp = self._decoder.hyp()
        words = " ".join(w for w in (hyp.hypstr if hyp else "").split() if not w.startswith("<"))
        if not words:
            return ""
        if words in self._written:
            return self._written[words]
        snapped = self._snap(words.split())
        if snapped is not None:
            return snapped
        return words[0].upper() + words[1:]

    def _snap(self, heard: list[str]) -> str | None:
        """A grammar search that ends before the phrase's final state returns a prefix of it
        ("what time" for "what time is it"): accept a prefix covering at least half of exactly
        one phrase."""
        matches = [
            written
            for key, written in self._written.items()
            if key.split()[: len(heard)] == heard and 2 * len(heard) >= len(key.split())
        ]
        return matches[0] if len(matches) == 1 else None

    def transcribe(self, pcm: np.ndarray) -> str:
        """Recognise one whole utterance."""
        self.start()
        for i in range(0, len(pcm), 320):
            self.feed(pcm[i : i + 320])
        return self.finish()


class RecognizerPool:
    """Process-wide reuse of recognisers (building one costs 0.1-0.35 s of CPU), keyed by the
    phrase list. Thread-safe; a recogniser is used by one session at a time."""

    def __init__(self, per_key: int = 64) -> None:
        self._idle: dict[tuple[str, ...], list[Recognizer]] = {}
        self._lock = threading.Lock()
        self._per_key = per_key

    def acquire(self, phrases: Sequence[str] | None) -> Recognizer:
        """An idle recogniser for ``phrases``, or a new one."""
        key = tuple(phrases or ())
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop()
        return Recognizer(phrases)

    def release(self, recognizer: Recognizer) -> None:
        """Give a recogniser back (its unfinished utterance is dropped)."""
        recognizer.finish()
        with self._lock:
            idle = self._idle.setdefault(tuple(recognizer.requested), [])
            if len(idle) < self._per_key:
                idle.append(recognizer)


POOL = RecognizerPool()
