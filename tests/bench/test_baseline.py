"""A bench's baseline side: a commit's tree, or one line that says why there is none."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.baseline import ROOT, BaselineMissing, extract


def test_a_commit_is_extracted_with_its_tracked_files(tmp_path: Path) -> None:
    short = extract("HEAD", tmp_path / "tree")
    assert (tmp_path / "tree" / "pyproject.toml").is_file()
    assert (tmp_path / "tree" / "bench" / "__init__.py").is_file()
    full = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert full.stdout.startswith(short) and len(short) >= 7


def test_a_commit_not_in_the_checkout_is_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(BaselineMissing) as missing:
        extract("0123456789abcdef0123456789abcdef01234567", tmp_path / "tree")
    message = str(missing.value)
    assert "\n" not in message and "not in this checkout" in message and "--baseline" in message
    assert not (tmp_path / "tree").exists()
