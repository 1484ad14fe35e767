"""The single redaction point: every log line, file line and console line goes through it.

Secrets (API keys, bearer tokens, agent access tokens) are registered with :func:`add_secret` as
soon as they are known (at configuration time, and tokens minted at run time before they are
used). A line is then masked (``***``) by three rules:

1. **Credential shapes, registered or not**: the value of an ``api-key`` header (``> api-key: K``,
   ``'api-key': 'K'``), of ``Authorization: Bearer``, of a long ``Bearer`` token, of the
   ``agent-access-token``, ``api-key``, ``authorization``, ``access_token`` and ``token`` query
   parameters.
2. **Secrets of 8 characters or more: every piece of 8 or more.** Each run of text that shares 8
   or more consecutive characters with a registered secret is masked, whatever surrounds it. So a
   secret cut by a logger (websockets' frame lines keep the first 48 and last 24 characters:
   ``'{"type":"error","message":"K-echo-9c4...`` ), split across quotes or wrapped in other text
   never shows 8 consecutive characters. (The leak rule: no run of 8 characters of a secret
   appears anywhere.)
3. **Secrets shorter than 8 characters: only where they stand as credentials.** Such a value
   (``--api-key test``) cannot leak an 8-character run, and masking it everywhere would damage
   ordinary text (``DragonHDLatestNeural`` -> ``DragonHDLa***Neural``, a transcript saying "a
   test"). It is masked as a whole word right after a credential word (``key test``,
   ``token: abcd``, ``Bearer abcd``) in any line, and as any whole word in *diagnostic* lines
   (``redact(text, diagnostic=True)``: the ``error: ...`` last word, warnings and errors in the
   logs), where a server echoes what it was sent (an error message, a close reason). Conversation
   text (transcripts, the session configuration) keeps every occurrence.

Cost: a line that holds no piece of a secret and no credential word costs one C-level pass over
fixed 4-character chunks (a shared run of 8 always contains one of them at a position that is a
multiple of 4) and one lower-casing; see ``bench/logcost.py``. Only a line that passes that
filter is scanned position by position.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "***"
RUN = 8
"""The shortest piece of a secret that must never appear (rule 2)."""
_CHUNK = RUN // 2  # a RUN-long shared run always contains an aligned chunk of this length

_SHAPES: tuple[re.Pattern[str], ...] = (
    # Query parameters that carry credentials (raw or percent-encoded "Bearer%20...").
    re.compile(
        r"(?i)([?&](?:agent-access-token|api-key|authorization|access_token|token)=)[^&\s'\"#\\]+"
    ),
    # Header lines as websockets logs them ("> api-key: K") and as dict reprs ("'api-key': 'K'").
    re.compile(r"(?i)(\bapi-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}\\&]+"),
    re.compile(r"(?i)(\bauthorization['\"]?\s*[:=]\s*['\"]?bearer\s+)[^\s'\",}\\]+"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-_.~+/]{16,}=*"),
)
# Every shape and every credential word of rule 3 contains one of these (lower case).
_KEYWORDS = ("key", "token", "bearer", "authoriz", "secret", "passw", "credential")
_CREDENTIAL_WORD = (
    r"\b(?:api[-_ ]?key|key|token|secret|password|passwd|credentials?|bearer|authorization)\b"
)
_WORD_CHARS = r"\w\-.~+/"  # a short secret inside a longer word of these is not masked


class Redactor:
    """Masks registered secrets and credential-shaped values in text (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._long: list[str] = []
        self._short: list[str] = []
        # Rebuilt on each registration and swapped in whole, so ``redact`` needs no lock.
        self._runs: frozenset[str] = frozenset()
        self._chunks: frozenset[tuple[str, ...]] = frozenset()
        self._short_cred: re.Pattern[str] | None = None
        self._short_word: re.Pattern[str] | None = None

    def add_secret(self, value: str | None) -> None:
        """Register a secret value (empty values are ignored)."""
        if not value:
            return
        with self._lock:
            if value in self._long or value in self._short:
                return
            if len(value) >= RUN:
                self._long.append(value)
                runs = {s[i : i + RUN] for s in self._long for i in range(len(s) - RUN + 1)}
                chunks = {
                    tuple(s[i : i + _CHUNK]) for s in self._long for i in range(len(s) - _CHUNK + 1)
                }
                self._chunks, self._runs = frozenset(chunks), frozenset(runs)
            else:
                self._short.append(value)
                alternatives = "|".join(
                    re.escape(s) for s in sorted(self._short, key=len, reverse=True)
                )
                whole = rf"(?<![{_WORD_CHARS}])(?-i:{alternatives})(?![{_WORD_CHARS}=])"
                self._short_cred = re.compile(
                    rf"(?i)({_CREDENTIAL_WORD}[\s'\":=]*(?:(?:is|was)\s+)?['\"]?){whole}"
                )
                self._short_word = re.compile(whole)

    def clear(self) -> None:
        """Forget the registered values (tests)."""
        with self._lock:
            self._long, self._short = [], []
            self._runs, self._chunks = frozenset(), frozenset()
            self._short_cred = self._short_word = None

    def redact(self, text: str, *, diagnostic: bool = False) -> str:
        """Return ``text`` with secrets and credential-shaped values masked.

        ``diagnostic`` marks an error or warning line: short secrets are then masked as any whole
        word too (rule 3).
        """
        chunks = self._chunks
        # text's aligned _CHUNK-character pieces (strict=False: a shorter tail is left out)
        if (
            chunks
            and len(text) >= RUN
            and not chunks.isdisjoint(zip(*[iter(text)] * _CHUNK, strict=False))
        ):
            text = self._mask_runs(text)
        if diagnostic and self._short_word is not None:
            text = self._short_word.sub(MASK, text)
        lower = text.lower()
        if any(k in lower for k in _KEYWORDS):
            for pattern in _SHAPES:
                text = pattern.sub(_keep_prefix, text)
            if self._short_cred is not None:
                text = self._short_cred.sub(_keep_prefix, text)
        return text

    def _mask_runs(self, text: str) -> str:
        """Replace every span covered by a RUN-long window of a registered secret with MASK."""
        runs = self._runs
        n = len(text)
        covered = bytearray(n)
        for i in range(n - RUN + 1):
            if text[i : i + RUN] in runs:
                covered[i : i + RUN] = b"\x01" * RUN
        if 1 not in covered:
            return text  # the 4-character filter matched by chance
        out: list[str] = []
        i = 0
        while i < n:
            if covered[i]:
                j = covered.find(0, i)
                out.append(MASK)
            else:
                j = covered.find(1, i)
                out.append(text[i : j if j >= 0 else n])
            i = j if j >= 0 else n
        return "".join(out)

    def redact_obj(self, obj: Any) -> Any:
        """Redact every string inside a JSON-like object (dicts, lists, strings)."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {k: self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.redact_obj(v) for v in obj]
        return obj


def _keep_prefix(match: re.Match[str]) -> str:
    return match.group(1) + MASK


REDACTOR = Redactor()


def add_secret(value: str | None) -> None:
    """Register a secret with the process-wide redactor."""
    REDACTOR.add_secret(value)


def redact(text: str, *, diagnostic: bool = False) -> str:
    """Mask secrets in ``text`` with the process-wide redactor (see :meth:`Redactor.redact`)."""
    return REDACTOR.redact(text, diagnostic=diagnostic)
