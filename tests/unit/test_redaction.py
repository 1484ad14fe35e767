"""Every credential shape is masked, registered or not; no 8-character piece of a registered
secret survives, however it was cut; text that is not a secret is never changed."""

from __future__ import annotations

import json
import random
import string

from processors.redaction import MASK, Redactor
from tests.support.secrets import leaked_runs

KEY = "K-echo-9c41d7e2b05a-PROBEKEY-7f3a"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FpLmF6dXJlLmNvbSJ9.c2lnbmF0dXJl"
ORDINARY = [
    'Session Config: {"voice": {"name": "en-US-Aria:DragonHDLatestNeural", '
    '"type": "azure-standard"}}',
    "User Input: This is a test of the latest voice",
    "Agent Audio Response: The test went well, and the keys are on the table.",
    "2026-12-01 10:00:00,123:websockets.client:DEBUG:< TEXT "
    '\'{"type": "response.audio_transcript.delta", "delta": " Paris"}\' [80 bytes]',
    "debug=on&model=gpt-realtime",
]


def test_registered_values_and_credential_shapes_are_masked() -> None:
    r = Redactor()
    r.add_secret("s3cr3t-value")
    lines = {
        "token s3cr3t-value in a message": "s3cr3t-value",
        "> GET /voice-live/realtime?api-version=1&agent-access-token=eyJhbGciOi.abc.def"
        "&debug=on HTTP/1.1": "eyJhbGciOi.abc.def",
        "> api-key: 0123456789abcdef": "0123456789abcdef",
        "{'api-key': 'zzzzzzzz', 'x': 1}": "zzzzzzzz",
        "> Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.payload.sig": (
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9"
        ),
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
    assert r.redact_obj({"a": ["x abcd1234", {"b": "abcd1234"}], "n": 3}) == {
        "a": [f"x {MASK}", {"b": MASK}],
        "n": 3,
    }


def test_pieces_of_a_secret_cut_by_a_logger_are_masked() -> None:
    """websockets shortens a long frame to its first 48 and last 24 characters: the key's head
    and the token's tail stand alone, which masking by whole value missed."""
    r = Redactor()
    r.add_secret(KEY)
    r.add_secret(TOKEN)
    frame = '{"type":"error","error":{"message":"' + KEY + " " + "x" * 120 + " " + TOKEN + '"}}'
    shown = repr(frame)
    cut = f"< TEXT {shown[:48]}...{shown[-24:]} [{len(frame)} bytes]"
    assert KEY not in cut and leaked_runs(cut, KEY), (
        "the test line must hold a piece of the key only"
    )
    out = r.redact(cut)
    assert not leaked_runs(out, KEY) and not leaked_runs(out, TOKEN), out
    assert out.startswith('< TEXT \'{"type":"error","error":{"message":"') and out.endswith(
        f"[{len(frame)} bytes]"
    ), out
    issue_line = "ke...-PROBEKEY-7f3a..."  # the shape reported in issue 8
    assert r.redact(issue_line) == f"ke...{MASK}...", r.redact(issue_line)


def test_every_run_of_eight_characters_is_masked_and_nothing_else() -> None:
    """Random lines mixing ordinary words with slices of the secrets (1 to 40 characters, at
    any offset): afterwards no 8-character window of a secret is left, and a line that never
    held 8 consecutive characters of one (nor a credential word) comes out unchanged."""
    rng = random.Random(8)
    r = Redactor()
    r.add_secret(KEY)
    r.add_secret(TOKEN)
    words = [
        "the",
        "response.audio.delta",
        "x",
        "Paris",
        "event_32",
        "[203 bytes]",
        "'",
        '"',
        "...",
        "9c41",
        "PROBE",
    ]
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(1, 8)):
            if rng.random() < 0.4:
                secret = rng.choice((KEY, TOKEN))
                start = rng.randrange(len(secret))
                parts.append(secret[start : start + rng.randint(1, 40)])
            else:
                parts.append(rng.choice(words) + rng.choice(("", " ", "...", ",")))
        line = "".join(parts)
        out = r.redact(line)
        assert not leaked_runs(out, KEY) and not leaked_runs(out, TOKEN), (line, out)
        if not leaked_runs(line, KEY) and not leaked_runs(line, TOKEN):
            assert out == line, (line, out)


def test_a_short_secret_never_changes_ordinary_text() -> None:
    """``--api-key test``: the voice name and transcripts that say "test" stay intact."""
    r = Redactor()
    r.add_secret("test")
    for line in ORDINARY:
        assert r.redact(line) == line, line
        assert r.redact(line, diagnostic=False) == line
    assert "DragonHDLatestNeural" in r.redact(ORDINARY[0], diagnostic=True)


def test_a_short_secret_is_masked_where_it_stands_as_a_credential() -> None:
    r = Redactor()
    r.add_secret("test")
    assert r.redact("> api-key: test") == f"> api-key: {MASK}"
    assert r.redact("?api-key=test&x=1") == f"?api-key={MASK}&x=1"
    assert r.redact("The key test was revoked") == f"The key {MASK} was revoked"
    assert r.redact("invalid api key 'test'") == f"invalid api key '{MASK}'"
    assert r.redact("Authorization: Bearer test") == f"Authorization: Bearer {MASK}"
    # Error and warning lines: as any whole word (a close reason, an echoed message) ...
    assert r.redact(
        "error: Voice Live closed the connection (1008: test)", diagnostic=True
    ).endswith(f"(1008: {MASK})")
    # ... but never inside another word, even there.
    assert (
        r.redact("error: voice en-US-Aria:DragonHDLatestNeural, attestation", diagnostic=True)
        == "error: voice en-US-Aria:DragonHDLatestNeural, attestation"
    )


def test_masking_keeps_json_lines_valid() -> None:
    r = Redactor()
    r.add_secret(KEY)
    event = {
        "type": "error",
        "error": {"message": f"key {KEY} bad", "url": f'wss://h/?api-key=abc"{KEY}"&x=1'},
    }
    out = r.redact(json.dumps(event))
    parsed = json.loads(out)
    assert not leaked_runs(out, KEY)
    assert parsed["type"] == "error"


def test_a_clean_line_costs_no_per_character_python_work() -> None:
    """The filter: a line that shares no aligned 4-character chunk with a secret is returned as
    it is without the position-by-position scan (checked by counting scans)."""
    r = Redactor()
    r.add_secret("".join(random.Random(1).choice(string.hexdigits.lower()) for _ in range(32)))
    scans = 0
    original = r._mask_runs

    def counting(text: str) -> str:
        nonlocal scans
        scans += 1
        return original(text)

    r._mask_runs = counting  # type: ignore[method-assign]
    for line in ORDINARY * 20:
        r.redact(line)
    assert scans == 0
