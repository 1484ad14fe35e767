"""Server-side voice activity detection for the local server: webrtcvad on 20 ms frames at
16 kHz, gated by frame energy, with start/stop hysteresis (speech duration, silence duration)
on the session's input-audio timeline.

Mapping of ``turn_detection.threshold`` (0..1) onto the decision, per 20 ms frame:

* webrtcvad aggressiveness = ``min(3, int(threshold * 4))`` (0-0.24 -> 0, 0.25-0.49 -> 1,
  0.5-0.74 -> 2, 0.75-1 -> 3);
* and the frame's RMS level must reach ``-70 + 40 * threshold`` dBFS (0.5 -> -50 dBFS,
  1.0 -> -30 dBFS, 0 -> -70 dBFS).

A frame is speech when both say so. Speech starts after ``min_speech_ms`` of consecutive speech
frames (reported at the first of them); it stops after ``silence_duration_ms`` of non-speech
(reported at the end of the last speech frame). Pure and synchronous: callers run it in a thread
together with the recogniser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import webrtcvad

RATE = 16000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000


def webrtc_mode(threshold: float) -> int:
    """webrtcvad aggressiveness for a Voice Live ``threshold``."""
    return max(0, min(3, int(threshold * 4)))


def energy_gate_dbfs(threshold: float) -> float:
    """Minimum frame RMS level (dBFS) for a Voice Live ``threshold``."""
    return -70.0 + 40.0 * threshold


@dataclass(frozen=True)
class VadEvent:
    """``kind`` is "start" or "stop"; ``ms`` is on the input-audio timeline."""

    kind: str
    ms: int


class VoiceActivityDetector:
    """Turns a stream of 16 kHz int16 audio into speech start/stop events."""

    def __init__(
        self, threshold: float = 0.5, min_speech_ms: int = 100, silence_duration_ms: int = 500
    ) -> None:
        self._vad = webrtcvad.Vad(webrtc_mode(threshold))
        gate = 10 ** (energy_gate_dbfs(threshold) / 20) * 32768.0
        self._gate_sq = gate * gate
        self._min_speech_frames = max(1, -(-min_speech_ms // FRAME_MS))
        self._silence_frames = max(1, -(-silence_duration_ms // FRAME_MS))
        self._pending = np.zeros(0, np.int16)
        self.frames = 0  # frames consumed since the stream began
        self.in_speech = False
        self._run = 0  # consecutive speech frames (before start) / non-speech frames (after)

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio consumed so far."""
        return self.frames * FRAME_MS

    def is_speech(self, frame: np.ndarray) -> bool:
        """The per-frame decision (webrtcvad and the energy gate)."""
        energy = float(np.mean(frame.astype(np.float64) ** 2))
        if energy < self._gate_sq:
            return False
        return self._vad.is_speech(frame.tobytes(), RATE)

    def reset(self) -> None:
        """Forget any speech in progress (keeps the timeline)."""
        self.in_speech = False
        self._run = 0

    def process(self, pcm: np.ndarray) -> list[VadEvent]:
        """Feed audio; return the start/stop events it completes."""
        events: list[VadEvent] = []
        data = np.concatenate([self._pending, pcm]) if len(self._pending) else pcm
        usable = len(data) - len(data) % FRAME_SAMPLES
        for i in range(0, usable, FRAME_SAMPLES):
            speech = self.is_speech(data[i : i + FRAME_SAMPLES])
            self.frames += 1
            if not self.in_speech:
                self._run = self._run + 1 if speech else 0
                if self._run >= self._min_speech_frames:
                    self.in_speech = True
                    events.append(VadEvent("start", (self.frames - self._run) * FRAME_MS))
                    self._run = 0
            else:
                self._run = 0 if speech else self._run + 1
                if self._run >= self._silence_frames:
                    self.in_speech = False
                    events.append(VadEvent("stop", (self.frames - self._run) * FRAME_MS))
                    self._run = 0
        self._pending = data[usable:].copy()
        return events
