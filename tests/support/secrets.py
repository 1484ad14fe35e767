"""The leak check every secrets test shares: no run of 8 or more characters of a secret, anywhere.

A secret can leak whole, or in pieces: a logger that shortens long lines (websockets' frame
debug lines keep the first 48 and last 24 characters), a message cut to fit a line, a value
re-wrapped in quotes. Searching for the whole value misses those, so :func:`leaked_runs` looks
for every 8-character window of each secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

RUN = 8  # the longest part of a secret that may appear anywhere is RUN - 1 characters


def leaked_runs(text: str, secret: str, run: int = RUN) -> list[str]:
    """The ``run``-character windows of ``secret`` found in ``text`` (empty: no leak)."""
    windows = {secret[i : i + run] for i in range(len(secret) - run + 1)}
    return sorted(w for w in windows if w in text)


def check_no_secret_runs(
    outputs: Mapping[str, str], secrets: Iterable[str], run: int = RUN
) -> None:
    """Fail naming the output, the leaked piece and its line if any output holds ``run``
    consecutive characters of any of ``secrets``."""
    secrets = [s for s in secrets if len(s) >= run]
    assert secrets, "no secret long enough to check"
    for name, text in outputs.items():
        for secret in secrets:
            found = leaked_runs(text, secret, run)
            if found:
                line = next(line for line in text.splitlines() if found[0] in line)
                raise AssertionError(
                    f"{len(found)} piece(s) of a secret leaked into {name}, "
                    f"e.g. {found[0]!r} in: {line[:300]}"
                )
