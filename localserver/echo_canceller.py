"""The local server's acoustic echo canceller: what the client says its speaker played (channel 1
of a stereo input with ``reference_source: client``) is removed from the microphone (channel 0)
before turn detection and recognition.

A partitioned-block frequency-domain NLMS filter (overlap-save; 256-sample blocks, 16 partitions:
an echo path of up to 4096 samples, 170 ms at 24 kHz) learns the path from the speaker to the
microphone, delay and gain included, and subtracts its estimate of the echo. A shadow filter
adapts on every block; when it cancels clearly better than the main one for a few blocks while
the microphone is not louder than an echo could be, the echo path has changed (the speaker
skipped or inserted samples: an output underrun shifts it by a period) and it becomes the main
filter. Adaptation of the main filter pauses
while the user talks over the agent (a Geigel double-talk detector: the microphone louder than
the echo the reference could explain), so the user's voice is not learnt away and can still
interrupt. What the filter misses is turned down frequency by frequency where the echo estimate
explains the signal (residual echo suppression; until the filter has converged the reference
stands in for the estimate), so a loud answer does not start a turn while a user talking over it
does. numpy only; one call handles any number of samples.
"""

from __future__ import annotations

from collections import deque

import numpy as np

BLOCK = 256
PARTITIONS = 16
STEP = 1.0  # NLMS step, normalised by the reference power of all partitions (0 < STEP < 2)
GEIGEL = 0.9  # double talk when |mic| > GEIGEL * recent max |reference|
HANGOVER_BLOCKS = 8  # adaptation stays paused this long after double talk
CONVERGED_ERLE = 8.0  # 9 dB of cancellation: trust the error-based double-talk test
RECONVERGE_BLOCKS = 300  # about 3 s of double talk on end means the path changed
MIN_GAIN = 0.02  # residual echo suppression: at most -34 dB
SUPPRESS_OVER = 2.0  # the echo estimate is taken this much louder (what the filter missed)
SWAP_BLOCKS = 4  # the shadow filter this many blocks in a row twice as good: the path changed
INIT_BLOCKS = 8  # blocks with sound on the reference before the first guess (85 ms at 24 kHz)
_EPS = 1e3


class EchoCanceller:
    """``process(mic, ref)`` -> the microphone with the echo of ``ref`` removed (int16 arrays of
    equal length, same rate). Keeps up to one block of delay: output lags input by < ``BLOCK``."""

    def __init__(self, block: int = BLOCK, partitions: int = PARTITIONS) -> None:
        self.block, self.partitions = block, partitions
        bins = block + 1
        self._weights = np.zeros((partitions, bins), np.complex128)
        self._spectra: deque[np.ndarray] = deque(
            (np.zeros(bins, np.complex128) for _ in range(partitions)), maxlen=partitions
        )
        self._power = np.full(bins, _EPS)
        self._prev_ref = np.zeros(block)
        self._ref_peaks: deque[float] = deque([0.0] * partitions, maxlen=partitions)
        self._mic_in = np.zeros(0)
        self._ref_in = np.zeros(0)
        self._out = np.zeros(0, np.int16)
        self._hangover = 0
        self._erle = 1.0  # smoothed microphone / residual power while adapting
        self._recent_ref: deque[np.ndarray] = deque(maxlen=partitions)
        self._gain = np.ones(block // 2 + 1)
        self._history: list[tuple[np.ndarray, np.ndarray]] = []  # (mic, ref) until the first guess
        self.initial_delay: int | None = None  # samples, from the first estimate of the path
        self._dt_run = 0
        self.double_talk_blocks = 0
        self._shadow = np.zeros_like(self._weights)  # adapts always (see the module docstring)
        self._shadow_wins = 0
        self._suspect = False
        self.path_changes = 0

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Feed ``mic`` and ``ref``; return as many cleaned samples as were fed (the first call
        starts with up to one block of silence: the canceller works block by block)."""
        self._mic_in = np.concatenate([self._mic_in, mic.astype(np.float64)])
        self._ref_in = np.concatenate([self._ref_in, ref.astype(np.float64)])
        done = []
        while len(self._mic_in) >= self.block:
            d, self._mic_in = self._mic_in[: self.block], self._mic_in[self.block :]
            x, self._ref_in = self._ref_in[: self.block], self._ref_in[self.block :]
            done.append(self._block(d, x))
        if done:
            self._out = np.concatenate([self._out, *done])
        if len(self._out) == 0 and len(mic):
            self._out = np.zeros(len(mic), np.int16)  # the first partial block: silence
        out, self._out = self._out[: len(mic)], self._out[len(mic) :]
        if len(out) < len(mic):
            out = np.concatenate([np.zeros(len(mic) - len(out), np.int16), out])
        return out

    def _first_guess(self, d: np.ndarray, x: np.ndarray) -> None:
        """Before the filter has learnt anything, guess the path's main delay and gain from the
        cross-correlation of the first ``INIT_BLOCKS`` blocks with sound on the reference: NLMS
        alone needs a second or more, and the first words of an answer would start a turn."""
        if self.initial_delay is not None:
            return
        if np.max(np.abs(x)) > 100 or self._history:
            self._history.append((d, x))
        if len(self._history) < INIT_BLOCKS:
            return
        mic = np.concatenate([h[0] for h in self._history])
        ref = np.concatenate([h[1] for h in self._history])
        self._history = []
        taps = self.block * self.partitions
        n = 1 << int(np.ceil(np.log2(len(mic) + taps)))
        corr = np.fft.irfft(np.fft.rfft(mic, n) * np.conj(np.fft.rfft(ref, n)), n)[:taps]
        lag = int(np.argmax(np.abs(corr)))
        shifted = np.concatenate([np.zeros(lag), ref])[: len(mic)]
        gain = float(np.dot(mic, shifted) / (np.dot(shifted, shifted) + _EPS))
        self.initial_delay = lag
        impulse = np.zeros(2 * self.block)
        impulse[lag % self.block] = gain
        self._weights[lag // self.block] = np.fft.rfft(impulse)

    def _block(self, d: np.ndarray, x: np.ndarray) -> np.ndarray:
        b = self.block
        self._first_guess(d, x)
        spectrum = np.fft.rfft(np.concatenate([self._prev_ref, x]))
        self._prev_ref = x
        self._spectra.appendleft(spectrum)
        self._ref_peaks.appendleft(float(np.max(np.abs(x))) if len(x) else 0.0)
        stacked = np.array(self._spectra)
        echo = np.fft.irfft(np.sum(self._weights * stacked, axis=0))[b:]
        error = d - echo
        self._power = 0.9 * self._power + 0.1 * (np.abs(spectrum) ** 2) / (2 * b)
        pd, pe = float(np.mean(d * d)), float(np.mean(error * error))
        loud = np.max(np.abs(d)) > GEIGEL * max(self._ref_peaks)
        shadow_echo = np.fft.irfft(np.sum(self._shadow * stacked, axis=0))[b:]
        shadow_error = d - shadow_echo
        if max(self._ref_peaks) > 0:
            self._shadow += STEP * self._step(stacked, shadow_error)
        if float(np.mean(shadow_error * shadow_error)) < 0.5 * pe and not loud:
            self._shadow_wins += 1
            if self._shadow_wins >= SWAP_BLOCKS:  # the echo path changed: take the shadow
                self._weights = self._shadow.copy()
                self._hangover, self._dt_run, self._shadow_wins = 0, 0, 0
                self.path_changes += 1
                echo, error = shadow_echo, shadow_error
                pe = float(np.mean(error * error))
        else:
            self._shadow_wins = 0
            if float(np.mean(shadow_error * shadow_error)) > 4 * pe:
                self._shadow = self._weights.copy()  # it wandered off (learnt the user's voice)
        # Double talk: the microphone louder than any echo could be (Geigel), or, once the
        # filter cancels well, a block it suddenly does not cancel (someone else is talking).
        converged = self._erle > CONVERGED_ERLE
        self._suspect = converged and pe > 0.5 * pd and not loud  # user or a changed path
        if loud or (converged and pe > 0.5 * pd):
            self._hangover = HANGOVER_BLOCKS
            self._dt_run += 1
            if self._dt_run > RECONVERGE_BLOCKS:  # the echo path changed: learn it again
                self._erle, self._dt_run = 1.0, 0
        if self._hangover > 0:
            self._hangover -= 1
            self.double_talk_blocks += 1
        elif max(self._ref_peaks) > 0:
            self._dt_run = 0
            self._erle = 0.95 * self._erle + 0.05 * pd / (pe + _EPS)
            self._weights += STEP * self._step(stacked, error)
        return np.clip(self._suppress(error, echo, x), -32768, 32767).astype(np.int16)

    def _step(self, stacked: np.ndarray, error: np.ndarray) -> np.ndarray:
        """The constrained NLMS update of all partitions for one block's ``error``."""
        b = self.block
        e_spec = np.fft.rfft(np.concatenate([np.zeros(b), error]))
        gradient = np.conj(stacked) * e_spec / (self._power * 2 * b * self.partitions + _EPS)
        constrained = np.fft.irfft(gradient, axis=1)
        constrained[:, b:] = 0.0  # keep the filter causal and linear (overlap-save)
        return np.fft.rfft(constrained, axis=1)

    def _suppress(self, error: np.ndarray, echo: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Residual echo suppression: each frequency of the block is turned down by how much of
        it the echo estimate explains (a user talking over the agent dominates their own
        frequencies and passes). Until the filter cancels well, the reference itself stands in
        for the echo too (as loud as what was played, up to ``partitions`` blocks late)."""
        e_spec = np.fft.rfft(error)
        x_spec = np.abs(np.fft.rfft(x)) ** 2
        self._recent_ref.appendleft(x_spec)
        echo_power = np.abs(np.fft.rfft(echo)) ** 2 * SUPPRESS_OVER
        # still learning, or a block it suddenly does not cancel: the reference stands in as well
        if self._erle < CONVERGED_ERLE or self._suspect:
            echo_power = np.maximum(echo_power, np.max(np.array(self._recent_ref), axis=0))
        gain = np.clip(1.0 - echo_power / (np.abs(e_spec) ** 2 + _EPS), MIN_GAIN, 1.0)
        self._gain = np.minimum(gain, 0.5 * self._gain + 0.5 * gain)  # fall fast, rise smoothly
        return np.fft.irfft(e_spec * self._gain, len(error))
