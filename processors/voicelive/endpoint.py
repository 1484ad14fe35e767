"""Where and how to connect: the three agent/model modes, the URL and the upgrade headers.

Pure functions, no I/O: the URL is built from the endpoint, the API version and the mode's query
parameters (the order the quickstart and the SDK use); ``https`` becomes ``wss``; plain
``http``/``ws`` is only accepted for loopback hosts, since it would send credentials in clear text.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from processors.voicelive.errors import ConfigError

REALTIME_PATH = "/voice-live/realtime"
DEFAULT_API_VERSION = "2026-07-15"
CLASSIC_AGENT_API_VERSION = "2025-05-01-preview"
TOKEN_SCOPE = "https://ai.azure.com/.default"


@dataclass(frozen=True)
class ClassicAgent:
    """Agent Service "classic" agent (the quickstart's mode): agent id + project + access token.

    ``access_token=None`` means an Entra token is minted for it at each connect.
    """

    agent_id: str
    project_name: str
    access_token: str | None = None

    def query(self, access_token: str | None) -> list[tuple[str, str]]:
        """The mode's query parameters; ``access_token`` when none was configured."""
        token = self.access_token or access_token
        if not token:
            raise ConfigError(
                "classic agent mode needs an agent access token (--agent-access-token or Entra ID)"
            )
        return [
            ("agent-project-name", self.project_name),
            ("agent-id", self.agent_id),
            ("agent-access-token", token),
        ]

    @property
    def label(self) -> str:
        """How the session log names the agent (its id)."""
        return self.agent_id


@dataclass(frozen=True)
class Agent:
    """Current Foundry agent, selected by name (optionally version) within a project."""

    agent_name: str
    project_name: str
    agent_version: str | None = None
    conversation_id: str | None = None

    def query(self, access_token: str | None = None) -> list[tuple[str, str]]:
        """The mode's query parameters (no token: the agent is reached by name)."""
        q = [("agent-name", self.agent_name), ("agent-project-name", self.project_name)]
        if self.agent_version:
            q.append(("agent-version", self.agent_version))
        if self.conversation_id:
            q.append(("conversation-id", self.conversation_id))
        return q

    @property
    def label(self) -> str:
        """How the session log names the agent (name, and version when given)."""
        return (
            self.agent_name if not self.agent_version else f"{self.agent_name}:{self.agent_version}"
        )


@dataclass(frozen=True)
class Model:
    """Model mode: talk to a model deployment directly, no agent."""

    model: str

    def query(self, access_token: str | None = None) -> list[tuple[str, str]]:
        """The mode's query parameter: the model."""
        return [("model", self.model)]

    @property
    def label(self) -> str:
        """The model's name."""
        return self.model


Target = ClassicAgent | Agent | Model


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Endpoint:
    """A validated endpoint: the ``ws``/``wss`` base URL and any query already on it."""

    base: str
    query: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def host(self) -> str:
        """The host name, without port."""
        return urlsplit(self.base).hostname or ""

    @classmethod
    def parse(cls, endpoint: str | None) -> Endpoint:
        """Validate ``endpoint``: ``https://``/``wss://``, or ``http://``/``ws://`` on loopback."""
        if not endpoint or not endpoint.strip():
            raise ConfigError(
                "no endpoint: set AZURE_VOICE_LIVE_ENDPOINT or pass --endpoint https://<resource>.services.ai.azure.com"
            )
        raw = endpoint.strip()
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        if scheme not in ("https", "wss", "http", "ws"):
            raise ConfigError(
                f"endpoint {raw!r} must start with https:// or wss:// "
                "(http:// and ws:// only for loopback)"
            )
        host = parts.hostname
        if not host:
            raise ConfigError(f"endpoint {raw!r} has no host name")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ConfigError(f"endpoint {raw!r} has an invalid port") from None
        if scheme in ("http", "ws") and not is_loopback(host):
            raise ConfigError(
                f"endpoint {scheme}://{host} is not encrypted: use https:// or wss:// "
                f"({scheme}:// is only allowed for loopback hosts)"
            )
        ws_scheme = "wss" if scheme in ("https", "wss") else "ws"
        path = parts.path.rstrip("/")
        if path.endswith(REALTIME_PATH):
            path = path[: -len(REALTIME_PATH)]
        base = urlunsplit((ws_scheme, parts.netloc, path + REALTIME_PATH, "", ""))
        return cls(base=base, query=tuple(parse_qsl(parts.query)))


def build_url(
    endpoint: Endpoint,
    target: Target,
    *,
    api_version: str,
    access_token: str | None = None,
    debug: bool = False,
    client_echo_reference: bool = False,
) -> str:
    """The WebSocket URL for ``target``; ``access_token`` fills a classic agent's token when minted.
    ``client_echo_reference`` adds ``features=client_ec_reference:true`` (stereo input with the
    played audio on channel 1)."""
    query: list[tuple[str, str]] = [("api-version", api_version), *target.query(access_token)]
    if debug:
        query.append(("debug", "on"))
    if client_echo_reference:
        query.append(("features", "client_ec_reference:true"))
    present = {k for k, _ in query}
    query.extend((k, v) for k, v in endpoint.query if k not in present)
    return f"{endpoint.base}?{urlencode(query)}"


def build_headers(
    *, api_key: str | None = None, bearer_token: str | None = None, request_id: str | None = None
) -> dict[str, str]:
    """Upgrade headers: ``x-ms-client-request-id`` and one of ``api-key`` / ``Authorization``."""
    if bool(api_key) == bool(bearer_token):
        raise ConfigError("exactly one of an API key or a bearer token is needed")
    headers = {"x-ms-client-request-id": request_id or str(uuid.uuid4())}
    if api_key:
        headers["api-key"] = api_key
    else:
        headers["Authorization"] = f"Bearer {bearer_token}"
    return headers
