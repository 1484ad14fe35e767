"""Test-side check of wire events against the official ``azure-ai-voicelive`` SDK models: a dict
must deserialise to its specific typed class (no fallback to the ``ServerEvent``/``ClientEvent``
base, nor to a polymorphic base for nested items/parts), every non-optional SDK field must be
present, and every field must deserialise. The SDK is a test-only dependency: imported lazily."""

from __future__ import annotations

from typing import Any

#: Problems that recorded real traffic has too, so a faithful server must reproduce them: a user
#: audio item echoed in ``conversation.item.created`` carries ``{"type": "input_audio",
#: "transcript": null}`` without ``audio``, which the SDK models as RequestAudioContentPart.
KNOWN_SDK_GAPS = ("audio: required by RequestAudioContentPart but missing",)


class SdkValidationError(AssertionError):
    """An event the SDK models do not accept as-is."""


def _problems(value: Any, path: str, top: bool = False) -> list[str]:
    from azure.ai.voicelive._utils.model_base import Model

    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _problems(v, f"{path}[{i}]")]
    if not isinstance(value, Model):
        return []
    problems = []
    mapping = getattr(type(value), "__mapping__", None)
    if not top and mapping and type(value).__dict__.get("__mapping__") is mapping:
        problems.append(f"{path}: fell back to polymorphic base {type(value).__name__}")
    for attr, rest_field in type(value)._attr_to_rest_field.items():
        name = rest_field._rest_name
        if name not in value:
            if not rest_field._is_optional:
                problems.append(f"{path}.{name}: required by {type(value).__name__} but missing")
            continue
        try:
            problems += _problems(getattr(value, attr), f"{path}.{name}")
        except Exception as exc:  # the SDK's own deserialisation error, reported as a finding
            problems.append(f"{path}.{name}: does not deserialise ({exc})")
    return problems


def validate_event(
    payload: dict[str, Any], direction: str = "server", *, strict: bool = False
) -> Any:
    """Deserialise ``payload`` with the SDK (``direction`` "server" or "client") and check it.

    Returns the typed SDK object; raises :class:`SdkValidationError` listing every problem
    (``strict=False`` forgives :data:`KNOWN_SDK_GAPS`)."""
    from azure.ai.voicelive.models import ClientEvent, ServerEvent

    base = ServerEvent if direction == "server" else ClientEvent
    event = base._deserialize(payload, [])
    problems = []
    if type(event) is base:
        problems.append(f"{payload.get('type')!r}: fell back to {base.__name__} (no typed model)")
    problems += _problems(event, str(payload.get("type")), top=True)
    if not strict:
        problems = [p for p in problems if not p.endswith(KNOWN_SDK_GAPS)]
    if problems:
        raise SdkValidationError("; ".join(problems))
    return event
