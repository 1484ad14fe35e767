"""The local agent's "brain": a small pluggable interface (conversation history in -> streamed
reply text out), the deterministic default brain that tests rely on, and the registry through
which an agent id / agent name in the connection URL selects one."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Turn:
    """One conversation entry as the brain sees it: ``role`` is user, assistant, system or tool."""

    role: str
    text: str


@runtime_checkable
class Brain(Protocol):
    """What the local server asks of an agent."""

    name: str
    description: str
    #: phrases the agent expects to hear; they narrow speech recognition (JSGF) by default
    known_phrases: Sequence[str]

    def respond(self, history: Sequence[Turn]) -> AsyncIterator[str]:
        """Stream the reply to the conversation so far, in chunks of text."""
        ...


STORY = (
    "Once upon a time, a small robot lived in a lighthouse by the sea. "
    "Every night it polished the great lamp until it shone across the water. "
    "One stormy evening a fishing boat lost its way among the rocks. "
    "The robot turned the light toward the boat and guided it safely home. "
    "From then on, the fishermen left a shiny bolt on the doorstep every morning."
)

#: The default brain's questions (as written; also its speech recognition phrases) and answers.
_ANSWERS: list[tuple[str, Callable[[], str]]] = [
    ("What is the capital of France?", lambda: "The capital of France is Paris."),
    ("Tell me a story.", lambda: STORY),
    ("What time is it?", lambda: f"It is {dt.datetime.now():%H:%M}."),
    ("Hello, how are you?", lambda: "Hello! I am fine, thank you."),
    ("Thank you, goodbye.", lambda: "Goodbye!"),
    ("Stop.", lambda: "Okay, I will stop."),
]


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def _words(text: str) -> list[str]:
    """Split a reply into streaming chunks that keep their leading spaces."""
    return re.findall(r"\s*\S+", text)


def tool_answer(output: str) -> str:
    """The spoken answer to a tool's ``function_call_output``: its text, a JSON object's fields,
    or what went wrong (``{"error": ...}``)."""
    try:
        value = json.loads(output)
    except ValueError:
        value = output
    if isinstance(value, dict) and set(value) == {"error"}:
        return f"Sorry, the tool failed: {value['error']}"
    if isinstance(value, dict):
        value = ", ".join(f"{k} {v}" for k, v in value.items())
    elif isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return f"The tool returned: {str(value).strip()}"


class DefaultBrain:
    """Answers a few known questions, echoes anything else ("You said: …"). Deterministic
    except for the clock question."""

    name = "local-agent"
    description = "Deterministic local stand-in agent (known questions, echo otherwise)."
    known_phrases: Sequence[str] = tuple(question for question, _ in _ANSWERS)

    def __init__(self, chunk_delay_s: float = 0.0) -> None:
        self.chunk_delay_s = chunk_delay_s

    def reply_text(self, history: Sequence[Turn]) -> str:
        """The whole reply for ``history`` (the last user or tool turn decides)."""
        for turn in reversed(history):
            if turn.role == "tool":
                return tool_answer(turn.text)
            if turn.role == "user":
                said = _norm(turn.text)
                for written, answer in _ANSWERS:
                    question = _norm(written)
                    if said == question or (len(question.split()) > 1 and question in said):
                        return answer()
                return f"You said: {turn.text.strip()}" if said else "I did not catch that."
        return "Hello! How can I help you?"

    async def respond(self, history: Sequence[Turn]) -> AsyncIterator[str]:
        """Stream :meth:`reply_text` word by word."""
        for chunk in _words(self.reply_text(history)):
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            yield chunk


class EchoBrain(DefaultBrain):
    """Repeats every user turn (selected with agent name/id ``echo``)."""

    name = "echo"
    description = "Repeats what the user said."
    known_phrases: Sequence[str] = ()

    def reply_text(self, history: Sequence[Turn]) -> str:
        """The last user turn, verbatim."""
        for turn in reversed(history):
            if turn.role == "user":
                return turn.text.strip() or "..."
        return "..."


_REGISTRY: dict[str, Callable[[], Brain]] = {}


def register_brain(name: str, factory: Callable[[], Brain]) -> None:
    """Make ``factory`` the brain for agent id / agent name ``name``."""
    _REGISTRY[name] = factory


def get_brain(name: str | None) -> Brain:
    """A fresh brain for an agent name/id; the default brain for unknown or missing names."""
    factory = _REGISTRY.get(name or "")
    return factory() if factory else DefaultBrain()


register_brain("echo", EchoBrain)


def agents_help() -> str:
    """What each local agent understands, for ``--help`` (selected by agent name or id)."""
    default = DefaultBrain()
    lines = [
        f"  {default.name} (the default, for any name not listed below) understands these",
        "    phrases; speech recognition is narrowed to them, so other speech gets",
        '    "I did not catch that." (other typed text gets "You said: ..."):',
        *(f"      {phrase}" for phrase in default.known_phrases),
    ]
    for name in sorted(_REGISTRY):
        lines.append(f"  {name}: {_REGISTRY[name]().description}")
    return "\n".join(lines)
