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

import itertools
from collections import deque

import numpy as np

BLOCK = 256
PARTITIONS = 16
STEP = 1.0  # NLMS step, normalised by the reference power of all partitions (0 < STEP < 2)
GEIGEL = 0.9  # double talk when |mic| > GEIGEL * recent max |reference|
HANGOVER_BLOCKS = 8  # adaptation stays paused this long after double talk
CONVERGED_ERLE = 8.0  # 9 dB of cancellation: trust the error-based double-talk test
RECONVERGE_BLOCKS = 300  # about 3 s of double talk on end means the path changed
MIN_GAIN = 0.003  # residual echo suppression: at most -50 dB
SUPPRESS_OVER = 2.0  # the echo estimate is taken this much louder (what the filter missed)
WEAK_CANCELLATION = 0.01  # a block the filter cuts by less than 20 dB: its estimate is not trusted
SPREAD_BINS = 4  # the reference standing in covers +-4 bins (+-190 Hz) of each frequency
SWAP_BLOCKS = 4  # the shadow filter this many blocks in a row twice as good: the path changed
ECHO_MARGIN = 200.0  # an echo 23 dB below the reference (as first measured) counts as a full one
# The first guess's correlation (normalised, at the found delay, the lower of the two halves of
# what it looked at) below which the microphone is taken to hear no echo: the user's voice alone,
# talking over an answer, gives < 0.11 (one half may correlate by chance, not both); an echo 0.96,
# under double talk (a -6 dB echo, the user's "Stop." over it) ~0.37.
MIN_ECHO_CORRELATION = 0.2
INIT_BLOCKS = 8  # blocks with sound on the reference before the first guess (85 ms at 24 kHz)
_EPS = 1e3


class EchoCanceller:
    """``process(mic, ref)`` -> the microphone with the echo of ``ref`` removed (int16 arrays of
    equal length, same rate). Keeps up to one block of delay: output lags input by < ``BLOCK``."""

    def __init__(
        self, block: int = BLOCK, partitions: int = PARTITIONS, max_delay: int | None = None
    ) -> None:
        self.block, self.partitions = block, partitions
        taps = block * partitions
        # Delays beyond the filter's span (a reference that only says what was sent, not when it
        # played) are found once by cross-correlation and taken off the reference up front.
        self.max_delay = max(max_delay or taps, taps)
        self._blocks_beyond = -(-(self.max_delay - taps) // block)  # beyond the span: searched
        self._bulk = 0
        self._ref_line = np.zeros(0)  # the reference as received, from sample _ref_start
        self._ref_start = 0
        self._pos = 0  # microphone samples consumed
        bins = block + 1
        self._weights = np.zeros((partitions, bins), np.complex128)
        self._spectra: deque[np.ndarray] = deque(
            (np.zeros(bins, np.complex128) for _ in range(partitions)), maxlen=partitions
        )
        self._power = np.full(bins, _EPS)
        self._prev_ref = np.zeros(block)
        self._ref_peaks: deque[float] = deque([0.0] * partitions, maxlen=partitions)
        self._mic_in = np.zeros(0)
        self._out = np.zeros(0, np.int16)
        self._hangover = 0
        self._erle = 1.0  # smoothed microphone / residual power while adapting
        self._suppressor = ResidualSuppressor(block, partitions + self._blocks_beyond)
        self._history: list[tuple[np.ndarray, np.ndarray]] = []  # (mic, ref) until the first guess
        self.initial_delay: int | None = None  # samples, from the first estimate of the path
        self.no_echo_heard = 0  # first guesses that found no echo (the microphone passed through)
        self._dt_run = 0
        self.double_talk_blocks = 0
        self._shadow = np.zeros_like(self._weights)  # adapts always (see the module docstring)
        self._shadow_wins = 0
        self.path_changes = 0
        self._silent = 0  # blocks in a row with a silent reference

    def process(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Feed ``mic`` and ``ref``; return as many cleaned samples as were fed (the first call
        starts with up to one block of silence: the canceller works block by block)."""
        self._mic_in = np.concatenate([self._mic_in, mic.astype(np.float64)])
        self._ref_line = np.concatenate([self._ref_line, ref.astype(np.float64)])
        done = []
        while len(self._mic_in) >= self.block:
            d, self._mic_in = self._mic_in[: self.block], self._mic_in[self.block :]
            done.append(self._block(d, self._reference(self._pos)))
            self._pos += self.block
        late = self._bulk if self.initial_delay is not None else self.max_delay
        keep = self._pos - late - self.block * (self.partitions + 2)
        if keep > self._ref_start:  # what no block will read again
            self._ref_line = self._ref_line[keep - self._ref_start :]
            self._ref_start = keep
        if done:
            self._out = np.concatenate([self._out, *done])
        if len(self._out) == 0 and len(mic):
            self._out = np.zeros(len(mic), np.int16)  # the first partial block: silence
        out, self._out = self._out[: len(mic)], self._out[len(mic) :]
        if len(out) < len(mic):
            out = np.concatenate([np.zeros(len(mic) - len(out), np.int16), out])
        return out

    def _reference(self, pos: int) -> np.ndarray:
        """The block of reference the filter pairs with the microphone block at ``pos``: the
        reference received ``_bulk`` samples earlier (silence before it began)."""
        start = pos - self._bulk - self._ref_start
        lo = max(start, 0)
        part = self._ref_line[lo : max(start + self.block, 0)]  # none: wholly before it began
        out = np.zeros(self.block)
        out[lo - start : lo - start + len(part)] = part
        return out

    def _first_guess(self, d: np.ndarray, x: np.ndarray) -> bool:
        """Before the filter has learnt anything, guess the path's main delay and gain from the
        cross-correlation of the first ``INIT_BLOCKS`` blocks with sound on the reference (plus
        ``max_delay`` when that is beyond the filter's span): NLMS alone needs a second or more,
        and the first words of an answer would start a turn. A delay beyond the span becomes the
        bulk delay; how loud the echo is (against the reference) scales what the suppressor
        assumes of it, so a microphone that hears no echo (silent, or nothing in it correlates
        with the reference) is left alone."""
        if self.initial_delay is not None:
            return False
        if np.max(np.abs(x)) > 100 or self._history:
            self._history.append((d, x))
        if len(self._history) < INIT_BLOCKS + self._blocks_beyond:
            return False
        mic = np.concatenate([h[0] for h in self._history])
        ref = np.concatenate([h[1] for h in self._history])
        self._history = []
        n = 1 << int(np.ceil(np.log2(len(mic) + self.max_delay)))
        corr = np.fft.irfft(np.fft.rfft(mic, n) * np.conj(np.fft.rfft(ref, n)), n)
        lag = int(np.argmax(np.abs(corr[: self.max_delay])))
        shifted = np.concatenate([np.zeros(lag), ref])[: len(mic)]
        power = float(np.dot(shifted, shifted)) + _EPS
        gain = float(np.dot(mic, shifted) / power)
        heard = float(np.dot(mic, mic))
        # A microphone that hears no echo (a headset, the user talking over the answer's start)
        # is left alone: its power says nothing of an echo. An echo correlates with what was
        # played all along; speech may by chance, but not in both halves at once.
        mid = (lag + len(mic)) // 2  # the halves of where the delayed reference has sound
        correlation = min(
            abs(float(np.dot(m, r))) / np.sqrt(float(np.dot(m, m)) * float(np.dot(r, r)) + _EPS)
            for m, r in ((mic[lag:mid], shifted[lag:mid]), (mic[mid:], shifted[mid:]))
        )
        # (Only where the delay is searched, over half a second: the server's own record, which
        # says what was sent, not whether anyone hears it. A client's reference is what its
        # speaker played, and its first guess, 85 ms in, is too short to tell.)
        searched = self._blocks_beyond > 0
        echo = heard if correlation >= MIN_ECHO_CORRELATION or not searched else 0.0
        self._suppressor.scale = min(1.0, ECHO_MARGIN * echo / power)
        if not echo:  # no echo heard: pass the microphone through, and guess again later
            self.no_echo_heard += 1
            return False
        self.initial_delay = lag
        taps = self.block * self.partitions
        bulk = lag - self.block if lag >= taps - self.block else 0
        if bulk:  # beyond the span: the reference is read later, one block of it in the filter
            self._bulk, lag = bulk, self.block
            self._restack(self._pos)
        impulse = np.zeros(2 * self.block)
        impulse[lag % self.block] = gain
        self._weights[lag // self.block] = np.fft.rfft(impulse)
        return bool(bulk)

    def _restack(self, pos: int) -> None:
        """The filter's past reference blocks again, as seen with the new bulk delay."""
        blocks = [self._reference(pos - k * self.block) for k in range(1, self.partitions + 2)]
        self._spectra.clear()
        for newer, older in itertools.pairwise(blocks):
            self._spectra.append(np.fft.rfft(np.concatenate([older, newer])))
        self._prev_ref = blocks[0]
        self._suppressor.restart(blocks)

    def _block(self, d: np.ndarray, x: np.ndarray) -> np.ndarray:
        b = self.block
        if self._first_guess(d, x):  # the reference is now read later
            x = self._reference(self._pos)
        self._silent = self._silent + 1 if not x.any() else 0
        if self._silent > self.partitions + 1:  # nothing played within the filter's reach
            return self._idle(d, x)
        if self.no_echo_heard and self.initial_delay is None:  # the last guess heard no echo
            return self._idle(d, x)
        spectrum = np.fft.rfft(np.concatenate([self._prev_ref, x]))
        self._prev_ref = x
        self._spectra.appendleft(spectrum)
        self._ref_peaks.appendleft(float(np.max(np.abs(x))))  # x is always a whole block
        stacked = np.array(self._spectra)
        echo = np.fft.irfft(np.sum(self._weights * stacked, axis=0))[b:]
        error = d - echo
        self._power = 0.9 * self._power + 0.1 * (np.abs(spectrum) ** 2) / (2 * b)
        pd, pe = float(np.mean(d * d)), float(np.mean(error * error))
        loud = np.max(np.abs(d)) > GEIGEL * max(self._ref_peaks)
        shadow_echo = np.fft.irfft(np.sum(self._shadow * stacked, axis=0))[b:]
        shadow_error = d - shadow_echo
        ps = float(np.mean(shadow_error * shadow_error))
        if max(self._ref_peaks) > 0:
            self._shadow += STEP * self._step(stacked, shadow_error)
        if ps < 0.5 * pe and not loud:
            self._shadow_wins += 1
            if self._shadow_wins >= SWAP_BLOCKS:  # the echo path changed: take the shadow
                self._weights = self._shadow.copy()
                self._hangover, self._dt_run, self._shadow_wins = 0, 0, 0
                self.path_changes += 1
                echo, error = shadow_echo, shadow_error
                pe = float(np.mean(error * error))
        else:
            self._shadow_wins = 0
            if ps > 4 * pe:
                self._shadow = self._weights.copy()  # it wandered off (learnt the user's voice)
        # Double talk: the microphone louder than any echo could be (Geigel), or, once the
        # filter cancels well, a block it suddenly does not cancel (someone else is talking).
        converged = self._erle > CONVERGED_ERLE
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
        # What is heard: the quietest of the main filter's error, the shadow's and the raw
        # microphone. The user's voice is in all three alike, so the quietest holds the least
        # echo: a filter gone wrong (the path just moved) is never worse than no filter at all.
        if ps < pe and ps < pd:
            error, echo, pe = shadow_error, shadow_echo, ps
        if pd < pe:
            error, echo, pe = d, np.zeros_like(d), pd
        # Unless the filter removes 20 dB here and has learnt the path, its estimate may be
        # wrong (the path moved, or the user talks over the agent): the reference stands in too.
        weak = not converged or pe > WEAK_CANCELLATION * pd
        return np.clip(self._suppressor(error, echo, x, weak), -32768, 32767).astype(np.int16)

    def _idle(self, d: np.ndarray, x: np.ndarray) -> np.ndarray:
        """A block with no reference anywhere in the filter's reach: there is no echo to remove,
        so no filtering (most of a conversation: a session costs nothing while the agent is
        silent). The filters and the suppressor's timing are kept as they are."""
        self._prev_ref = x
        self._spectra.appendleft(np.zeros(self.block + 1, np.complex128))
        self._ref_peaks.appendleft(0.0)
        return np.clip(self._suppressor.pass_through(d, x), -32768, 32767).astype(np.int16)

    def _step(self, stacked: np.ndarray, error: np.ndarray) -> np.ndarray:
        """The constrained NLMS update of all partitions for one block's ``error``."""
        b = self.block
        e_spec = np.fft.rfft(np.concatenate([np.zeros(b), error]))
        gradient = np.conj(stacked) * e_spec / (self._power * 2 * b * self.partitions + _EPS)
        constrained = np.fft.irfft(gradient, axis=1)
        constrained[:, b:] = 0.0  # keep the filter causal and linear (overlap-save)
        return np.fft.rfft(constrained, axis=1)


def _spread(power: np.ndarray, bins: int = SPREAD_BINS) -> np.ndarray:
    """Each bin's power raised to its neighbours' within ``bins``: a block cut out of running
    speech smears its energy over nearby frequencies, which the reference's own blocks,
    cut elsewhere, need not show."""
    padded = np.pad(power, bins, mode="edge")
    return np.max([padded[i : i + len(power)] for i in range(2 * bins + 1)], axis=0)


class ResidualSuppressor:
    """What the filter misses, turned down frequency by frequency where the echo estimate
    explains the signal (a user talking over the agent dominates their own frequencies and
    passes). Weighted overlap-add: windows of two blocks under a square-root Hann window, one
    block apart, so gains that change from block to block leave no clicks or smeared edges for a
    VAD to hear; adds one block of delay. When the estimate is ``weak`` (still learning, or a
    block the filter does not cancel) the reference itself stands in for the echo too, as loud
    as what was played and up to ``history`` blocks late."""

    def __init__(self, block: int, history: int) -> None:
        self.block = block
        self._window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2 * block) / (2 * block)))
        self._squared = self._window**2  # analysis and synthesis windows together
        self._prev = (np.zeros(block), np.zeros(block), np.zeros(block))
        self._tail = np.zeros(block)
        self._gain = np.ones(block + 1)
        self._recent_ref: deque[np.ndarray] = deque(maxlen=history)
        self.scale = 1.0  # how loud the echo may be against the reference (power; 1 = as loud)

    def restart(self, blocks: list[np.ndarray]) -> None:
        """The reference is now read differently (a bulk delay was found): ``blocks`` are its
        past blocks as now seen, newest first; the windows they make are all that is kept from
        now on."""
        self._recent_ref = deque(
            (
                np.abs(self._spectrum(older, newer)) ** 2
                for newer, older in itertools.pairwise(blocks)
            ),
            maxlen=len(blocks) - 1,
        )
        self._prev = (*self._prev[:2], blocks[0])

    def _spectrum(self, before: np.ndarray, now: np.ndarray) -> np.ndarray:
        """The windowed spectrum of two consecutive blocks."""
        return np.fft.rfft(np.concatenate([before, now]) * self._window)

    def pass_through(self, error: np.ndarray, x: np.ndarray) -> np.ndarray:
        """A block with no echo: what the overlap-add gives with every gain at 1, without the
        transforms (the two window halves sum to 1), one block late as ever."""
        out = self._tail + self._prev[0] * self._squared[: self.block]
        self._tail = error * self._squared[self.block :]
        self._prev = (error, np.zeros(self.block), x)
        self._recent_ref.appendleft(np.zeros(self.block + 1))
        self._gain = np.minimum(1.0, 0.5 * self._gain + 0.5)
        return out

    def __call__(
        self, error: np.ndarray, echo: np.ndarray, x: np.ndarray, weak: bool
    ) -> np.ndarray:
        """One block in (the filter's output, its echo estimate, the reference): one block out,
        a block late."""
        (e_spec, echo_spec, x_spec) = (
            self._spectrum(before, now)
            for before, now in zip(self._prev, (error, echo, x), strict=True)
        )
        self._prev = (error, echo, x)
        self._recent_ref.appendleft(np.abs(x_spec) ** 2)
        echo_power = np.abs(echo_spec) ** 2 * SUPPRESS_OVER
        if weak:
            played = _spread(np.max(np.array(self._recent_ref), axis=0))
            echo_power = np.maximum(echo_power, self.scale * played)
        gain = np.clip(1.0 - echo_power / (np.abs(e_spec) ** 2 + _EPS), MIN_GAIN, 1.0)
        self._gain = np.minimum(gain, 0.5 * self._gain + 0.5 * gain)  # fall fast, rise smoothly
        frame = np.fft.irfft(e_spec * self._gain, 2 * self.block) * self._window
        out, self._tail = self._tail + frame[: self.block], frame[self.block :]
        return out
