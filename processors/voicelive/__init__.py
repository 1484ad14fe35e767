"""Voice Live for pipecat: the sans-I/O protocol layer, the connection and the service processor.

``from processors.voicelive import VoiceLiveAgentService, SessionConfig`` — names are imported
lazily so the protocol layer can be used (and tested) without loading pipecat.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "VoiceLiveAgentService": "processors.voicelive.service",
    "VoiceLiveSession": "processors.voicelive.session_state",
    "SessionConfig": "processors.voicelive.session_config",
    "TurnDetection": "processors.voicelive.session_config",
    "Voice": "processors.voicelive.session_config",
    "InputTranscription": "processors.voicelive.session_config",
    "EchoCancellation": "processors.voicelive.session_config",
    "EndOfUtteranceDetection": "processors.voicelive.session_config",
    "ConnectionSettings": "processors.voicelive.connection",
    "Credentials": "processors.voicelive.connection",
    "Endpoint": "processors.voicelive.endpoint",
    "ClassicAgent": "processors.voicelive.endpoint",
    "Agent": "processors.voicelive.endpoint",
    "Model": "processors.voicelive.endpoint",
    "ConfigError": "processors.voicelive.errors",
    "ConnectionFailed": "processors.voicelive.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'processors.voicelive' has no attribute {name!r}")
