"""Makes spoken test/demo audio with eSpeak NG: ``python -m localserver.speak "text" out.wav``
writes a 24 kHz mono int16 WAV (optionally with silence around it, ``--pad-ms``). Also the
function :func:`speak_to_wav` for tests, which returns where the speech sits in the file."""

from __future__ import annotations

import argparse
import wave
from pathlib import Path

import numpy as np

from localserver.tts import synthesize
from processors.console import say


def speak_to_wav(
    text: str, path: str | Path, rate: int = 24000, pad_ms: int = 0
) -> tuple[int, int]:
    """Write ``text`` spoken at ``rate`` Hz with ``pad_ms`` of silence before and after.

    Returns (speech start ms, speech end ms) within the file: the first and last sample above
    -50 dBFS (eSpeak adds a little silence of its own)."""
    speech = synthesize(text, rate)
    loud = np.flatnonzero(np.abs(speech.pcm.astype(np.int32)) > 104)
    first, last = (int(loud[0]), int(loud[-1]) + 1) if len(loud) else (0, 0)
    pad = np.zeros(rate * pad_ms // 1000, np.int16)
    pcm = np.concatenate([pad, speech.pcm, pad])
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.astype("<i2").tobytes())
    return pad_ms + first * 1000 // rate, pad_ms + last * 1000 // rate


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m localserver.speak", description=__doc__.splitlines()[0]
    )
    parser.add_argument("text")
    parser.add_argument("out", help="output WAV path")
    parser.add_argument("--rate", type=int, default=24000)
    parser.add_argument("--pad-ms", type=int, default=0, help="silence before and after the speech")
    args = parser.parse_args(argv)
    start, end = speak_to_wav(args.text, args.out, args.rate, args.pad_ms)
    say(f"{args.out}: speech {start}-{end} ms at {args.rate} Hz")


if __name__ == "__main__":
    main()
