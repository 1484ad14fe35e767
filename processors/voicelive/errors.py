"""Error types of the Voice Live client: each carries one line a user can act on."""

from __future__ import annotations


class VoiceLiveError(Exception):
    """Base class; ``str(error)`` is a single line that says what to fix."""


class ConfigError(VoiceLiveError, ValueError):
    """The configuration is invalid; raised before any connection is attempted."""


class MalformedEvent(VoiceLiveError):
    """A server message that is not a JSON object with a string ``type``."""


class ConnectionFailed(VoiceLiveError):
    """The WebSocket could not be opened, or was lost.

    ``retryable`` says whether trying again later may succeed (429, 5xx, a drop);
    ``status`` is the HTTP status of a refused upgrade, when there was one.
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


def one_line(text: str, limit: int) -> str:
    """``text`` on one line (line breaks become spaces), cut to about ``limit`` characters."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return f"{flat[:limit].rstrip()}… (cut, {len(flat)} characters)"
