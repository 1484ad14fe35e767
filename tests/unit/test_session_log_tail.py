"""The session log's provisional last line (issue 8, item 12): rewritten in place while an
answer arrives, replaced by the final line, never left behind in a finished log."""

from __future__ import annotations

from pathlib import Path

from processors.logfiles import TailLineWriter


def test_provisional_line_is_rewritten_then_replaced_by_the_final_one(tmp_path: Path) -> None:
    w = TailLineWriter(tmp_path / "s.log")
    w.write("Agent Session Log:")
    w.set_tail("Agent Audio Response (partial): Hello. ")
    w.set_tail("Agent Audio Response (partial): Hello. Ünïcode 日本語 — «ok».")
    w.write("User Input: wait")  # a line arriving meanwhile goes before the provisional one
    w.close()
    assert (tmp_path / "s.log").read_text(encoding="utf-8").splitlines() == [
        "Agent Session Log:",
        "User Input: wait",
        "Agent Audio Response (partial): Hello. Ünïcode 日本語 — «ok».",
    ]


def test_final_line_replaces_a_longer_provisional_one_without_leftovers(tmp_path: Path) -> None:
    w = TailLineWriter(tmp_path / "s.log")
    w.set_tail("Agent Audio Response (partial): " + "x" * 200)
    w.commit_tail("Agent Audio Response: short")
    w.write("User Input: next")
    w.set_tail("Agent Text Response (partial): gone.")
    w.commit_tail(None)
    w.commit_tail("Agent Text Response: no provisional line before this one")
    w.close()
    assert (tmp_path / "s.log").read_text(encoding="utf-8") == (
        "Agent Audio Response: short\n"
        "User Input: next\n"
        "Agent Text Response: no provisional line before this one\n"
    )
