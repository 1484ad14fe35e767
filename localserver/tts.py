"""Offline speech synthesis for the local server: eSpeak NG (from the ``espeakng-loader`` wheel)
through ctypes, resampled with soxr to the session's output rate, with word timings.

libespeak-ng is a process-wide, non-thread-safe singleton: one engine per process, every call
serialised by a lock. ``espeak_Initialize`` always gets the wheel's data path, because with its
compiled-in path the library calls ``exit()`` when the data is missing.
Synthesis is blocking (about 1 ms per second of speech); async callers run it in a thread
(:func:`synthesize_async`).
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from dataclasses import dataclass, field

import numpy as np
import soxr

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1


class _EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


@dataclass(frozen=True)
class SpokenWord:
    """One spoken word: its text and where it sits in the synthesized audio (ms)."""

    text: str
    offset_ms: int
    duration_ms: int


@dataclass
class Speech:
    """Synthesized speech: mono int16 PCM at ``rate`` Hz plus word timings."""

    pcm: np.ndarray
    rate: int
    words: list[SpokenWord] = field(default_factory=list)

    @property
    def duration_ms(self) -> int:
        """Length of the audio in milliseconds."""
        return int(len(self.pcm) * 1000 / self.rate)


class _Engine:
    """The single libespeak-ng instance of this process."""

    def __init__(self, voice: str = "en-us", rate_wpm: int = 175) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self._lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        data_path = espeakng_loader.get_data_path().encode()
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if self.rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed: {self.rate}")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int]] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference for the C side
        lib.espeak_SetSynthCallback(self._callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"eSpeak voice {voice!r} not found")
        lib.espeak_SetParameter(_ESPEAK_RATE, rate_wpm, 0)

    def _on_audio(self, wav: ctypes.Array, numsamples: int, events: ctypes.Array) -> int:
        if numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_WORD:
                self._events.append((ev.text_position, ev.length, ev.audio_position))
            i += 1
        return 0

    def synth(self, text: str) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """Speak ``text``; return (int16 PCM at the engine rate, word events)."""
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        err = self._lib.espeak_Synth(data, len(data), 0, 1, 0, _ESPEAK_CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth error {err}")
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return pcm.astype(np.int16, copy=False), list(self._events)


_lock = threading.Lock()
_engine: _Engine | None = None


def _get_engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def _word_timings(text: str, events: list[tuple[int, int, int]], total_ms: int) -> list[SpokenWord]:
    """Turn eSpeak word events (1-based char position, length, start ms) into word timings."""
    starts = sorted(events, key=lambda e: e[2])
    words: list[SpokenWord] = []
    for i, (pos, length, start_ms) in enumerate(starts):
        word = text[max(pos - 1, 0) : max(pos - 1, 0) + length].strip()
        if not word:
            continue
        end_ms = starts[i + 1][2] if i + 1 < len(starts) else total_ms
        words.append(SpokenWord(word, start_ms, max(end_ms - start_ms, 0)))
    return words


def synthesize(text: str, rate: int = 24000) -> Speech:
    """Speak ``text`` with eSpeak NG and return mono int16 PCM at ``rate`` Hz with word timings.

    Blocking; serialised across threads (the library is a process-wide singleton).
    """
    with _lock:
        engine = _get_engine()
        pcm, events = engine.synth(text)
        engine_rate = engine.rate
    total_ms = int(len(pcm) * 1000 / engine_rate)
    out = soxr.resample(pcm, engine_rate, rate) if rate != engine_rate else pcm
    return Speech(np.asarray(out, dtype=np.int16), rate, _word_timings(text, events, total_ms))


async def synthesize_async(text: str, rate: int = 24000) -> Speech:
    """:func:`synthesize` in a worker thread, so the event loop never waits on eSpeak."""
    return await asyncio.to_thread(synthesize, text, rate)
