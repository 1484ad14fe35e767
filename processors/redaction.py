"""The single redaction point: every log line, file line and console line goes through it.

Secrets are removed two ways: by value (API keys, bearer tokens and agent access tokens are
registered with :func:`add_secret` as soon as they are known, including tokens minted at run time)
and by shape (an ``api-key`` header, an ``Authorization: Bearer`` value, an ``agent-access-token``
or ``api-key`` query parameter), so a secret that was never registered is still not written.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "***"

_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Query parameters that carry credentials (raw or percent-encoded "Bearer%20...").
    re.compile(r"(?i)([?&](?:agent-access-token|api-key|authorization|access_token|token)=)[^&\s'\"#]+"),
    # Header lines as websockets logs them ("> api-key: K") and as dict reprs ("'api-key': 'K'").
    re.compile(r"(?i)(\bapi-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
    re.compile(r"(?i)(\bauthorization['\"]?\s*[:=]\s*['\"]?bearer\s+)[^\s'\",}]+"),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-_.~+/]{16,}=*"),
)


class Redactor:
    """Masks registered secret values and credential-shaped substrings in text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._value_re: re.Pattern[str] | None = None

    def add_secret(self, value: str | None) -> None:
        """Register a secret value; values shorter than 4 characters are ignored (too common)."""
        if not value or len(value) < 4:
            return
        with self._lock:
            if value in self._secrets:
                return
            self._secrets.add(value)
            # Longest first so a secret containing another is masked whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._value_re = re.compile("|".join(re.escape(s) for s in ordered))

    def clear(self) -> None:
        """Forget the registered values (tests)."""
        with self._lock:
            self._secrets.clear()
            self._value_re = None

    def redact(self, text: str) -> str:
        """Return ``text`` with every registered secret and credential-shaped value masked."""
        value_re = self._value_re
        if value_re is not None:
            text = value_re.sub(MASK, text)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text

    def redact_obj(self, obj: Any) -> Any:
        """Redact every string inside a JSON-like object (dicts, lists, strings)."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {k: self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.redact_obj(v) for v in obj]
        return obj


REDACTOR = Redactor()


def add_secret(value: str | None) -> None:
    """Register a secret with the process-wide redactor."""
    REDACTOR.add_secret(value)


def redact(text: str) -> str:
    """Mask secrets in ``text`` with the process-wide redactor."""
    return REDACTOR.redact(text)
