"""A skipped test is a test that does not exist: this pytest plugin reports every skip as a failure.

Loaded by ``tests/conftest.py``. ``--allow-skips`` turns it off for a run that knowingly lacks
something (e.g. a laptop without PulseAudio); ``make test`` and CI never pass it. Expected failures
(``xfail``) are left alone: they are not skips.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

ALLOW = "--allow-skips"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--allow-skips``."""
    parser.addoption(
        ALLOW,
        action="store_true",
        default=False,
        help="report skipped tests as skips instead of failures (never in CI)",
    )


def _reason(longrepr: Any) -> str:
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def _fail(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = (
        f"unexpected skip: {_reason(report.longrepr)} "
        f"(a skipped test does not run; pass {ALLOW} to allow it)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    """A test skipped in set-up or in its body fails, unless skips are allowed."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and not item.config.getoption(ALLOW):
        _fail(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None]:
    """A module skipped as a whole (``pytest.skip(allow_module_level=True)``) fails too."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not collector.config.getoption(ALLOW):
        _fail(report)
