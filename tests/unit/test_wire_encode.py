"""Client events leave as the JSON ``json.dumps`` would write; appends take a direct path."""

from __future__ import annotations

import json
import os

import pytest

from processors.voicelive import wire


def test_an_append_is_the_json_of_its_event() -> None:
    event = wire.audio_append(os.urandom(1920))
    text = wire.encode_client_event(event)
    assert json.loads(text) == event
    assert text == json.dumps(event, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("audio", ['AAAA"}, {"type": "x', "AA\\AA", "AA\nAA", "AAé", 12])
def test_an_append_whose_fields_need_escaping_is_still_valid_json(audio: object) -> None:
    event = {"type": "input_audio_buffer.append", "event_id": "evt_client_1", "audio": audio}
    assert json.loads(wire.encode_client_event(event)) == event


def test_other_events_and_extra_fields_go_through_json() -> None:
    extra = {**wire.audio_append(b"\0\0"), "note": "café"}
    assert json.loads(wire.encode_client_event(extra)) == extra
    update = wire.session_update({"instructions": "réponds « oui »"})
    assert wire.encode_client_event(update) == json.dumps(update, ensure_ascii=False)
