"""The `fastmcp_oauth` kind: a FastMCP server with FastMCP's own in-memory OAuth provider.

Kept apart from `servers.py` because importing FastMCP is slow. No `from __future__ import
annotations`: FastMCP builds tool schemas from live annotations.
"""

import time
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.auth.auth import ClientRegistrationOptions, RevocationOptions
from fastmcp.server.auth.providers.in_memory import InMemoryOAuthProvider
from fastmcp.server.dependencies import get_http_request
from mcp.server.auth.provider import AuthorizationCode, AuthorizationParams, RefreshToken
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from sample_servers.control import (
    ANONYMOUS,
    IDENTITY_SCOPE_KEY,
    ControlPlane,
    Counters,
    Identity,
    fingerprint,
)
from sample_servers.oauth_provider import VALID_SCOPES
from sample_servers.servers import MCP_PATH, Built, OAuthAuthenticator, _add_drift_control, origin_of
from sample_servers.toolset import ToolRegistry, ToolSpec, WhoAmI, common_tools


async def whoami() -> WhoAmI:
    """Describe the caller's identity as the server sees it."""
    identity = get_http_request().scope.get(IDENTITY_SCOPE_KEY)
    return WhoAmI(**(identity or ANONYMOUS.as_dict()))


class CountingInMemoryProvider(InMemoryOAuthProvider):
    """FastMCP's in-memory provider, unchanged except for counting and a configurable token TTL."""

    def __init__(self, counters: Counters, token_ttl: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.counters = counters
        self.token_ttl = token_ttl

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        await super().register_client(client_info)
        self.counters.registrations += 1

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        url = await super().authorize(client, params)
        self.counters.authorizations += 1
        return url

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        token = await super().exchange_authorization_code(client, authorization_code)
        self.counters.tokens_issued["authorization_code"] += 1
        return self._apply_ttl(token)

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        token = await super().exchange_refresh_token(client, refresh_token, scopes)
        self.counters.tokens_issued["refresh_token"] += 1
        return self._apply_ttl(token)

    async def revoke_token(self, token: Any) -> None:
        self.counters.revocations += 1
        await super().revoke_token(token)

    def _apply_ttl(self, token: OAuthToken) -> OAuthToken:
        if self.token_ttl is None:
            return token
        self.access_tokens[token.access_token].expires_at = int(time.time()) + self.token_ttl
        return token.model_copy(update={"expires_in": self.token_ttl})

    def identify(self, token: str) -> Identity | None:
        access = self.access_tokens.get(token)
        if access is None or (access.expires_at is not None and access.expires_at < time.time()):
            return None
        return Identity(
            auth="oauth",
            # FastMCP's in-memory provider has no users; the client is the only principal.
            subject=access.subject or access.client_id,
            client_id=access.client_id,
            scopes=tuple(access.scopes),
            fingerprint=fingerprint(token),
        )

    def expire_access_tokens(self) -> int:
        past = int(time.time()) - 1
        for access in self.access_tokens.values():
            access.expires_at = past
        return len(self.access_tokens)


class FastMCPToolHost:
    def __init__(self, server: FastMCP) -> None:
        self.server = server

    def add(self, spec: ToolSpec, description: str) -> None:
        self.server.tool(spec.fn, name=spec.name, description=description, annotations=spec.annotations)

    def remove(self, name: str) -> None:
        self.server.remove_tool(name)


def build_fastmcp_oauth(kind: str, options: dict[str, Any], ports: list[int]) -> Built:
    origin = origin_of(ports[0])
    counters = Counters(kind)
    ttl = options.get("token_ttl")
    provider = CountingInMemoryProvider(
        counters,
        int(ttl) if ttl is not None else None,
        base_url=origin,
        client_registration_options=ClientRegistrationOptions(
            enabled=True, valid_scopes=VALID_SCOPES, default_scopes=VALID_SCOPES
        ),
        revocation_options=RevocationOptions(enabled=True),
        required_scopes=list(options.get("required_scopes", [])) or None,
    )
    server = FastMCP(f"sample-{kind}", version="1.0.0", auth=provider)
    registry = ToolRegistry(FastMCPToolHost(server), common_tools(whoami))
    app = server.http_app(
        path=MCP_PATH,
        json_response=bool(options.get("json_response", False)),
        stateless_http=bool(options.get("stateless", False)),
    )
    resource_metadata = f"{origin}/.well-known/oauth-protected-resource{MCP_PATH}"
    plane = ControlPlane(
        app,
        counters,
        mcp_path=MCP_PATH,
        authenticator=OAuthAuthenticator(provider.identify),
        resource_metadata_url=resource_metadata,
    )
    _add_drift_control(plane, registry)
    plane.add_control("expire_tokens", lambda _: {"expired": provider.expire_access_tokens()})
    # FastMCP turns URLs into AnyHttpUrl, so its issuer carries a trailing "/"; report it verbatim.
    issuer = str(provider.issuer_url)
    info = {
        "tools": registry.names,
        "issuer": issuer,
        "resource_metadata": resource_metadata,
        "scopes": VALID_SCOPES,
    }
    return Built([plane], info)
