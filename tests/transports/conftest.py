"""Transport tests (no devices): the shared helpers in tests/audio_rig import as ``audio_rig``."""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parents[1] / "audio_rig" / "bootstrap.py"))
