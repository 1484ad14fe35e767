"""The two small frames this project adds to pipecat's standard ones.

``VoiceLiveEventFrame`` carries one protocol event (either direction) to logging processors; it is
a system frame, so it is neither delayed behind audio nor dropped by an interruption.
``AgentTranscriptFrame`` carries the agent's complete words for one response item; it is a data
frame marked uninterruptible, so it keeps its place after the user's transcript and reaches the
session log even when the user barges in. ``AgentTranscriptUrgentFrame`` carries the words cut
short when the pipeline is cancelled (Ctrl-C, SIGTERM): a system frame, so it is written before the
``CancelFrame`` that follows it stops the processors' queues. Match both with ``AgentWords``.
``AudioNotSentFrame`` says how much microphone audio never reached the server (no session yet,
a connection being replaced, a backed-up socket), so the session log can tell the user.
``SessionStartedFrame``, ``ConnectionLostFrame`` and ``ReconnectedFrame`` are the facts about the
connection that the logs and views show (``SessionID:``, ``Reconnected:``), typed so that no
processor has to re-parse server events or invent ``client.*`` events to learn them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import DataFrame, SystemFrame


@dataclass
class VoiceLiveEventFrame(SystemFrame):
    """A protocol event: ``direction`` is ``received`` or ``sent``; ``at`` is epoch seconds."""

    event: dict[str, Any] = field(default_factory=dict)
    direction: str = "received"
    at: float = 0.0

    @property
    def event_type(self) -> str:
        """The event's ``type``, or ``?`` when it has none."""
        kind = self.event.get("type")
        return kind if isinstance(kind, str) else "?"


@dataclass
class AgentWords:
    """The agent's full text for one item; ``modality`` is ``audio`` (spoken) or ``text``."""

    text: str = ""
    modality: str = "audio"
    response_id: str = ""
    item_id: str = ""
    interrupted: bool = False


@dataclass
class AgentTranscriptFrame(AgentWords, DataFrame):
    """The agent's words for one item, in order with the other data frames; uninterruptible."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.interruptible = False


@dataclass
class AgentTranscriptUrgentFrame(AgentWords, SystemFrame):
    """The agent's words cut short by a cancel, delivered ahead of the ``CancelFrame``."""


@dataclass
class AudioNotSentFrame(SystemFrame):
    """``seconds`` of microphone audio that were never sent to Voice Live, and why.

    A system frame, so it reaches the session log even when it is pushed just before a cancel.
    """

    seconds: float = 0.0
    reason: str = ""


@dataclass
class SessionStartedFrame(SystemFrame):
    """Voice Live created a session: the first one, or a new one after a reconnect."""

    session_id: str = ""


@dataclass
class ConnectionLostFrame(SystemFrame):
    """The connection to Voice Live broke (``reason``, one line); the service is reconnecting."""

    reason: str = ""


@dataclass
class ReconnectedFrame(SystemFrame):
    """The session is back after :class:`ConnectionLostFrame`: ``reason`` it was lost, and the
    new ``session_id``."""

    reason: str = ""
    session_id: str = ""
