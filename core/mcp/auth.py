"""How the MCP transport authenticates without knowing OAuth.

The transport asks a `CredentialProvider` for headers before every HTTP request it sends to the MCP
server (POST, the GET stream, DELETE) and hands it every 401/403 answer. The provider decides
whether the request is worth one retry (a refreshed token, a stepped-up grant) or raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from core.errors import AuthRequired, ConfigurationError
from core.rfc9110 import Challenge, is_token


@dataclass(frozen=True)
class AuthChallenge:
    """A 401 or 403 answer from the MCP server, as the transport saw it."""

    status: int
    challenges: tuple[Challenge, ...] = ()
    url: str = ""
    method: str = ""  # JSON-RPC method of the request that was refused, when known

    def bearer(self) -> Challenge | None:
        return next((c for c in self.challenges if c.scheme == "bearer"), None)


@runtime_checkable
class CredentialProvider(Protocol):
    async def auth_headers(self) -> dict[str, str]:
        """Headers to add to the next request to the MCP server (may refresh proactively)."""
        ...

    async def handle_challenge(self, challenge: AuthChallenge) -> bool:
        """React to a 401/403. Return True to have the transport retry the request once with fresh
        `auth_headers()`; return False to let the transport raise `AuthRequired`/`InsufficientScope`.
        A provider may also raise an `AuthError` itself with a more precise message."""
        ...


class NoAuth:
    """For servers that need no credential."""

    async def auth_headers(self) -> dict[str, str]:
        return {}

    async def handle_challenge(self, challenge: AuthChallenge) -> bool:
        return False


@dataclass(repr=False)
class StaticHeader:
    """A fixed secret header: `Authorization: Bearer <token>` or an API key in a custom header.

    A 401 means the key was rejected; there is nothing to refresh, so it is never retried.
    """

    header: str
    value: str
    _prefix: str = field(default="")

    @classmethod
    def bearer(cls, token: str) -> StaticHeader:
        return cls("Authorization", token, "Bearer ")

    @classmethod
    def api_key(cls, header: str, key: str) -> StaticHeader:
        # The one header-name rule (RFC 9110 token) that the connector form and the CLI also apply.
        if not is_token(header):
            raise ConfigurationError(
                f"invalid header name for an API key: {header!r}",
                hint="use letters, digits and - (RFC 9110 token characters), e.g. X-API-Key",
            )
        return cls(header, key)

    def __post_init__(self) -> None:
        # Visible ASCII only: anything else fails deep in the HTTP stack with an error whose text
        # could quote the header, and CR/LF would be header injection.
        if not self.value or any(not 0x21 <= ord(c) <= 0x7E for c in self.value):
            raise ConfigurationError(
                f"the {self.header} credential must be printable ASCII without spaces",
                hint="paste the key again without surrounding text or line breaks",
            )

    def __repr__(self) -> str:
        return f"StaticHeader({self.header!r}, <redacted>)"

    async def auth_headers(self) -> dict[str, str]:
        return {self.header: self._prefix + self.value}

    async def handle_challenge(self, challenge: AuthChallenge) -> bool:
        if challenge.status == 401:
            raise AuthRequired(
                f"the server rejected the configured {self.header} credential",
                challenges=challenge.challenges,
                hint="check or replace the key",
            )
        return False
