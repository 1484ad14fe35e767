"""Shared fixtures: a clean environment for the default script, distinctive secrets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECRET_ENV_PREFIXES = ("AZURE_", "AI_FOUNDRY_")


@pytest.fixture
def script_env() -> dict[str, str]:
    """The environment for running the default script as a subprocess, without Azure settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SECRET_ENV_PREFIXES)}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def python() -> str:
    return sys.executable
