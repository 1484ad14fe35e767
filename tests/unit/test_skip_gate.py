"""The skip gate: a skipped test fails the run unless ``--allow-skips`` is given (pytest in a
subprocess, on a test file written for the purpose)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.script_run import ROOT, script_env

SKIPPING = """
import pytest

pytest.importorskip("a_module_that_does_not_exist_{n}")


def test_never_runs():
    pass
"""
BODY_SKIP = """
import pytest


@pytest.fixture
def rig():
    pytest.skip("PulseAudio is not installed")


def test_in_setup(rig):
    pass


def test_in_body():
    pytest.skip("not today")


@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False


def test_passes():
    pass
"""


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.support.skip_gate",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(folder),
            *args,
            str(folder),
        ],
        cwd=ROOT,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("source", [BODY_SKIP, SKIPPING.format(n=1)], ids=["test", "module"])
def test_a_skip_fails_the_run(tmp_path: Path, source: str) -> None:
    (tmp_path / "test_skips.py").write_text(source)
    run = _pytest(tmp_path)
    assert run.returncode in (1, 2), run.stdout + run.stderr  # 2: a module that failed to collect
    assert "unexpected skip" in run.stdout and "--allow-skips" in run.stdout
    assert " skipped" not in run.stdout.splitlines()[-1]


def test_skips_in_setup_and_body_fail_and_xfail_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "test_skips.py").write_text(BODY_SKIP)
    summary = _pytest(tmp_path).stdout.splitlines()[-1]
    # a skip in a fixture is a set-up failure, which pytest counts as an error
    assert "1 failed" in summary and "1 error" in summary, summary
    assert "1 passed" in summary and "1 xfailed" in summary and "skipped" not in summary, summary


def test_allow_skips_reports_them_as_skips(tmp_path: Path) -> None:
    (tmp_path / "test_skips.py").write_text(BODY_SKIP)
    run = _pytest(tmp_path, "--allow-skips")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 skipped" in run.stdout.splitlines()[-1]
