"""The default script's configuration: flags override the environment, which overrides ``.env``.

:func:`parse_config` turns ``argv`` into an :class:`AgentConfig` and validates everything that can
be checked offline (endpoint scheme and host, the agent/model mode, the session settings, the
files) so bad configuration fails before any connection with one line saying what to fix.
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import json
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from processors.console import say, warning
from processors.redaction import add_secret
from processors.voicelive.endpoint import (
    CLASSIC_AGENT_API_VERSION,
    DEFAULT_API_VERSION,
    Agent,
    ClassicAgent,
    Endpoint,
    Model,
    Target,
)
from processors.voicelive.errors import ConfigError
from processors.voicelive.session_config import (
    TURN_DETECTION_TYPES,
    EchoCancellation,
    InputTranscription,
    SessionConfig,
    TurnDetection,
    Voice,
    apply_wire,
    guess_voice_type,
    quickstart_session,
)
from transports.errors import TransportError
from transports.wavfile import check_wav

if TYPE_CHECKING:
    from processors.tools import ToolSet

# flag dest -> environment variable (the quickstart's names where it had one)
ENV = {
    "endpoint": "AZURE_VOICE_LIVE_ENDPOINT",
    "api_version": "AZURE_VOICE_LIVE_API_VERSION",
    "api_key": "AZURE_VOICE_LIVE_API_KEY",
    "agent_id": "AI_FOUNDRY_AGENT_ID",
    "project_name": "AI_FOUNDRY_PROJECT_NAME",
    "agent_access_token": "AI_FOUNDRY_AGENT_ACCESS_TOKEN",
    "agent_name": "AI_FOUNDRY_AGENT_NAME",
    "agent_version": "AI_FOUNDRY_AGENT_VERSION",
    "conversation_id": "AI_FOUNDRY_CONVERSATION_ID",
    "model": "AZURE_VOICE_LIVE_MODEL",
}
LOCAL_AGENT_ID = "local-agent"
LOCAL_PROJECT = "local-project"
LOCAL_KEY = "local-key"


@dataclass
class AgentConfig:
    """Everything the default agent pipeline needs, validated."""

    endpoint: Endpoint | None
    target: Target
    api_version: str
    api_key: str | None
    session_config: SessionConfig
    log_dir: Path = Path("logs")
    input_wav: Path | None = None
    output_wav: Path | None = None
    input_device: str | None = None
    output_device: str | None = None
    audio_process: bool = False
    """Run the PyAudio streams in a lean child process (shared-memory rings)."""
    local: bool = False
    debug: bool = False
    idle_grace_s: float = 1.5
    verbose: bool = False
    greeting: str | None = None
    """Speak first: None = wait for the user; "" = the agent's own greeting; else its text."""
    record: Path | None = None
    plain: bool = False
    tools: ToolSet | None = None
    """The functions of ``--tools`` (declared in ``session.tools`` in model mode only)."""
    tool_timeout_s: float = 10.0

    @property
    def agent_label(self) -> str | None:
        """How the agent is named to the user (``Using agent: ...``); ``None`` for a model."""
        return self.target.label if isinstance(self.target, (ClassicAgent, Agent)) else None

    @property
    def project_name(self) -> str | None:
        """The Foundry project of an agent target; ``None`` for a model."""
        return self.target.project_name if isinstance(self.target, (ClassicAgent, Agent)) else None


def shorten(message: str, longest: int = 120) -> str:
    """Keep an error to one readable line: a pasted value of thousands of characters is cut."""
    return re.sub(
        rf"[^\s'\"]{{{longest},}}", lambda m: f"{m[0][:60]}…({len(m[0])} characters)", message
    )


SECRET_FLAGS = ("--api-key", "--agent-access-token")


def _register_flag_secrets(argv: list[str], other_flags: set[str]) -> None:
    """Register the values given to secret flags, also misspelt ones (``--api-ky K`` is
    echoed by argparse as an unrecognized argument), before anything can print them."""
    for i, word in enumerate(argv):
        name, eq, value = word.partition("=")
        if not name.startswith("--") or name in other_flags:
            continue
        if not difflib.get_close_matches(name, SECRET_FLAGS, n=1, cutoff=0.7):
            continue
        if eq:
            add_secret(value)
        elif i + 1 < len(argv) and argv[i + 1] != "-":
            add_secret(argv[i + 1])


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (with a guess for a mistyped flag),
    and the values of secret flags never appear in it."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        others = {o for a in self._actions for o in a.option_strings} - set(SECRET_FLAGS)
        _register_flag_secrets(list(sys.argv[1:] if args is None else args), others)
        return super().parse_known_args(args, namespace)

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            say(message.rstrip("\n"), stream=file or sys.stderr, diagnostic=file is sys.stderr)

    def error(self, message: str) -> None:  # type: ignore[override]
        known = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        guesses = []
        for word in re.findall(
            r"(--[\w-]+)", message.partition(":")[2] if "unrecognized" in message else ""
        ):
            match = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.7)
            if match:
                guesses.append(f"{word}: did you mean {match[0]}?")
        hint = f" ({'; '.join(guesses)})" if guesses else ""
        self.exit(2, f"error: {shorten(message)}{hint}; see --help\n")


def _path(value: str) -> Path:
    if not value.strip():
        raise argparse.ArgumentTypeError("the path is empty")
    return Path(value)


def build_parser() -> argparse.ArgumentParser:
    """The ``voicelive-agent`` command line: every flag, its environment variable and default."""
    p = _Parser(
        prog="voicelive-agent",
        description="Talk to an Azure AI Voice Live agent (or model) through a pipecat pipeline. "
        "Flags override environment variables, which override .env. Press q and Enter to quit.",
    )
    conn = p.add_argument_group("connection")
    conn.add_argument(
        "--endpoint", help=f"https://… or wss://… resource endpoint [{ENV['endpoint']}]"
    )
    conn.add_argument(
        "--api-version",
        help=f"API version [{ENV['api_version']}; default {DEFAULT_API_VERSION}, "
        f"{CLASSIC_AGENT_API_VERSION} for --agent-id]",
    )
    conn.add_argument(
        "--api-key",
        help=f"API key; without one, Entra ID (DefaultAzureCredential) is used [{ENV['api_key']}]. "
        f"A key given here is visible to other users in the process list: prefer {ENV['api_key']} "
        "(environment or .env), --api-key-file, or '--api-key -' (asked for on a terminal, else "
        "read from the first line of stdin)",
    )
    conn.add_argument(
        "--api-key-file",
        type=_path,
        metavar="PATH",
        help="read the API key from this file (one line)",
    )
    conn.add_argument(
        "--local",
        action="store_true",
        help="start the embedded local Voice-Live-compatible server and talk to it",
    )
    conn.add_argument("--debug", action="store_true", help="ask the service for debug=on")
    mode = p.add_argument_group("agent or model (one of)")
    mode.add_argument("--agent-id", help=f"classic agent id [{ENV['agent_id']}]")
    mode.add_argument("--project-name", help=f"Foundry project name [{ENV['project_name']}]")
    mode.add_argument(
        "--agent-access-token",
        help=f"classic agent access token; default: an Entra token [{ENV['agent_access_token']}]",
    )
    mode.add_argument("--agent-name", help=f"current agent name [{ENV['agent_name']}]")
    mode.add_argument("--agent-version", help=f"current agent version [{ENV['agent_version']}]")
    mode.add_argument(
        "--conversation-id", help=f"resume a current-agent conversation [{ENV['conversation_id']}]"
    )
    mode.add_argument(
        "--model", help=f"model mode instead of an agent, e.g. gpt-realtime [{ENV['model']}]"
    )
    sess = p.add_argument_group("session (defaults: the quickstart's session)")
    sess.add_argument(
        "--vad", choices=[*TURN_DETECTION_TYPES, "none"], help="turn detection; none = manual turns"
    )
    sess.add_argument("--vad-threshold", type=float, help="VAD threshold, 0.0-1.0")
    sess.add_argument("--prefix-padding-ms", type=int, help="audio kept before detected speech")
    sess.add_argument("--silence-duration-ms", type=int, help="silence that ends a turn")
    sess.add_argument("--voice", help="voice name, e.g. en-US-Ava:DragonHDLatestNeural or alloy")
    sess.add_argument("--instructions", help="system instructions (model mode only)")
    sess.add_argument(
        "--transcription-model", help="input transcription model, e.g. azure-speech or whisper-1"
    )
    sess.add_argument(
        "--no-noise-suppression", action="store_true", help="turn off Azure deep noise suppression"
    )
    sess.add_argument(
        "--echo-reference",
        choices=["client", "server", "none"],
        help="echo cancellation: client = send what the speaker played with the microphone "
        "(stereo); server (default) = the service's own; none = off",
    )
    sess.add_argument(
        "--no-echo-cancellation", action="store_true", help="the same as --echo-reference none"
    )
    sess.add_argument(
        "--session-json",
        type=_path,
        help="JSON object merged into the session.update session (advanced)",
    )
    sess.add_argument(
        "--tools", metavar="MODULE", help="a .py file or module whose functions the model may call"
    )
    sess.add_argument(
        "--tool-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a tool call not done by then is answered with an error (default 10)",
    )
    io = p.add_argument_group("audio and logs")
    io.add_argument(
        "--input-wav",
        type=_path,
        help="read the microphone from this WAV (paced in real time) and exit when done",
    )
    io.add_argument(
        "--output-wav",
        type=_path,
        help="record the speaker's timeline to this WAV instead of playing it",
    )
    io.add_argument("--input-device", help="PyAudio input device index or name substring")
    io.add_argument("--output-device", help="PyAudio output device index or name substring")
    io.add_argument("--list-devices", action="store_true", help="print the audio devices and exit")
    io.add_argument(
        "--audio-process",
        action="store_true",
        help="run the microphone and speaker streams in their own lean process",
    )
    io.add_argument(
        "--log-dir",
        type=_path,
        default=Path("logs"),
        help="folder for the session, event and technical logs (default: logs)",
    )
    io.add_argument(
        "--idle-grace",
        type=float,
        default=1.5,
        help="with --input-wav: seconds of agent idleness before exiting",
    )
    io.add_argument("--verbose", action="store_true", help="show debug lines on the console")
    _add_console_flags(p)
    return p


def _add_console_flags(p: argparse.ArgumentParser) -> None:
    """The operator's console: live view, greeting, recording, device check."""
    con = p.add_argument_group("console")
    con.add_argument(
        "--greeting",
        nargs="?",
        const="",
        metavar="TEXT",
        help="the agent speaks first; in model mode TEXT instructs that first response, "
        "in agent mode it is said as is",
    )
    con.add_argument(
        "--record",
        type=_path,
        metavar="FILE.wav",
        help="record the conversation: stereo 24 kHz, left the microphone as sent, "
        "right the agent as played",
    )
    con.add_argument(
        "--plain", action="store_true", help="plain log lines instead of the live view"
    )
    con.add_argument(
        "--check-devices",
        action="store_true",
        help="record 3 s from the microphone, play it back on the speaker, "
        "say whether the microphone heard anything",
    )


SECRETS = ("api_key", "agent_access_token")


def _resolve(args: argparse.Namespace, env: dict[str, str]) -> dict[str, str | None]:
    """Flag over environment; surrounding whitespace dropped; an empty *flag* is an error
    (an empty environment variable counts as unset)."""
    values: dict[str, str | None] = {}
    for dest, var in ENV.items():
        flag = getattr(args, dest)
        name = "--" + dest.replace("_", "-")
        if flag is not None and not flag.strip():
            raise ConfigError(
                f"{name} is empty: give a value, or leave the flag out to use {var}"
                + (" or Entra ID" if dest in SECRETS else "")
            )
        if flag is not None:
            value, source = flag.strip(), name
        else:
            value, source = (env.get(var) or "").strip() or None, var
        if flag is not None:
            setattr(args, dest, value)
        if value is not None and dest in SECRETS and any(c.isspace() or ord(c) < 32 for c in value):
            raise ConfigError(f"{source} contains a space or a line break: paste the key alone")
        values[dest] = value
    return values


def _endpoint(raw: str | None) -> Endpoint:
    """:meth:`Endpoint.parse` plus what it lets through: spaces, a user:password, an Azure path."""
    text = (raw or "").strip()
    if not text:
        raise ConfigError(
            f"no endpoint: set {ENV['endpoint']} or pass --endpoint "
            "https://<resource>.services.ai.azure.com, or try --local (no Azure needed)"
        )
    parts = urlsplit(text)
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "the endpoint must not hold a user name or password: "
            "pass the key with --api-key (or AZURE_VOICE_LIVE_API_KEY)"
        )
    endpoint = Endpoint.parse(raw)
    if any(c.isspace() for c in text):
        raise ConfigError(f"endpoint {text!r} contains a space")
    path = parts.path.rstrip("/")
    if endpoint.host.lower().endswith(".azure.com") and path not in ("", "/voice-live/realtime"):
        raise ConfigError(
            f"endpoint {text!r} has a path ({path}): give the resource alone, e.g. {parts.scheme}://{parts.netloc}/"
        )
    return endpoint


def _api_version(values: dict[str, str | None], endpoint: Endpoint | None, target: Target) -> str:
    """The explicit version, else one in the endpoint's query, else the mode's default."""
    in_url = dict(endpoint.query).get("api-version") if endpoint is not None else None
    given = values["api_version"]
    if given and in_url and given != in_url:
        raise ConfigError(
            f"the endpoint says api-version={in_url} but --api-version ({ENV['api_version']}) "
            f"says {given}: give it once"
        )
    return (
        given
        or in_url
        or (CLASSIC_AGENT_API_VERSION if isinstance(target, ClassicAgent) else DEFAULT_API_VERSION)
    )


def _target(values: dict[str, str | None], flags: argparse.Namespace, local: bool) -> Target:
    # A mode given by flags wins over one from the environment.
    flag_modes = [m for m in ("agent_id", "agent_name", "model") if getattr(flags, m)]
    source = {k: getattr(flags, k) for k in ENV} if flag_modes else values
    if flag_modes:  # project name and tokens may still come from the environment
        for key in ("project_name", "agent_access_token", "agent_version", "conversation_id"):
            source[key] = source.get(key) or values.get(key)
    modes = [m for m in ("agent_id", "agent_name", "model") if source.get(m)]
    if len(modes) > 1:
        names = " and ".join("--" + m.replace("_", "-") for m in modes)
        raise ConfigError(
            f"{names} are different modes: give only one of --agent-id, --agent-name or --model"
        )
    if not modes:
        if local:
            return ClassicAgent(
                LOCAL_AGENT_ID,
                values.get("project_name") or LOCAL_PROJECT,
                values.get("agent_access_token") or LOCAL_KEY,
            )
        raise ConfigError(
            f"no agent or model: set --agent-id and --project-name "
            f"({ENV['agent_id']}, {ENV['project_name']}), "
            f"--agent-name ({ENV['agent_name']}) or --model ({ENV['model']})"
        )
    mode = modes[0]
    if mode == "model":
        return Model(str(source["model"]))
    project = source.get("project_name") or (LOCAL_PROJECT if local else None)  # --local: any name
    flag = "--agent-id" if mode == "agent_id" else "--agent-name"
    if not project:
        raise ConfigError(
            f"{flag} needs a project: pass --project-name or set {ENV['project_name']}"
        )
    if mode == "agent_id":
        return ClassicAgent(
            str(source["agent_id"]),
            project,
            source.get("agent_access_token") or (LOCAL_KEY if local else None),
        )
    return Agent(
        str(source["agent_name"]),
        project,
        source.get("agent_version"),
        source.get("conversation_id"),
    )


def _session(args: argparse.Namespace, target: Target) -> SessionConfig:
    agent_mode = not isinstance(target, Model)
    session = quickstart_session()
    if not agent_mode:
        session.input_transcription = InputTranscription(model="azure-speech")
    if args.vad == "none":
        session.turn_detection, session.manual_turns = None, True
    elif args.vad:
        session.turn_detection = TurnDetection(type=args.vad)
    td = session.turn_detection
    for name in ("vad_threshold", "prefix_padding_ms", "silence_duration_ms"):
        value = getattr(args, name)
        if value is None:
            continue
        if td is None:
            raise ConfigError(f"--{name.replace('_', '-')} needs turn detection (not --vad none)")
        setattr(td, "threshold" if name == "vad_threshold" else name, value)
    if args.voice:
        session.voice = Voice(name=args.voice, type=guess_voice_type(args.voice))
        if session.voice.type == "openai":
            session.word_timestamps = False
    if args.instructions is not None:
        session.instructions = args.instructions
    if args.transcription_model:
        session.input_transcription = InputTranscription(model=args.transcription_model)
    if args.no_noise_suppression:
        session.noise_reduction = None
    if args.no_echo_cancellation and args.echo_reference not in (None, "none"):
        both = f"--no-echo-cancellation and --echo-reference {args.echo_reference}"
        raise ConfigError(f"{both}: give only one")
    echo = "none" if args.no_echo_cancellation else args.echo_reference
    if echo == "none":
        session.echo_cancellation = None
    elif echo == "client":
        session.echo_cancellation = EchoCancellation.client()
    elif echo == "server":
        session.echo_cancellation = EchoCancellation()
    if args.session_json:  # checked by the same rules as the flags
        apply_wire(session, _read_json_object(args.session_json))
    session.validate(agent_mode=agent_mode)
    return session


def _bundled(spec: str) -> str:
    """A relative ``.py`` path that is not in the current folder but names one of the project's
    own examples (``examples/tools.py``) means that example, from wherever the script runs."""
    path = Path(spec)
    if path.suffix != ".py" or path.is_absolute() or path.exists():
        return spec
    bundled = Path(__file__).resolve().parent / path
    return str(bundled) if bundled.is_file() else spec


def _tools(spec: str | None, target: Target, session: SessionConfig) -> ToolSet | None:
    """Load ``--tools`` (a bad module fails here, in any mode) and declare them in model mode."""
    if spec is None:
        return None
    from processors.tools import load_tools  # pipecat's tool schemas: only imported when used

    tools = load_tools(_bundled(spec))
    if not isinstance(target, Model):
        say(
            f"note: --tools is for model mode: an agent runs its own tools on the service side, "
            f"so {', '.join(tools.names)} are not declared",
            err=True,
        )
        return None
    session.tools = [*(session.tools or []), *tools.to_wire()]
    session.validate()
    return tools


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--session-json file {str(path)!r} not found") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--session-json file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--session-json file {str(path)!r} must hold a JSON object")
    return data


def _check_files(args: argparse.Namespace) -> None:
    """The input WAV is readable, the output WAV and the log folder writable (before connecting)."""
    if args.input_wav is not None:
        try:
            check_wav(args.input_wav)
        except TransportError as exc:
            raise ConfigError(f"--input-wav: {exc}") from None
    if args.output_wav is not None:
        out = args.output_wav.resolve()
        if out.parent.exists() and not out.parent.is_dir():
            raise ConfigError(
                f"--output-wav {str(args.output_wav)!r} is under {str(out.parent)!r}, "
                "which is a file, not a folder"
            )
        if not out.parent.is_dir():
            raise ConfigError(f"--output-wav folder {str(out.parent)!r} does not exist")
        if out.is_dir():
            raise ConfigError(
                f"--output-wav {str(args.output_wav)!r} is a folder: name a .wav file"
            )
        if args.input_wav is not None and out == args.input_wav.resolve():
            raise ConfigError(
                "--output-wav must not be the --input-wav file (it would be overwritten)"
            )
        _probe_writable(out, "--output-wav", str(args.output_wav))
    if args.record is not None:
        _check_record(args)
    _check_log_dir(Path(args.log_dir))


def _check_record(args: argparse.Namespace) -> None:
    """``--record`` names a writable file that is neither WAV transport's file."""
    out = args.record.resolve()
    if not out.parent.is_dir():
        raise ConfigError(f"--record folder {str(out.parent)!r} does not exist")
    if out.is_dir():
        raise ConfigError(f"--record {str(args.record)!r} is a folder: name a .wav file")
    for flag, other in (("--input-wav", args.input_wav), ("--output-wav", args.output_wav)):
        if other is not None and out == other.resolve():
            raise ConfigError(f"--record must not be the {flag} file")
    _probe_writable(out, "--record", str(args.record))


def _probe_writable(path: Path, flag: str, shown: str) -> None:
    """Really try to write (``os.access`` says yes to root everywhere, /sys and /proc included).

    An existing file is opened for update without changing it; otherwise a file is created in
    its place and removed again.
    """
    try:
        if path.exists():
            with open(path, "r+b"):
                pass
        else:
            fd, probe = tempfile.mkstemp(dir=path.parent, prefix=".voicelive-probe-")
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        where = shown if path.exists() else str(path.parent)
        raise ConfigError(
            f"{flag} {shown!r} cannot be written ({exc.strerror or exc} in {where!r})"
        ) from None


def _check_log_dir(log_dir: Path) -> None:
    """The log folder exists as a writable folder, or can be created (nothing is created here)."""
    existing = log_dir.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = (
            "is a file"
            if existing == log_dir.absolute()
            else f"is under {str(existing)!r}, which is a file"
        )
        raise ConfigError(f"--log-dir {str(log_dir)!r} {what}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--log-dir {str(log_dir)!r} is not writable (no write permission on {str(existing)!r})"
        )
    try:  # os.access says yes to root everywhere, /sys and /proc included
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".voicelive-probe-"))
    except OSError as exc:
        raise ConfigError(
            f"--log-dir {str(log_dir)!r} cannot be written "
            f"({exc.strerror or exc} in {str(existing)!r})"
        ) from None


def _read_dotenv(path: Path) -> dict[str, str]:
    """The ``.env`` values; lines python-dotenv cannot parse are skipped with one warning line."""
    bad: list[int] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            line = record.args[-1] if isinstance(record.args, tuple) and record.args else None
            bad.append(line if isinstance(line, int) else 0)

    log = logging.getLogger("dotenv.main")
    handler, propagate = _Collect(), log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        values = {k: v for k, v in dotenv_values(path, encoding="utf-8").items() if v is not None}
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
            f"at offset {exc.start}): save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror or exc})") from None
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
    if bad:
        lines = ", ".join(str(n) for n in bad if n)
        plural = len(bad) > 1
        warning(
            f"{path}: line{'s' if plural else ''} {lines} could not be parsed and "
            f"{'were' if plural else 'was'} ignored (expected NAME=value)"
        )
    return values


def _read_key_file(path: Path) -> str:
    """The key in ``--api-key-file``: its one non-blank line, stripped."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--api-key-file {shown!r} not found") from None
    except IsADirectoryError:
        raise ConfigError(
            f"--api-key-file {shown!r} is a folder: name the file that holds the key"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"--api-key-file {shown!r} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(
            f"--api-key-file {shown!r} cannot be read ({exc.strerror or exc})"
        ) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        add_secret(line)
    if not lines:
        raise ConfigError(f"--api-key-file {shown!r} is empty: put the key in it, on one line")
    if len(lines) > 1:
        raise ConfigError(
            f"--api-key-file {shown!r} holds {len(lines)} lines: put the key alone on one line"
        )
    return lines[0]


def _ask_key() -> str:
    """``--api-key -``: asked for without echo on a terminal, else the first line of stdin."""
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        raise ConfigError("--api-key -: there is no stdin to read the key from")
    try:
        key = getpass.getpass("API key: ") if stdin.isatty() else stdin.readline()
    except (EOFError, KeyboardInterrupt):
        raise ConfigError("--api-key -: no key was typed") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--api-key -: the key could not be read ({exc})") from None
    key = key.strip()
    add_secret(key)
    if not key:
        raise ConfigError("--api-key -: no key was given (an empty line)")
    return key


def _key_sources(args: argparse.Namespace) -> None:
    """Put the key of ``--api-key-file`` or ``--api-key -`` into ``args.api_key``."""
    if args.api_key_file is not None:
        if args.api_key is not None:
            raise ConfigError("--api-key and --api-key-file: give only one")
        args.api_key = _read_key_file(args.api_key_file)
    elif args.api_key is not None and args.api_key.strip() == "-":
        args.api_key = _ask_key()


def parse_config(
    argv: list[str] | None = None,
    env: dict[str, str] | None = None,
    dotenv_path: str | None = ".env",
    parser: argparse.ArgumentParser | None = None,
) -> tuple[AgentConfig, argparse.Namespace]:
    """Parse ``argv`` with ``env`` (default ``os.environ`` over ``.env``); raise ``ConfigError``.

    ``parser`` is :func:`build_parser`'s parser with more arguments (the batch runner's).
    Every secret (key, access token) is registered with the redactor as soon as it is read."""
    args = (parser or build_parser()).parse_args(argv)
    if env is None:
        file_values = (
            _read_dotenv(Path(dotenv_path)) if dotenv_path and Path(dotenv_path).is_file() else {}
        )
        env = {**file_values, **os.environ}
    for dest in SECRETS:
        add_secret(env.get(ENV[dest]))
        add_secret((env.get(ENV[dest]) or "").strip())
    _key_sources(args)
    values = _resolve(args, env)
    if args.list_devices or args.check_devices:
        devices = AgentConfig(None, Model("-"), DEFAULT_API_VERSION, None, SessionConfig())
        devices.input_device, devices.output_device = args.input_device, args.output_device
        return devices, args
    if args.local and args.endpoint:
        raise ConfigError("--local and --endpoint: give only one (--local starts its own server)")
    endpoint = None if args.local else _endpoint(values["endpoint"])
    target = _target(values, args, args.local)
    api_version = _api_version(values, endpoint, target)
    session = _session(args, target)
    tools = _tools(args.tools, target, session)
    _check_files(args)
    if args.idle_grace < 0:
        raise ConfigError("--idle-grace must be zero or more seconds")
    if not 0 < args.tool_timeout <= 3600:
        raise ConfigError("--tool-timeout must be more than 0 and at most 3600 seconds")
    api_key = values["api_key"] or (LOCAL_KEY if args.local else None)
    config = AgentConfig(
        endpoint=endpoint,
        target=target,
        api_version=api_version,
        api_key=api_key,
        session_config=session,
        log_dir=args.log_dir,
        input_wav=args.input_wav,
        output_wav=args.output_wav,
        input_device=args.input_device,
        output_device=args.output_device,
        audio_process=args.audio_process,
        local=args.local,
        debug=args.debug,
        idle_grace_s=args.idle_grace,
        verbose=args.verbose,
        greeting=args.greeting,
        record=args.record,
        plain=args.plain,
        tools=tools,
        tool_timeout_s=args.tool_timeout,
    )
    return config, args
