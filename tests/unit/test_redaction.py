"""Every credential shape is masked, registered or not."""

from __future__ import annotations

from processors.redaction import MASK, Redactor


def test_registered_values_and_credential_shapes_are_masked() -> None:
    r = Redactor()
    r.add_secret("s3cr3t-value")
    lines = {
        "token s3cr3t-value in a message": "s3cr3t-value",
        "> GET /voice-live/realtime?api-version=1&agent-access-token=eyJhbGciOi.abc.def&debug=on HTTP/1.1": "eyJhbGciOi.abc.def",
        "> api-key: 0123456789abcdef": "0123456789abcdef",
        "{'api-key': 'zzzzzzzz', 'x': 1}": "zzzzzzzz",
        "> Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.payload.sig": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9",
        "wss://h/voice-live/realtime?Authorization=Bearer%20tok_abcdefgh": "tok_abcdefgh",
        "url ?api-key=querykey123&model=m": "querykey123",
    }
    for line, secret in lines.items():
        out = r.redact(line)
        assert secret not in out and MASK in out, (line, out)
    assert r.redact("debug=on&model=gpt-realtime") == "debug=on&model=gpt-realtime"


def test_redact_obj_walks_json() -> None:
    r = Redactor()
    r.add_secret("abcd1234")
    assert r.redact_obj({"a": ["x abcd1234", {"b": "abcd1234"}], "n": 3}) == {"a": [f"x {MASK}", {"b": MASK}], "n": 3}
