"""What the sans-I/O session asks its owner to do, one small dataclass per kind of action."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Send:
    """Send this client event over the socket. ``audio``: it carries microphone audio
    (``input_audio_buffer.append``), which a backed-up socket may drop and logs leave out."""

    event: dict[str, Any]
    audio: bool = False


@dataclass(frozen=True)
class SessionCreated:
    """``session.created`` arrived: the session id and the server's defaults."""

    session_id: str
    session: dict[str, Any]


@dataclass(frozen=True)
class SessionReady:
    """``session.updated`` arrived: the effective config is known and audio may flow."""

    session_id: str
    session: dict[str, Any]


@dataclass(frozen=True)
class PlayAudio:
    """24 kHz mono pcm16 from ``response.audio.delta`` that should be played."""

    pcm: bytes
    response_id: str
    item_id: str
    first: bool


@dataclass(frozen=True)
class Interruption:
    """Local playback of ``item_id`` (of ``response_id``) must stop now."""

    response_id: str | None
    item_id: str | None


@dataclass(frozen=True)
class SpeechStarted:
    """The server heard the user start speaking; ``interruption`` says what to cut."""

    audio_start_ms: int | None
    item_id: str
    interruption: Interruption


@dataclass(frozen=True)
class SpeechStopped:
    """The server heard the user stop speaking."""

    audio_end_ms: int | None
    item_id: str


@dataclass(frozen=True)
class UserTranscript:
    """The user's transcribed words for one item (partial with ``final`` False)."""

    text: str
    item_id: str
    final: bool
    language: str | None = None


@dataclass(frozen=True)
class AgentText:
    """A piece of the agent's words; ``modality``: ``audio`` (transcript of speech) or ``text``."""

    delta: str
    response_id: str
    item_id: str
    modality: str


@dataclass(frozen=True)
class AgentTranscript:
    """The agent's full words for one item, once, even when the response was cut short."""

    text: str
    response_id: str
    item_id: str
    modality: str
    interrupted: bool


@dataclass(frozen=True)
class ResponseStarted:
    """A response began (``response.created``)."""

    response_id: str


@dataclass(frozen=True)
class ResponseFinished:
    """A response ended (``response.done``): its status, reason and usage."""

    response_id: str
    status: str
    reason: str | None
    usage: dict[str, Any] = field(default_factory=dict)
    first_audio_latency_ms: float | None = None


@dataclass(frozen=True)
class WordTiming:
    """Where one word falls in the agent's audio (Azure voices' word timestamps)."""

    item_id: str
    text: str
    offset_ms: int
    duration_ms: int


@dataclass(frozen=True)
class FunctionCall:
    """A tool call was asked for: run ``name`` with ``arguments``, answer for ``call_id``."""

    name: str
    call_id: str
    arguments: str
    item_id: str


@dataclass(frozen=True)
class ServiceError:
    """An ``error`` event. Benign ones are expected races; fatal ones end the session."""

    code: str
    message: str
    error_type: str
    benign: bool
    fatal: bool


@dataclass(frozen=True)
class Notice:
    """Something worth a log line (malformed event skipped, transcription failed, unknown type)."""

    level: str
    message: str


Action = (
    Send
    | SessionCreated
    | SessionReady
    | PlayAudio
    | SpeechStarted
    | Interruption
    | SpeechStopped
    | UserTranscript
    | AgentText
    | AgentTranscript
    | ResponseStarted
    | ResponseFinished
    | WordTiming
    | FunctionCall
    | ServiceError
    | Notice
)
