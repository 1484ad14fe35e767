"""Shared fixtures (the default script's environment; no test sees the caller's Azure settings)
and the skip gate: an unexpected skip fails the run (``tests/support/skip_gate.py``)."""

from __future__ import annotations

import os

import pytest

from tests.support import script_run
from tests.support.script_run import ROOT  # noqa: F401  (imported from here by some tests)
from tests.support.skip_gate import (  # noqa: F401  (hooks, registered by being in this module)
    pytest_addoption,
    pytest_make_collect_report,
    pytest_runtest_makereport,
)


@pytest.fixture
def script_env() -> dict[str, str]:
    """The environment for running the default script as a subprocess, without Azure settings."""
    return script_run.script_env()


@pytest.fixture(autouse=True)
def _no_caller_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell may hold AZURE_* settings; the configuration read in-process would
    take them (a test sets what it needs itself)."""
    for name in [n for n in os.environ if n.startswith(script_run.CALLER_SETTINGS)]:
        monkeypatch.delenv(name)
