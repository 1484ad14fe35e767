"""Shared fixtures (the default script's environment) and the skip gate:
an unexpected skip fails the run (``tests/support/skip_gate.py``)."""

from __future__ import annotations

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
