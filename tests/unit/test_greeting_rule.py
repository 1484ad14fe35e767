"""The greeting rule of the sans-I/O session: ``response.create`` right after
``session.updated``."""

from __future__ import annotations

from typing import Any

from processors.voicelive import actions as act
from processors.voicelive.session_state import VoiceLiveSession


def sends(actions: list[act.Action]) -> list[dict[str, Any]]:
    return [a.event for a in actions if isinstance(a, act.Send)]


def test_greeting_waits_for_session_updated_then_is_the_first_response_create() -> None:
    s = VoiceLiveSession({"turn_detection": {"type": "server_vad"}})
    assert s.greet(instructions="Welcome the user in French.") == []
    created = sends(s.receive({"type": "session.created", "session": {"id": "sess_1"}}, 0.0))
    assert [e["type"] for e in created] == ["session.update"]
    (create,) = sends(s.receive({"type": "session.updated", "session": {"id": "sess_1"}}, 0.0))
    assert create["type"] == "response.create"
    assert create["response"] == {"instructions": "Welcome the user in French."}


def test_greeting_on_a_ready_session_is_sent_at_once_and_only_once() -> None:
    s = VoiceLiveSession({})
    s.receive({"type": "session.created", "session": {"id": "sess_1"}}, 0.0)
    s.receive({"type": "session.updated", "session": {"id": "sess_1"}}, 0.0)
    (create,) = sends(s.greet(text="Hi, I am your assistant."))
    message = create["response"]["pre_generated_assistant_message"]
    assert message["content"] == [{"type": "text", "text": "Hi, I am your assistant."}]
    s.receive({"type": "response.created", "response": {"id": "resp_1"}}, 0.1)
    assert (
        sends(
            s.receive(
                {"type": "response.done", "response": {"id": "resp_1", "status": "completed"}}, 0.2
            )
        )
        == []
    )


def test_plain_greeting_is_a_bare_response_create_and_typed_text_after_it_waits() -> None:
    s = VoiceLiveSession({})
    s.greet()
    s.receive({"type": "session.created", "session": {"id": "sess_1"}}, 0.0)
    (create,) = sends(s.receive({"type": "session.updated", "session": {"id": "sess_1"}}, 0.0))
    assert "response" not in create
    s.receive({"type": "response.created", "response": {"id": "resp_1"}}, 0.1)
    assert [e["type"] for e in sends(s.user_text("hello"))] == ["conversation.item.create"]
    (later,) = sends(
        s.receive(
            {"type": "response.done", "response": {"id": "resp_1", "status": "completed"}}, 0.2
        )
    )
    assert later["type"] == "response.create" and "response" not in later
