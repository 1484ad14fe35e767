"""Typed ``session.update`` configuration, validated before any connection is made.

Each class mirrors one object of the Voice Live session (protocol reference §5) and turns into its
wire form with ``to_wire()``. ``validate()`` raises :class:`ConfigError` with one line naming the
field and what to fix. ``extra`` dicts pass fields this module does not model straight through, so a
new service field never needs a release of this package. :func:`apply_wire` goes the other way: a
``session`` object in wire form (``--session-json``) replaces the typed fields it names, so the
same rules check it as check the flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from processors.voicelive.errors import ConfigError

TURN_DETECTION_TYPES = (
    "server_vad",
    "semantic_vad",
    "azure_semantic_vad",
    "azure_semantic_vad_en",
    "azure_semantic_vad_multilingual",
)
AZURE_SEMANTIC_VADS = TURN_DETECTION_TYPES[2:]
EOU_MODELS = (
    "semantic_detection_v1",
    "semantic_detection_v1_en",
    "semantic_detection_v1_multilingual",
)
EOU_LEVELS = ("low", "medium", "high", "default")
MULTILINGUAL_LANGUAGES = ("en", "es", "fr", "it", "de", "ja", "pt", "zh", "ko", "hi")
NOISE_REDUCTION_TYPES = ("azure_deep_noise_suppression", "near_field", "far_field")
OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
VOICE_TYPES = (
    "openai",
    "azure-standard",
    "azure-custom",
    "azure-personal",
    "azure-realtime-native",
)
AZURE_VOICE_TYPES = ("azure-standard", "azure-custom", "azure-personal")
TRANSCRIPTION_MODELS = (
    "azure-speech",
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe-diarize",
    "mai-transcribe-1",
    "mai-transcribe-2",
)
MODALITIES = ("text", "audio", "animation", "avatar")
INPUT_SAMPLE_RATES = (16000, 24000)
MAX_MS = 60_000


def _fail(path: str, problem: str) -> None:
    raise ConfigError(f"invalid session setting {path}: {problem}")


def _check_ms(path: str, value: int | None, *, low: int = 0) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_MS:
        _fail(path, f"must be a whole number of milliseconds from {low} to {MAX_MS}, got {value!r}")


def _number_in(value: Any, low: float, high: float) -> bool:
    """A real number (not a bool, not NaN) from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return False
    return low <= value <= high


def _check_unit(path: str, value: float | None) -> None:
    if value is not None and not _number_in(value, 0.0, 1.0):
        _fail(path, f"must be a number from 0.0 to 1.0, got {value!r}")


def guess_voice_type(name: str) -> str:
    """The type a bare voice name means: Azure voice names carry a locale (``en-US-Ava``) and HD
    ones a ``:``; anything else is taken as an OpenAI voice (and checked against their names)."""
    return "openai" if ":" not in name and "-" not in name else "azure-standard"


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@dataclass
class EndOfUtteranceDetection:
    """Text-based end-of-utterance detection (needs a cascaded pipeline or an agent).

    ``threshold`` and ``timeout`` (seconds) are the legacy spellings the quickstart sends; the
    current ones are ``threshold_level`` and ``timeout_ms``.
    """

    model: str = "semantic_detection_v1"
    threshold_level: str | None = None
    timeout_ms: int | None = None
    threshold: float | None = None
    timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str = "turn_detection.end_of_utterance_detection") -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        if self.model not in EOU_MODELS:
            _fail(f"{path}.model", f"must be one of {', '.join(EOU_MODELS)}, got {self.model!r}")
        if self.threshold_level is not None and self.threshold_level not in EOU_LEVELS:
            _fail(
                f"{path}.threshold_level",
                f"must be one of {', '.join(EOU_LEVELS)}, got {self.threshold_level!r}",
            )
        _check_ms(f"{path}.timeout_ms", self.timeout_ms, low=1)
        _check_unit(f"{path}.threshold", self.threshold)
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, (int, float))
            or not 0 < self.timeout <= 60
        ):
            _fail(f"{path}.timeout", f"must be seconds in (0, 60], got {self.timeout!r}")

    def to_wire(self) -> dict[str, Any]:
        """The wire form, unset fields left out."""
        wire = _compact(
            {
                "model": self.model,
                "threshold_level": self.threshold_level,
                "timeout_ms": self.timeout_ms,
                "threshold": self.threshold,
                "timeout": self.timeout,
            }
        )
        return {**wire, **self.extra}


@dataclass
class TurnDetection:
    """Server-side turn detection (VAD). ``None`` in :class:`SessionConfig` means manual turns."""

    type: str = "server_vad"
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    speech_duration_ms: int | None = None
    eagerness: Literal["auto", "low", "medium", "high"] | None = None
    remove_filler_words: bool | None = None
    languages: list[str] | None = None
    end_of_utterance_detection: EndOfUtteranceDetection | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None
    auto_truncate: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str = "turn_detection") -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        if self.type not in TURN_DETECTION_TYPES:
            _fail(
                f"{path}.type",
                f"must be one of {', '.join(TURN_DETECTION_TYPES)}, got {self.type!r}",
            )
        _check_unit(f"{path}.threshold", self.threshold)
        _check_ms(f"{path}.prefix_padding_ms", self.prefix_padding_ms)
        _check_ms(f"{path}.silence_duration_ms", self.silence_duration_ms)
        _check_ms(f"{path}.speech_duration_ms", self.speech_duration_ms)
        semantic = self.type == "semantic_vad"
        if semantic and any(
            v is not None
            for v in (self.threshold, self.prefix_padding_ms, self.silence_duration_ms)
        ):
            _fail(
                path,
                "semantic_vad takes eagerness, not threshold/prefix_padding_ms/silence_duration_ms",
            )
        if self.eagerness is not None:
            if not semantic:
                _fail(f"{path}.eagerness", f"only applies to semantic_vad, not {self.type}")
            if self.eagerness not in ("auto", "low", "medium", "high"):
                _fail(
                    f"{path}.eagerness",
                    f"must be auto, low, medium or high, got {self.eagerness!r}",
                )
        if self.remove_filler_words is not None and self.type not in AZURE_SEMANTIC_VADS:
            _fail(
                f"{path}.remove_filler_words",
                f"only applies to azure_semantic_vad*, not {self.type}",
            )
        if self.languages is not None:
            if self.type not in ("azure_semantic_vad", "azure_semantic_vad_multilingual"):
                _fail(
                    f"{path}.languages",
                    f"only applies to azure_semantic_vad(_multilingual), not {self.type}",
                )
            langs = self.languages if isinstance(self.languages, list) else [self.languages]
            bad = [lang for lang in langs if lang not in MULTILINGUAL_LANGUAGES]
            if bad or not self.languages:
                _fail(
                    f"{path}.languages",
                    f"must be a non-empty list among {', '.join(MULTILINGUAL_LANGUAGES)}, "
                    f"got {self.languages!r}",
                )
        if self.end_of_utterance_detection is not None:
            if semantic:
                _fail(f"{path}.end_of_utterance_detection", "does not apply to semantic_vad")
            self.end_of_utterance_detection.validate(f"{path}.end_of_utterance_detection")
        if self.auto_truncate and self.interrupt_response is False:
            _fail(f"{path}.auto_truncate", "needs interrupt_response true")

    def to_wire(self) -> dict[str, Any]:
        """The wire form, unset fields left out, ``extra`` merged in."""
        eou = self.end_of_utterance_detection.to_wire() if self.end_of_utterance_detection else None
        wire = _compact(
            {
                "type": self.type,
                "threshold": self.threshold,
                "prefix_padding_ms": self.prefix_padding_ms,
                "silence_duration_ms": self.silence_duration_ms,
                "speech_duration_ms": self.speech_duration_ms,
                "eagerness": self.eagerness,
                "remove_filler_words": self.remove_filler_words,
                "languages": self.languages,
                "end_of_utterance_detection": eou,
                "create_response": self.create_response,
                "interrupt_response": self.interrupt_response,
                "auto_truncate": self.auto_truncate,
            }
        )
        return {**wire, **self.extra}


@dataclass
class Voice:
    """The agent's voice: an OpenAI name or an Azure voice object."""

    name: str
    type: str = "azure-standard"
    temperature: float | None = None
    rate: str | None = None
    pitch: str | None = None
    volume: str | None = None
    style: str | None = None
    locale: str | None = None
    endpoint_id: str | None = None
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_azure(self) -> bool:
        """Whether this is an Azure voice (the ones with word timestamps)."""
        return self.type in AZURE_VOICE_TYPES

    def validate(self, path: str = "voice") -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        if self.type not in VOICE_TYPES:
            _fail(f"{path}.type", f"must be one of {', '.join(VOICE_TYPES)}, got {self.type!r}")
        if not self.name or not isinstance(self.name, str):
            _fail(f"{path}.name", "is required")
        if self.type == "openai" and self.name not in OPENAI_VOICES:
            _fail(
                f"{path}.name", f"OpenAI voices are {', '.join(OPENAI_VOICES)}, got {self.name!r}"
            )
        if self.type == "azure-custom" and not self.endpoint_id:
            _fail(f"{path}.endpoint_id", "is required for azure-custom voices")
        if self.type == "azure-personal" and not self.model:
            _fail(f"{path}.model", "is required for azure-personal voices")
        if self.temperature is not None and not _number_in(self.temperature, 0.0, 2.0):
            _fail(f"{path}.temperature", f"must be from 0.0 to 2.0, got {self.temperature!r}")

    def to_wire(self) -> dict[str, Any]:
        """The wire form, unset fields left out, ``extra`` merged in."""
        wire = _compact(
            {
                "name": self.name,
                "type": self.type,
                "temperature": self.temperature,
                "rate": self.rate,
                "pitch": self.pitch,
                "volume": self.volume,
                "style": self.style,
                "locale": self.locale,
                "endpoint_id": self.endpoint_id,
                "model": self.model,
            }
        )
        return {**wire, **self.extra}


@dataclass
class InputTranscription:
    """Transcription of the user's audio (``conversation.item.input_audio_transcription.*``)."""

    model: str = "azure-speech"
    language: str | None = None
    phrase_list: list[str] | None = None
    prompt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str = "input_audio_transcription") -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        if self.model not in TRANSCRIPTION_MODELS:
            _fail(
                f"{path}.model",
                f"must be one of {', '.join(TRANSCRIPTION_MODELS)}, got {self.model!r}",
            )
        if self.phrase_list is not None and self.model != "azure-speech":
            _fail(f"{path}.phrase_list", "only works with model azure-speech")
        if self.prompt is not None and self.model == "azure-speech":
            _fail(f"{path}.prompt", "does not apply to azure-speech (use phrase_list)")

    def to_wire(self) -> dict[str, Any]:
        """The wire form, unset fields left out, ``extra`` merged in."""
        wire = _compact(
            {
                "model": self.model,
                "language": self.language,
                "phrase_list": self.phrase_list,
                "prompt": self.prompt,
            }
        )
        return {**wire, **self.extra}


@dataclass
class EchoCancellation:
    """Server echo cancellation. With ``reference_source="client"`` and ``channels=2`` the
    input is stereo pcm16: channel 0 the microphone, channel 1 what the speaker played at that
    moment (:meth:`client` builds it; the connection adds ``features=client_ec_reference:true``).
    """

    reference_source: Literal["server", "client"] | None = None
    channels: int | None = None

    def validate(self, path: str = "input_audio_echo_cancellation") -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        if self.reference_source not in (None, "server", "client"):
            _fail(
                f"{path}.reference_source",
                f"must be server or client, got {self.reference_source!r}",
            )
        if self.channels not in (None, 1, 2):
            _fail(f"{path}.channels", f"must be 1 or 2, got {self.channels!r}")
        if self.channels == 2 and self.reference_source != "client":
            _fail(f"{path}.channels", "2 channels need reference_source client")
        if self.reference_source == "client" and self.channels != 2:
            _fail(f"{path}.channels", "a client reference needs channels 2 (mic, then played)")

    @classmethod
    def client(cls) -> EchoCancellation:
        """The client sends the echo reference: stereo input, channel 1 what was played."""
        return cls(reference_source="client", channels=2)

    @property
    def client_reference(self) -> bool:
        """Whether the client sends the echo reference (stereo input: mic, then what played)."""
        return self.reference_source == "client"

    def to_wire(self) -> dict[str, Any]:
        """The wire form, unset fields left out."""
        return _compact(
            {
                "type": "server_echo_cancellation",
                "reference_source": self.reference_source,
                "channels": self.channels,
            }
        )


@dataclass
class SessionConfig:
    """Everything sent in ``session.update``. ``None`` fields are left at the service default.

    Set ``turn_detection=None`` together with ``manual_turns=True`` to send
    ``turn_detection: null``.
    """

    modalities: list[str] | None = field(default_factory=lambda: ["text", "audio"])
    instructions: str | None = None
    voice: Voice | str | None = None
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    manual_turns: bool = False
    noise_reduction: str | None = None
    echo_cancellation: EchoCancellation | None = None
    input_transcription: InputTranscription | None = None
    word_timestamps: bool = False
    input_sample_rate: int = 24000
    temperature: float | None = None
    max_response_output_tokens: int | Literal["inf"] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def client_echo_reference(self) -> bool:
        """Whether the input is stereo with the client's echo reference on channel 1."""
        return self.echo_cancellation is not None and self.echo_cancellation.client_reference

    @property
    def input_channels(self) -> int:
        """Channels of the input audio sent (2 with a client echo reference)."""
        return 2 if self.client_echo_reference else 1

    def _voice(self) -> Voice | None:
        if isinstance(self.voice, str):
            return Voice(name=self.voice, type=guess_voice_type(self.voice))
        return self.voice

    def validate(self, *, agent_mode: bool = False) -> None:
        """Raise :class:`ConfigError` on the first invalid field."""
        if self.modalities is not None:
            bad = [m for m in self.modalities if m not in MODALITIES]
            if bad:
                _fail(
                    "modalities",
                    f"unknown modality {bad[0]!r}; use text, audio, animation or avatar",
                )
            if "text" not in self.modalities:
                _fail(
                    "modalities",
                    "must include text (audio-only is not allowed): use [text] or [text, audio]",
                )
        if agent_mode and self.instructions is not None:
            _fail("instructions", "agents own their prompt; instructions are only for model mode")
        if self.manual_turns and self.turn_detection is not None:
            _fail("turn_detection", "manual turns and a turn detection type are mutually exclusive")
        if self.turn_detection is not None:
            self.turn_detection.validate()
        voice = self._voice()
        if voice is not None:
            voice.validate()
        if self.noise_reduction is not None and self.noise_reduction not in NOISE_REDUCTION_TYPES:
            _fail(
                "input_audio_noise_reduction.type",
                f"must be one of {', '.join(NOISE_REDUCTION_TYPES)}, got {self.noise_reduction!r}",
            )
        if self.echo_cancellation is not None:
            self.echo_cancellation.validate()
        fmt = self.extra.get("input_audio_format", "pcm16")
        if self.client_echo_reference and fmt != "pcm16":
            _fail("input_audio_echo_cancellation", f"a client reference needs pcm16, not {fmt}")
        if self.input_transcription is not None:
            self.input_transcription.validate()
        if self.word_timestamps and voice is not None and not voice.is_azure:
            _fail(
                "output_audio_timestamp_types",
                f"word timestamps need an Azure voice, not {voice.type}",
            )
        if self.input_sample_rate not in INPUT_SAMPLE_RATES:
            _fail(
                "input_audio_sampling_rate",
                f"must be 16000 or 24000, got {self.input_sample_rate!r}",
            )
        if self.temperature is not None and not _number_in(self.temperature, 0.0, 2.0):
            _fail("temperature", f"must be from 0.0 to 2.0, got {self.temperature!r}")
        tokens = self.max_response_output_tokens
        if (
            tokens is not None
            and tokens != "inf"
            and (isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= 4096)
        ):
            _fail("max_response_output_tokens", f"must be 1-4096 or 'inf', got {tokens!r}")

    def to_wire(self) -> dict[str, Any]:
        """The ``session`` object of ``session.update``."""
        voice = self._voice()
        wire: dict[str, Any] = _compact(
            {
                "modalities": self.modalities,
                "instructions": self.instructions,
                "voice": voice.to_wire() if voice else None,
                "input_audio_format": "pcm16",
                "input_audio_sampling_rate": self.input_sample_rate,
                "output_audio_format": "pcm16",
                "turn_detection": self.turn_detection.to_wire() if self.turn_detection else None,
                "input_audio_noise_reduction": {"type": self.noise_reduction}
                if self.noise_reduction
                else None,
                "input_audio_echo_cancellation": self.echo_cancellation.to_wire()
                if self.echo_cancellation
                else None,
                "input_audio_transcription": self.input_transcription.to_wire()
                if self.input_transcription
                else None,
                "output_audio_timestamp_types": ["word"] if self.word_timestamps else None,
                "temperature": self.temperature,
                "max_response_output_tokens": self.max_response_output_tokens,
                "tools": self.tools,
                "tool_choice": self.tool_choice,
            }
        )
        if self.manual_turns:
            wire["turn_detection"] = None
        return {**wire, **self.extra}


def quickstart_session() -> SessionConfig:
    """The session the Voice Live agents quickstart sends, as the default agent session."""
    return SessionConfig(
        modalities=["text", "audio"],
        turn_detection=TurnDetection(
            type="azure_semantic_vad",
            threshold=0.3,
            prefix_padding_ms=200,
            silence_duration_ms=200,
            remove_filler_words=True,
            end_of_utterance_detection=EndOfUtteranceDetection(
                model="semantic_detection_v1", threshold=0.1, timeout=4
            ),
        ),
        noise_reduction="azure_deep_noise_suppression",
        echo_cancellation=EchoCancellation(),
        voice=Voice(name="en-US-Aria:DragonHDLatestNeural", type="azure-standard", temperature=0.8),
        word_timestamps=True,
    )


def _typed(cls: type[Any], value: Any, path: str) -> Any:
    """``cls`` from its wire object: known keys become fields, the rest goes to ``extra``."""
    if not isinstance(value, dict):
        _fail(path, f"must be an object, got {value!r}")
    names = {f for f in cls.__dataclass_fields__ if f != "extra"}
    known = {k: v for k, v in value.items() if k in names}
    rest = {k: v for k, v in value.items() if k not in names}
    if cls is TurnDetection and isinstance(known.get("end_of_utterance_detection"), dict):
        eou_path = f"{path}.end_of_utterance_detection"
        known["end_of_utterance_detection"] = _typed(
            EndOfUtteranceDetection, known["end_of_utterance_detection"], eou_path
        )
    if cls is Voice:
        known.setdefault("name", "")  # reported by Voice.validate as "voice.name: is required"
    if "extra" in cls.__dataclass_fields__:
        return cls(**known, extra=rest)
    if rest:
        _fail(f"{path}.{next(iter(rest))}", "is not a field of this object")
    return cls(**known)


# wire fields that map one to one onto SessionConfig fields, with the JSON types they accept
_PLAIN_FIELDS: dict[str, tuple[type, ...]] = {
    "modalities": (list,),
    "instructions": (str,),
    "temperature": (float, int),
    "max_response_output_tokens": (int, str),
    "tools": (list,),
    "tool_choice": (str, dict),
}


def apply_wire(session: SessionConfig, wire: dict[str, Any]) -> None:
    """Replace the fields ``wire`` (a ``session`` object as sent) names; unknown ones go to
    ``extra`` unchanged. The result still has to pass :meth:`SessionConfig.validate`."""
    for key, value in wire.items():
        if key == "voice":
            if isinstance(value, str):
                session.voice = Voice(name=value, type=guess_voice_type(value))
            else:
                session.voice = None if value is None else _typed(Voice, value, "voice")
            voice = session._voice()
            if (
                voice is not None
                and not voice.is_azure
                and "output_audio_timestamp_types" not in wire
            ):
                session.word_timestamps = False  # as --voice does: word timestamps are Azure's
        elif key == "turn_detection":
            session.manual_turns = value is None
            session.turn_detection = None if value is None else _typed(TurnDetection, value, key)
        elif key == "input_audio_noise_reduction":
            if value is not None and not isinstance(value, dict):
                _fail(key, f"must be an object or null, got {value!r}")
            session.noise_reduction = None if value is None else value.get("type")
        elif key == "input_audio_echo_cancellation":
            echo = None if value is None else dict(value) if isinstance(value, dict) else value
            if isinstance(echo, dict):
                echo.pop("type", None)
            session.echo_cancellation = (
                None if echo is None else _typed(EchoCancellation, echo, key)
            )
        elif key == "input_audio_transcription":
            session.input_transcription = (
                None if value is None else _typed(InputTranscription, value, key)
            )
        elif key == "output_audio_timestamp_types":
            if value is not None and not isinstance(value, list):
                _fail(key, f"must be a list, got {value!r}")
            session.word_timestamps = bool(value) and "word" in value
        elif key == "input_audio_sampling_rate":
            session.input_sample_rate = value
        elif key in _PLAIN_FIELDS:
            if value is not None and not isinstance(value, _PLAIN_FIELDS[key]):
                _fail(key, f"must be {_PLAIN_FIELDS[key][0].__name__}, got {value!r}")
            setattr(session, key, value)
        else:
            session.extra[key] = value
