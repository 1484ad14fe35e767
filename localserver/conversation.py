"""The conversation of one local-server session: ordered items (with ``previous_item_id``
placement), what each item "says" for the brain, and the audio/word timings of assistant audio
items so that ``conversation.item.truncate`` and ``conversation.item.retrieve`` work."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from localserver.brain import Turn
from localserver.server_events import item_text
from localserver.tts import SpokenWord


@dataclass
class Entry:
    """One item plus server-side knowledge about it."""

    item: dict[str, Any]
    heard: str | None = None  # what the server recognised in a user audio item
    audio: bytearray = field(default_factory=bytearray)  # assistant audio as sent (wire format)
    audio_ms: int = 0
    audio_rate: int = 24000  # samples per second of ``audio``
    sample_width: int = 2  # bytes per sample of ``audio`` (1 for G.711)
    words: list[SpokenWord] = field(default_factory=list)


class ItemNotFound(KeyError):
    """No item with that id."""


class Conversation:
    """Ordered conversation items of a session."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last_id(self) -> str | None:
        """Id of the last item (the ``previous_item_id`` for a new one)."""
        return self._entries[-1].item["id"] if self._entries else None

    def get(self, item_id: str) -> Entry:
        """The entry for ``item_id``; raises :class:`ItemNotFound`."""
        for entry in self._entries:
            if entry.item["id"] == item_id:
                return entry
        raise ItemNotFound(item_id)

    def add(
        self, item: dict[str, Any], previous_item_id: str | None = None, *, heard: str | None = None
    ) -> tuple[Entry, str | None]:
        """Insert ``item`` after ``previous_item_id`` ("root" = first; None = at the end).

        Returns (the entry, the id of the item now before it)."""
        entry = Entry(item=item, heard=heard)
        return entry, self.add_entry(entry, previous_item_id)

    def add_entry(self, entry: Entry, previous_item_id: str | None = None) -> str | None:
        """Insert ``entry`` (see :meth:`add`); returns the id of the item now before it."""
        if previous_item_id is None:
            before = self.last_id
            self._entries.append(entry)
        elif previous_item_id == "root":
            before = None
            self._entries.insert(0, entry)
        else:
            index = self._entries.index(self.get(previous_item_id))
            before = previous_item_id
            self._entries.insert(index + 1, entry)
        return before

    def delete(self, item_id: str) -> None:
        """Remove an item; raises :class:`ItemNotFound`."""
        self._entries.remove(self.get(item_id))

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """Cut an assistant audio item's heard part at ``audio_end_ms`` (drops unheard words).

        Raises :class:`ItemNotFound`, or ValueError with the real service's wording."""
        entry = self.get(item_id)
        item = entry.item
        if item.get("role") != "assistant" or not any(
            p.get("type") == "audio" for p in item.get("content", [])
        ):
            raise ValueError("Only assistant messages with audio content can be truncated.")
        if audio_end_ms > entry.audio_ms:
            raise ValueError(
                f"Audio content of {entry.audio_ms}ms is already shorter than {audio_end_ms}ms"
            )
        heard = [w.text for w in entry.words if w.offset_ms < audio_end_ms]
        for part in item["content"]:
            if part.get("type") == "audio":
                part["transcript"] = " ".join(heard)
        keep = audio_end_ms * entry.audio_rate // 1000 * entry.sample_width
        del entry.audio[keep:]
        entry.audio_ms = audio_end_ms

    def retrieved(self, item_id: str) -> dict[str, Any]:
        """The item as ``conversation.item.retrieved`` returns it (assistant audio included)."""
        entry = self.get(item_id)
        item = copy.deepcopy(entry.item)
        if entry.audio:
            for part in item.get("content", []):
                if part.get("type") == "audio":
                    part["audio"] = base64.b64encode(bytes(entry.audio)).decode()
        return item

    def history_tokens(self) -> int:
        """A rough token count of the conversation so far (for ``usage`` estimates)."""
        return sum(len(t.text) // 4 + 1 for t in self.history())

    def history(self) -> list[Turn]:
        """The conversation as the brain sees it."""
        turns = []
        for entry in self._entries:
            item = entry.item
            kind = item.get("type")
            if kind == "function_call_output":
                turns.append(Turn("tool", item_text(item)))
            elif kind == "message":
                text = entry.heard if entry.heard is not None else item_text(item)
                turns.append(Turn(str(item.get("role", "user")), text))
        return turns
