"""Hypothesis drives ``VoiceLiveSession.receive`` with at least 10,000 server messages per run.

Each example is one session fed a batch of messages: valid events (the recorded traces and
``event-examples.json``), the same events mutated (fields deleted, retyped, replaced by random
unicode, huge or non-finite numbers, nested junk), truncated JSON, random text and bytes. Mixed in
are *probes*: valid events with fresh ids whose mapping is known exactly (an audio delta of a
response nobody interrupted plays exactly its bytes; a transcript ``done`` yields the agent
transcript with its text; ...). Properties: ``receive`` never raises, returns only actions, and
every probe maps as it must, whatever junk came before it.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.voicelive import actions as act
from processors.voicelive.session_state import VoiceLiveSession
from tests.support.traces import (
    CLIENT_EVENT_TYPES,
    load_examples,
    load_trace,
    received,
    trace_paths,
)

MIN_EVENTS = 10_000
EXAMPLES = 300
BATCH = (35, 70)
PROBE_KINDS = 8
ACTION_TYPES = tuple(
    t for t in vars(act).values() if isinstance(t, type) and t.__module__ == act.__name__
)


def _valid_events() -> list[dict[str, Any]]:
    events = [e for kind, e in load_examples().items() if kind not in CLIENT_EVENT_TYPES]
    for path in trace_paths():
        events.extend(received(load_trace(path)))
    return events


VALID = _valid_events()
_fresh = itertools.count()

# -- strategies -----------------------------------------------------------------------------------

huge_ints = st.sampled_from([2**63, -(2**63) - 1, 10**30, -(10**308), 2**1024])
numbers = st.one_of(st.integers(), huge_ints, st.floats(allow_nan=True, allow_infinity=True))
texts = st.text(max_size=24)  # any code point, surrogates included
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with 1-3 of: a field deleted, retyped or replaced, junk added (any depth)."""
    event = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        target = event
        nested = [v for v in event.values() if isinstance(v, dict)]
        if nested and draw(st.booleans()):
            target = draw(st.sampled_from(nested))
        keys = sorted(target, key=str)
        op = draw(st.sampled_from(["delete", "retype", "add", "unicode"]))
        if op == "delete" and keys:
            del target[draw(st.sampled_from(keys))]
        elif op == "retype" and keys:
            target[draw(st.sampled_from(keys))] = draw(json_values)
        elif op == "unicode" and keys:
            target[draw(st.sampled_from(keys))] = draw(st.text(min_size=1, max_size=40))
        else:
            target[draw(texts)] = draw(json_values)
    return event


@st.composite
def wire_form(draw: st.DrawFn, event: dict[str, Any]) -> str | bytes | dict[str, Any]:
    """The event as it could arrive: the dict, its JSON text or bytes, or truncated JSON."""
    form = draw(st.sampled_from(["dict", "text", "bytes", "truncated", "truncated-bytes"]))
    if form == "dict":
        return event
    text = json.dumps(event, ensure_ascii=draw(st.booleans()))
    if form == "text":
        return text
    if form == "bytes":
        return text.encode("utf-8", "surrogatepass")
    cut = draw(st.integers(0, max(0, len(text) - 1)))
    return text[:cut] if form == "truncated" else text[:cut].encode("utf-8", "surrogatepass")


raw_junk = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    json_values.map(lambda v: json.dumps(v)),
    st.sampled_from(VALID).map(lambda e: json.dumps(e)[:-1]),  # one byte short
    st.integers(1, 400).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"type": "x", "a": ' + "[" * n + "]" * n + "}"),
    st.sampled_from(sorted({e["type"] for e in VALID})).map(
        lambda t: (
            '{"type": "' + t + '", "audio_start_ms": 1e999, "audio_end_ms": -1e999, '
            '"expires_at": 1e400}'
        )
    ),
    st.integers(4301, 6000).map(lambda n: '{"type": "response.done", "n": ' + "9" * n + "}"),
)


def _ids() -> tuple[str, str]:
    n = next(_fresh)
    return f"resp_fz{n}", f"item_fz{n}"


@st.composite
def probe(draw: st.DrawFn) -> tuple[str, dict[str, Any], Any]:
    """A valid event with fresh ids and what it must map to: (kind, event, expected)."""
    kind = draw(
        st.sampled_from(
            [
                "audio",
                "transcript_done",
                "text_done",
                "user_transcript",
                "response_created",
                "benign_error",
                "session_created",
                "text_delta",
            ]
        )
    )
    response_id, item_id = _ids()
    ids = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
    if kind == "audio":
        pcm = draw(st.binary(min_size=1, max_size=200).map(lambda b: b + b))  # whole samples
        return (
            kind,
            {
                "type": "response.audio.delta",
                "event_id": "event_p",
                **ids,
                "delta": base64.b64encode(pcm).decode(),
            },
            pcm,
        )
    if kind in ("transcript_done", "text_done"):
        text = draw(st.text(min_size=1, max_size=60))
        if kind == "transcript_done":
            return (
                kind,
                {
                    "type": "response.audio_transcript.done",
                    "event_id": "event_p",
                    **ids,
                    "transcript": text,
                },
                text,
            )
        return (
            kind,
            {"type": "response.text.done", "event_id": "event_p", **ids, "text": text},
            text,
        )
    if kind == "text_delta":
        text = draw(st.text(min_size=1, max_size=30))
        return (
            kind,
            {"type": "response.text.delta", "event_id": "event_p", **ids, "delta": text},
            text,
        )
    if kind == "user_transcript":
        text = draw(st.text(min_size=1, max_size=60).filter(lambda t: t.strip()))
        return (
            kind,
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "event_id": "event_p",
                "item_id": item_id,
                "content_index": 0,
                "transcript": text,
            },
            text.strip(),
        )
    if kind == "response_created":
        return (
            kind,
            {
                "type": "response.created",
                "event_id": "event_p",
                "response": {
                    "id": response_id,
                    "object": "realtime.response",
                    "status": "in_progress",
                    "output": [],
                },
            },
            response_id,
        )
    if kind == "benign_error":
        code = draw(st.sampled_from(["response_cancel_not_active", "item_already_truncated"]))
        return (
            kind,
            {
                "type": "error",
                "event_id": "event_p",
                "error": {"type": "invalid_request_error", "code": code, "message": "m"},
            },
            code,
        )
    session_id = f"sess_fz{next(_fresh)}"
    return (
        kind,
        {
            "type": "session.created",
            "event_id": "event_p",
            "session": {"id": session_id, "object": "realtime.session"},
        },
        session_id,
    )


def check_probe(kind: str, expected: Any, actions: list[Any]) -> None:
    of = lambda t: [a for a in actions if isinstance(a, t)]  # noqa: E731
    if kind == "audio":
        plays = of(act.PlayAudio)
        assert len(plays) == 1 and plays[0].pcm == expected, (kind, actions)
    elif kind in ("transcript_done", "text_done"):
        (done,) = of(act.AgentTranscript)
        assert done.text == expected and not done.interrupted, (kind, actions)
    elif kind == "text_delta":
        (delta,) = of(act.AgentText)
        assert delta.delta == expected, (kind, actions)
    elif kind == "user_transcript":
        (user,) = of(act.UserTranscript)
        assert user.final and user.text == expected, (kind, actions)
    elif kind == "response_created":
        assert of(act.ResponseStarted) == [act.ResponseStarted(expected)], (kind, actions)
    elif kind == "benign_error":
        (err,) = of(act.ServiceError)
        assert err.benign and not err.fatal and err.code == expected, (kind, actions)
    elif kind == "session_created":
        created, sends = of(act.SessionCreated), of(act.Send)
        assert [c.session_id for c in created] == [expected], (kind, actions)
        assert [s.event["type"] for s in sends] == ["session.update"], (kind, actions)


message = st.one_of(
    st.sampled_from(VALID).map(lambda e: ("valid", copy.deepcopy(e), None)),
    mutated().flatmap(wire_form).map(lambda m: ("mutated", m, None)),
    raw_junk.map(lambda m: ("junk", m, None)),
    probe(),
    probe(),
)


def test_receive_never_raises_and_valid_events_still_map() -> None:
    fed: list[int] = [0]
    probed: dict[str, int] = {}

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.lists(message, min_size=BATCH[0], max_size=BATCH[1]))
    def run(batch: list[tuple[str, Any, Any]]) -> None:
        session = VoiceLiveSession(
            {"modalities": ["text", "audio"], "turn_detection": {"type": "server_vad"}}
        )
        session.receive({"type": "session.created", "session": {"id": "sess_fz"}}, 0.0)
        session.receive({"type": "session.updated", "session": {"id": "sess_fz"}}, 0.0)
        for n, (kind, msg, expected) in enumerate(batch):
            try:
                actions = session.receive(msg, float(n))
            except Exception as exc:  # the property: nothing escapes
                raise AssertionError(
                    f"receive raised {exc.__class__.__name__}: {exc} "
                    f"on {kind} message {str(msg)[:300]!r}"
                ) from exc
            fed[0] += 1
            assert isinstance(actions, list) and all(
                isinstance(a, ACTION_TYPES) for a in actions
            ), actions
            if expected is not None:
                check_probe(kind, expected, actions)
                probed[kind] = probed.get(kind, 0) + 1

    run()
    print(
        f"\nfuzz: {fed[0]} server messages through VoiceLiveSession.receive; "
        f"probes checked: {probed}"
    )
    assert fed[0] >= MIN_EVENTS
    assert len(probed) == PROBE_KINDS and min(probed.values()) >= 100, probed


def test_every_recorded_and_example_event_is_accepted_without_a_warning() -> None:
    """The valid corpus itself: no event of it is reported as malformed or unusable."""
    session = VoiceLiveSession({"modalities": ["text", "audio"]})
    for n, event in enumerate(VALID):
        actions = session.receive(copy.deepcopy(event), float(n))
        warnings = [
            a
            for a in actions
            if isinstance(a, act.Notice)
            and a.level == "warning"
            and not a.message.startswith("user transcription failed")
        ]
        assert not warnings, (event["type"], warnings)
