"""The conversation's transcript as replayed after a reconnect, bounded in items and characters.

Model and classic-agent mode have no server-side resume: after a reconnect the client replays the
transcript as ``conversation.item.create``. Replaying everything grows without end (384 items per
reconnect after an hour) and so does the memory holding it. :class:`History` keeps the most recent
``max_items`` messages within ``max_chars`` characters; older messages are folded into one short
summary (how many were left out, and the opening words of the latest ``summary_snippets`` of
them), replayed first as a ``system`` message so the model knows the conversation is older than
what it sees. Sans-I/O: text in, client events out.
"""

from __future__ import annotations

from collections import deque

from processors.voicelive import wire as ev

REPLAY_ITEMS = 40  # the last 40 messages (about 20 turns) are replayed word for word
REPLAY_CHARS = 8000  # ... within 8000 characters (about 2000 tokens)
SUMMARY_SNIPPETS = 12  # the summary quotes the opening words of the 12 latest left-out messages
SNIPPET_CHARS = 80


class History:
    """``(role, text)`` messages, oldest first; ``role`` is ``user`` or ``assistant``."""

    def __init__(
        self,
        max_items: int = REPLAY_ITEMS,
        max_chars: int = REPLAY_CHARS,
        summary_snippets: int = SUMMARY_SNIPPETS,
    ) -> None:
        self.max_items = max_items
        self.max_chars = max_chars
        self._messages: deque[tuple[str, str]] = deque()
        self._chars = 0
        self.folded = 0
        """How many older messages were left out of the replay (folded into the summary)."""
        self._snippets: deque[str] = deque(maxlen=summary_snippets)

    def __len__(self) -> int:
        return len(self._messages)

    def __bool__(self) -> bool:
        return bool(self._messages) or self.folded > 0

    @property
    def messages(self) -> list[tuple[str, str]]:
        """The messages replayed word for word, oldest first."""
        return list(self._messages)

    def append(self, role: str, text: str) -> None:
        """Add a message; fold the oldest ones while the bounds are exceeded (the newest stays)."""
        text = text if len(text) <= self.max_chars else text[-self.max_chars :]
        self._messages.append((role, text))
        self._chars += len(text)
        while len(self._messages) > 1 and (
            len(self._messages) > self.max_items or self._chars > self.max_chars
        ):
            old_role, old_text = self._messages.popleft()
            self._chars -= len(old_text)
            self.folded += 1
            words = (
                old_text
                if len(old_text) <= SNIPPET_CHARS
                else old_text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"
            )
            self._snippets.append(f"{old_role}: {words}")

    def summary(self) -> str | None:
        """One line standing for the folded messages, or None when nothing was folded."""
        if not self.folded:
            return None
        quoted = len(self._snippets)
        latest = f"; the latest {quoted} began: " + " | ".join(self._snippets) if quoted else ""
        return (
            f"Earlier part of this conversation, shortened after a reconnect: {self.folded} older "
            f"messages are not repeated here{latest}"
        )

    def replay(self) -> list[dict[str, object]]:
        """The ``conversation.item.create`` events restoring the conversation on a new session."""
        items: list[dict[str, object]] = []
        summary = self.summary()
        if summary is not None:
            items.append(ev.system_text_item(summary))
        for role, text in self._messages:
            items.append(
                ev.user_text_item(text) if role == "user" else ev.assistant_text_item(text)
            )
        return items
