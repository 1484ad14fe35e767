"""Function calling on the local server (model mode): which declared tool a user's words ask for,
the phrases the recogniser must be able to hear for the declared tools, and
:class:`FunctionCallRunner`, the response that calls a tool with the real service's events
(``response.output_item.added`` with a ``function_call`` item, ``conversation.item.created``,
``response.function_call_arguments.delta`` × N, ``.done``, ``response.output_item.done``,
``response.done``; see the recorded trace ``test_tool_call_round.yaml``). The client then sends
a ``function_call_output`` item and ``response.create``, and the brain answers from that output.

The choice is deterministic: a tool is asked for when a word of its name (``get_weather`` ->
weather) is among the user's words and every required argument can be read from them (a string
after "in"/"for"/"of"/"about", a number, or one of an enum's values).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from localserver.conversation import Conversation, Entry
from localserver.server_events import new_id, response_object, server_event, usage

#: questions the local server knows how to hear; those that ask for a declared tool join the
#: recogniser's phrase list
TOOL_QUESTIONS = (
    "What time is it?",
    "What is the date today?",
    "What is the weather in London?",
    "What is the weather in Paris?",
    "What is the weather in Seattle?",
    "Roll a dice.",
)
_FILLER = frozenset(
    {
        "get",
        "set",
        "fetch",
        "find",
        "lookup",
        "look",
        "up",
        "check",
        "tell",
        "show",
        "give",
        "the",
        "a",
        "an",
        "is",
        "it",
        "what",
        "whats",
        "of",
        "in",
        "for",
        "to",
        "me",
        "my",
        "please",
        "current",
        "now",
        "do",
        "you",
        "can",
        "how",
        "today",
        "s",
        "by",
        "on",
        "and",
        "or",
        "with",
        "info",
        "data",
    }
)
_PREPOSITIONS = ("in", "for", "of", "about", "at")
_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
_NUMBERS = {word: n for n, word in enumerate(_NUMBER_WORDS.split())}


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).replace("'", "").split()


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _name_words(name: str) -> set[str]:
    """The meaningful words of a tool name: ``get_weatherForecast`` -> {weather, forecast}."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ")
    return {_stem(w) for w in _words(spaced) if w not in _FILLER}


@dataclass(frozen=True)
class ToolCall:
    """The tool a user's words ask for, with its arguments."""

    name: str
    arguments: dict[str, Any]


def _value(schema: dict[str, Any], text: str) -> Any:
    """A value for one argument read from the user's words, or None."""
    said = _words(text)
    if isinstance(schema.get("enum"), list):
        return next(
            (v for v in schema["enum"] if _words(str(v)) and _words(str(v))[0] in said), None
        )
    kind = schema.get("type")
    if kind in ("integer", "number"):
        for word in said:
            if word.isdigit():
                return int(word)
            if word in _NUMBERS:
                return _NUMBERS[word]
        return None
    if kind in ("string", None):
        tokens = re.findall(r"[\w'-]+", text)
        lowered = [t.lower() for t in tokens]
        starts = [i for i, t in enumerate(lowered) if t in _PREPOSITIONS and i + 1 < len(tokens)]
        return " ".join(tokens[starts[-1] + 1 :]) if starts else None
    return None


def _arguments(tool: dict[str, Any], text: str) -> dict[str, Any] | None:
    parameters = tool.get("parameters") if isinstance(tool.get("parameters"), dict) else {}
    properties = (
        parameters.get("properties") if isinstance(parameters.get("properties"), dict) else {}
    )
    arguments = {}
    for name in parameters.get("required") or []:
        schema = properties.get(name)
        value = _value(schema if isinstance(schema, dict) else {}, text)
        if value is None:
            return None
        arguments[name] = value
    return arguments


def function_tools(session: dict[str, Any]) -> list[dict[str, Any]]:
    """The session's callable function tools (none when ``tool_choice`` is ``none``)."""
    if session.get("tool_choice") == "none":
        return []
    tools = session.get("tools") or []
    return [
        t
        for t in tools
        if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str)
    ]


def choose_tool(text: str, tools: Sequence[dict[str, Any]]) -> ToolCall | None:
    """The declared tool ``text`` asks for (most of its name's words heard), or None."""
    said = {_stem(w) for w in _words(text)}
    best: tuple[float, ToolCall] | None = None
    for tool in tools:
        keys = _name_words(tool["name"])
        hits = len(keys & said)
        if not hits:
            continue
        arguments = _arguments(tool, text)
        if arguments is None:
            continue
        score = hits / len(keys)
        if best is None or score > best[0]:
            best = (score, ToolCall(tool["name"], arguments))
    return best[1] if best else None


def tool_phrases(tools: Sequence[dict[str, Any]]) -> list[str]:
    """The known questions that ask for one of ``tools`` (for the recogniser's phrase list)."""
    return [q for q in TOOL_QUESTIONS if choose_tool(q, tools) is not None]


def _function_call_item(
    item_id: str, call: ToolCall, call_id: str, status: str, arguments: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call",
        "status": status,
        "name": call.name,
        "call_id": call_id,
        "arguments": arguments,
    }


class FunctionCallRunner:
    """A response that calls one tool: :meth:`run` sends its events, :meth:`cancel` stops it.
    Same interface as :class:`localserver.responder.ResponseRunner`."""

    def __init__(
        self,
        send: Any,
        conversation: Conversation,
        call: ToolCall,
        params: dict[str, Any],
        conversation_id: str,
        *,
        input_audio_ms: int = 0,
    ) -> None:
        self.id = new_id("resp")
        self.item_id = new_id("item")
        self.call_id = "call_" + new_id("x", 16)[2:]
        self._send, self._conversation, self._call = send, conversation, call
        self.params, self._conversation_id, self._input_audio_ms = (
            params,
            conversation_id,
            input_audio_ms,
        )
        self._cancel_reason: str | None = None

    def cancel(self, reason: str) -> None:
        """Stop before the call is complete; :meth:`run` ends with a cancelled ``response.done``."""
        if self._cancel_reason is None:
            self._cancel_reason = reason

    async def run(self) -> None:
        """Send the whole function call response (or its cancelled end)."""
        arguments = json.dumps(self._call.arguments)
        ref = {
            "response_id": self.id,
            "item_id": self.item_id,
            "output_index": 0,
            "call_id": self.call_id,
        }
        item = _function_call_item(self.item_id, self._call, self.call_id, "in_progress", "")
        await self._send(
            server_event(
                "response.created",
                response=response_object(self.id, self._conversation_id, self.params),
            )
        )
        await self._send(
            server_event(
                "response.output_item.added", response_id=self.id, output_index=0, item=item
            )
        )
        entry = Entry(item=dict(item))
        before = self._conversation.add_entry(entry)
        await self._send(
            server_event("conversation.item.created", previous_item_id=before, item=item)
        )
        status, details = "completed", None
        for delta in re.findall(
            r".{1,8}", arguments, re.S
        ):  # streamed in small pieces, as the service does
            if self._cancel_reason is not None:
                status, details = "cancelled", {"type": "cancelled", "reason": self._cancel_reason}
                break
            await self._send(
                server_event("response.function_call_arguments.delta", **ref, delta=delta)
            )
            await asyncio.sleep(0)
        final = _function_call_item(
            self.item_id,
            self._call,
            self.call_id,
            "completed" if status == "completed" else "incomplete",
            arguments,
        )
        entry.item.update(final)
        if status == "completed":
            await self._send(
                server_event(
                    "response.function_call_arguments.done",
                    **ref,
                    name=self._call.name,
                    arguments=arguments,
                )
            )
            await self._send(
                server_event(
                    "response.output_item.done", response_id=self.id, output_index=0, item=final
                )
            )
        text_tokens = max(1, len(arguments) // 4)
        history_tokens = self._conversation.history_tokens()
        done = response_object(
            self.id,
            self._conversation_id,
            self.params,
            status=status,
            status_details=details,
            output=[final],
            usage_obj=usage(history_tokens, self._input_audio_ms * 10 // 1000, text_tokens, 0),
        )
        await self._send(server_event("response.done", response=done))
