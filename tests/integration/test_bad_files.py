"""Unusable files: one line naming the file and what to do, non-zero exit, no connection attempt."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.integration.cli import assert_one_line, run_unconnected
from tests.support.audio import write_wav
from tests.support.scenarios import noise


def float_wav(path: Path) -> Path:
    """A 32-bit float WAV (format tag 3), which Python's wave module cannot read."""
    data = struct.pack("<4f", 0.0, 0.5, -0.5, 0.0)
    fmt = struct.pack("<HHIIHH", 3, 1, 24000, 24000 * 4, 4, 32)
    path.write_bytes(
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    return path


def prepare(tmp: Path) -> None:
    write_wav(tmp / "in.wav", noise(0.5, seed=1))
    write_wav(tmp / "silent.wav", b"")
    (tmp / "empty.wav").write_bytes(b"")
    (tmp / "notes.wav").write_text("these are not samples\n" * 10)
    float_wav(tmp / "float.wav")
    (tmp / "afile").write_text("x")
    (tmp / "folder").mkdir()


CASES = [
    (["--input-wav", "folder"], "'folder' is a folder"),
    (["--input-wav", "empty.wav"], "'empty.wav' is empty or cut short"),
    (
        ["--input-wav", "notes.wav"],
        "'notes.wav' cannot be read (file does not start with RIFF id): convert it to 16-bit PCM",
    ),
    (
        ["--input-wav", "float.wav"],
        "'float.wav' cannot be read (floating-point samples are not supported)",
    ),
    (["--input-wav", "silent.wav"], "'silent.wav' holds no audio"),
    (
        ["--input-wav", "in.wav", "--output-wav", "in.wav"],
        "--output-wav must not be the --input-wav file",
    ),
    (["--input-wav", "in.wav", "--output-wav", "folder"], "--output-wav 'folder' is a folder"),
    (["--input-wav", "in.wav", "--output-wav", "missing/out.wav"], "does not exist"),
    (["--input-wav", "in.wav", "--log-dir", "afile"], "--log-dir 'afile' is a file, not a folder"),
    (["--input-wav", "in.wav", "--log-dir", "afile/logs"], "--log-dir 'afile/logs' is under"),
]


@pytest.mark.parametrize(
    "args,expected", CASES, ids=[c[1].split("'")[1] if "'" in c[1] else c[1][:20] for c in CASES]
)
async def test_unusable_files_fail_before_connecting_with_one_line(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    prepare(tmp_path)
    code, out, err = await run_unconnected(
        tmp_path,
        ["--endpoint", "{url}", "--api-key", "k", "--model", "m", *args],
    )
    assert_one_line(code, out, err, expected)
    assert (tmp_path / "in.wav").stat().st_size > 44, "the input WAV was overwritten"
