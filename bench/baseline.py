"""The baseline side of a side-by-side bench: a commit's tracked files, extracted to a folder.

A bench runs the baseline and this tree in one run, on the same machine, and reports ratios.
The baseline must be in this checkout's history; a shallow clone does not have it, and the
bench says so in one line instead of failing inside git.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class BaselineMissing(SystemExit):
    """The baseline commit is not in this checkout."""


def extract(rev: str, into: Path, option: str = "--baseline") -> str:
    """``rev``'s tracked files under ``into``; returns its short hash. ``option``: the bench's
    option that named the commit (the error tells the user to name another with it)."""
    found = subprocess.run(
        ["git", "rev-parse", "--short", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if found.returncode != 0:
        raise BaselineMissing(
            f"bench: the baseline commit {rev} is not in this checkout (a shallow clone?): "
            f"fetch the history (git fetch --unshallow) or name another with {option}"
        )
    data = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
        tar.extractall(into, filter="data")
    return found.stdout.strip()
