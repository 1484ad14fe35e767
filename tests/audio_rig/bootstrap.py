"""Registers tests/audio_rig as the importable package ``audio_rig`` (run with runpy by conftests).

Only that folder is made importable: putting tests/ itself on sys.path would let test folders
such as tests/transports shadow the project's packages of the same name.
"""

import importlib.util
import sys
from pathlib import Path

if "audio_rig" not in sys.modules:
    _RIG = Path(__file__).resolve().parent
    _spec = importlib.util.spec_from_file_location(
        "audio_rig", _RIG / "__init__.py", submodule_search_locations=[str(_RIG)]
    )
    sys.modules["audio_rig"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["audio_rig"])
