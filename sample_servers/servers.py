"""Builders for every Python sample-server kind: ASGI apps plus the facts the launcher reports.

A builder gets the ports it has already bound (the server owns its sockets, so there is no
pick-a-free-port race) and returns one ASGI app per port. No `from __future__ import
annotations` here: the `whoami` tools' `Context` annotation must be a live type for the SDK.
"""

import base64
import binascii
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from mcp.server.auth.handlers.metadata import MetadataHandler
from mcp.server.auth.json_response import PydanticJSONResponse
from mcp.server.auth.provider import ProviderTokenVerifier
from mcp.server.auth.routes import (
    build_metadata,
    build_resource_metadata_url,
    cors_middleware,
    create_auth_routes,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.context import CallNext, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sample_servers.control import (
    ANONYMOUS,
    IDENTITY_SCOPE_KEY,
    ControlPlane,
    Counters,
    Identity,
    fingerprint,
    json_answer,
    read_body,
    replay_body,
)
from sample_servers.enterprise import EnterpriseGrants
from sample_servers.oauth_provider import (
    DEFAULT_GRANTED_SCOPES,
    VALID_SCOPES,
    AuthServerSettings,
    SampleAuthServer,
)
from sample_servers.toolset import ToolRegistry, ToolSpec, WhoAmI, common_tools, filler_tools

MCP_PATH = "/mcp"
AS_METADATA_PATH = "/.well-known/oauth-authorization-server"
PRM_PATH = "/.well-known/oauth-protected-resource"


@dataclass
class Built:
    """What a builder hands back: one app per bound port, and the facts for the launcher."""

    apps: list[ASGIApp]
    info: dict[str, Any] = field(default_factory=dict)


def origin_of(port: int) -> str:
    return f"http://127.0.0.1:{port}"


# --- identity ---------------------------------------------------------------------------------


def whoami(ctx: Context) -> WhoAmI:
    """Describe the caller's identity as the server sees it."""
    request = ctx.request_context.request
    identity = request.scope.get(IDENTITY_SCOPE_KEY) if request is not None else None
    return WhoAmI(**(identity or ANONYMOUS.as_dict()))


class KeyAuthenticator:
    """Static keys -> identities, presented as `Authorization: Bearer <key>` or in a custom header."""

    enforce = True

    def __init__(self, keys: dict[str, str], *, header: str | None = None) -> None:
        if not keys:
            raise ValueError("keys must map at least one identity to a key")
        self.keys = keys  # identity -> key
        self.header_name = header
        self.header = header.lower() if header else None
        self.credential_headers = (self.header,) if self.header else ("authorization",)
        self.auth = "api_key" if header else "bearer"

    def identify(self, headers: Headers) -> Identity | None:
        presented = self._presented(headers)
        if not presented:
            return None
        for identity, key in self.keys.items():
            if hmac.compare_digest(presented.encode(), key.encode()):
                return Identity(auth=self.auth, subject=identity, fingerprint=fingerprint(presented))
        return None

    def _presented(self, headers: Headers) -> str | None:
        if self.header:
            return headers.get(self.header)
        value = headers.get("authorization", "")
        scheme, _, credential = value.partition(" ")
        return credential.strip() if scheme.lower() == "bearer" else None

    def challenge(self, credential_present: bool) -> dict[str, str]:
        if self.header:
            # No registered scheme exists for API-key headers; this names the header to use.
            value = f'ApiKey realm="sample", header="{self.header_name}"'
        else:
            value = 'Bearer realm="sample"'
        if credential_present:
            value += ', error="invalid_token"'
        return {"www-authenticate": value}


class OAuthAuthenticator:
    """Resolves bearer tokens against an in-process token store; the framework enforces."""

    enforce = False

    def __init__(self, lookup: Callable[[str], Identity | None]) -> None:
        self.lookup = lookup

    def identify(self, headers: Headers) -> Identity | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.lookup(token.strip())

    def challenge(self, credential_present: bool) -> dict[str, str]:
        return {}


# --- SDK MCPServer ----------------------------------------------------------------------------


class SdkToolHost:
    def __init__(self, server: MCPServer) -> None:
        self.server = server

    def add(self, spec: ToolSpec, description: str) -> None:
        self.server.add_tool(spec.fn, name=spec.name, description=description, annotations=spec.annotations)

    def remove(self, name: str) -> None:
        self.server.remove_tool(name)


def _transport_options(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "json_response": bool(options.get("json_response", False)),
        "stateless_http": bool(options.get("stateless", False)),
        "host": "127.0.0.1",
    }


def _sdk_app(server: MCPServer, options: dict[str, Any]) -> Starlette:
    return server.streamable_http_app(streamable_http_path=MCP_PATH, **_transport_options(options))


def _add_drift_control(plane: ControlPlane, registry: ToolRegistry) -> None:
    def set_description(payload: dict[str, Any]) -> dict[str, Any]:
        registry.set_description(str(payload["tool"]), payload.get("description"))
        return {"ok": True}

    def set_changed(payload: dict[str, Any]) -> dict[str, Any]:
        registry.set_changed(str(payload["tool"]), bool(payload.get("changed", True)))
        return {"ok": True}

    plane.add_control("tool_description", set_description)
    plane.add_control("tool_definition", set_changed)
    plane.on_reset.append(registry.restore)


def build_plain(kind: str, options: dict[str, Any], ports: list[int]) -> Built:
    counters = Counters(kind)
    server = MCPServer(f"sample-{kind}", version="1.0.0", log_level="WARNING")
    registry = ToolRegistry(SdkToolHost(server), common_tools(whoami))
    plane = ControlPlane(_sdk_app(server, options), counters, mcp_path=MCP_PATH)
    _add_drift_control(plane, registry)
    return Built([plane], {"tools": registry.names})


def build_key_auth(kind: str, options: dict[str, Any], ports: list[int]) -> Built:
    header = options.get("header", "X-API-Key") if kind == "api_key" else None
    authenticator = KeyAuthenticator(dict(options["keys"]), header=header)
    counters = Counters(kind)
    server = MCPServer(f"sample-{kind}", version="1.0.0", log_level="WARNING")
    registry = ToolRegistry(SdkToolHost(server), common_tools(whoami))
    plane = ControlPlane(_sdk_app(server, options), counters, mcp_path=MCP_PATH, authenticator=authenticator)
    _add_drift_control(plane, registry)
    return Built([plane], {"tools": registry.names, "header": header or "Authorization"})


# --- pagination -------------------------------------------------------------------------------


class ToolListPaginator:
    """Server middleware that pages `tools/list` with opaque cursors.

    The cursor is an offset sealed with a per-process nonce, so a cursor from another server
    instance (or a made-up one) is rejected with INVALID_PARAMS, as the spec asks.
    """

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self._nonce = secrets.token_hex(4)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
        result = await call_next(ctx)
        if ctx.method != "tools/list" or not isinstance(result, dict):
            return result
        offset = self._offset((ctx.params or {}).get("cursor"))
        tools = result.get("tools", [])
        page = dict(result, tools=tools[offset : offset + self.page_size])
        page.pop("nextCursor", None)
        if offset + self.page_size < len(tools):
            page["nextCursor"] = self._cursor(offset + self.page_size)
        return page

    def _cursor(self, offset: int) -> str:
        return base64.urlsafe_b64encode(f"{self._nonce}:{offset}".encode()).decode().rstrip("=")

    def _offset(self, cursor: Any) -> int:
        if cursor is None:
            return 0
        try:
            padded = str(cursor) + "=" * (-len(str(cursor)) % 4)
            nonce, _, offset = base64.urlsafe_b64decode(padded).decode().partition(":")
            if nonce == self._nonce and offset.isdigit():
                return int(offset)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
        raise MCPError(code=INVALID_PARAMS, message="Invalid cursor")


def build_paginated(kind: str, options: dict[str, Any], ports: list[int]) -> Built:
    page_size = int(options.get("page_size", 5))
    tool_count = int(options.get("tool_count", 25))
    counters = Counters(kind)
    server = MCPServer(f"sample-{kind}", version="1.0.0", log_level="WARNING")
    specs = common_tools(whoami)
    specs += filler_tools(max(0, tool_count - len(specs)))
    registry = ToolRegistry(SdkToolHost(server), specs[:tool_count])
    server.middleware.append(ToolListPaginator(page_size))
    plane = ControlPlane(_sdk_app(server, options), counters, mcp_path=MCP_PATH)
    _add_drift_control(plane, registry)
    return Built([plane], {"tools": registry.names, "page_size": page_size})


# --- SDK OAuth --------------------------------------------------------------------------------


def _auth_server_settings(options: dict[str, Any], issuer: str, resource: str) -> AuthServerSettings:
    return AuthServerSettings(
        issuer=issuer,
        resource=resource,
        token_ttl=int(options.get("token_ttl", 3600)),
        refresh_ttl=options.get("refresh_ttl"),
        require_resource=bool(options.get("require_resource", True)),
        iss_param=str(options.get("iss_param", "correct")),
        secret_prefix=str(options.get("secret_prefix", "")),
        machine_clients=dict(options.get("machine_clients") or {}),
    )


def _auth_settings(options: dict[str, Any], issuer: str, resource: str) -> AuthSettings:
    # Strings, not AnyHttpUrl: AuthSettings keeps a path-less issuer without a trailing "/".
    return AuthSettings(
        issuer_url=issuer,
        resource_server_url=resource,
        required_scopes=list(options.get("required_scopes", ["read"])) or None,
        validate_token_resource=True,
        client_registration_options=ClientRegistrationOptions(
            enabled=True, valid_scopes=VALID_SCOPES, default_scopes=VALID_SCOPES
        ),
        revocation_options=RevocationOptions(enabled=True),
    )


def _as_metadata_route(auth: AuthSettings, settings: AuthServerSettings) -> Route:
    """AS metadata that also advertises RFC 9207 `iss` support, read live so `configure` applies.

    The SDK's own metadata leaves `authorization_response_iss_parameter_supported` unset.
    """
    assert auth.client_registration_options is not None and auth.revocation_options is not None

    async def metadata(request: Request) -> PydanticJSONResponse:
        document = build_metadata(
            auth.issuer_url, None, auth.client_registration_options, auth.revocation_options
        )
        if settings.iss_param != "omit":
            document.authorization_response_iss_parameter_supported = True
        return await MetadataHandler(document).handle(request)

    return Route(
        AS_METADATA_PATH, endpoint=cors_middleware(metadata, ["GET", "OPTIONS"]), methods=["GET", "OPTIONS"]
    )


class PublicClientRevocation:
    """Lets public clients revoke as RFC 7009 allows: with `client_id` and no `client_secret`.

    The SDK's revocation handler (mcp 2.3.0) declares `client_secret` as a required form field, so
    a public client that (correctly) omits it gets 400 "client_secret: Field required". This adds
    an empty one, which the SDK's client authenticator ignores for `token_endpoint_auth_method
    = none`. The option `revoke_requires_secret_field=True` keeps the SDK's behaviour instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/revoke" and scope["method"] == "POST":
            body, replay = await read_body(receive)
            if "client_secret" in parse_qs(body.decode("latin-1")):
                receive = replay
            else:
                receive = replay_body(body + (b"&client_secret=" if body else b"client_secret="), receive)
        await self.app(scope, receive, send)


class ClientCredentialsGrant:
    """`POST /token` with `grant_type=client_credentials` for the AS's `machine_clients` (the SDK's
    token handler knows only authorization_code and refresh_token): `client_secret_basic` (RFC 6749
    §2.3.1, id and secret form-urlencoded), `resource` checked as for /authorize, scopes as asked
    (within the valid ones) else the defaults. Everything else passes through to the SDK."""

    def __init__(self, app: ASGIApp, provider: SampleAuthServer) -> None:
        self.app = app
        self.provider = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope["path"] == "/token" and scope["method"] == "POST"):
            await self.app(scope, receive, send)
            return
        body, replay = await read_body(receive)
        form = {k: v[0] for k, v in parse_qs(body.decode("latin-1")).items()}
        if form.get("grant_type") != "client_credentials":
            await self.app(scope, replay, send)
            return
        client_id = self.provider.authenticate_machine_client(Headers(scope=scope).get("authorization", ""))
        if client_id is None:
            await json_answer(
                send, 401, {"error": "invalid_client"}, {"www-authenticate": 'Basic realm="sample"'}
            )
            return
        error = self.provider._resource_error(form.get("resource"))
        if error is not None:
            await json_answer(send, 400, {"error": error[0], "error_description": error[1]})
            return
        asked = [s for s in form.get("scope", "").split() if s in VALID_SCOPES]
        token = self.provider.issue_client_credentials(
            client_id,
            asked or DEFAULT_GRANTED_SCOPES,
            form.get("resource") or self.provider.settings.resource,
        )
        await json_answer(send, 200, token.model_dump(exclude_none=True))


class ProtectedResourceOverride:
    """Serves the PRM with the `authorization_servers` set by `configure(authorization_servers=[...])`
    (the server moved to, or was made to name, another AS); the SDK's own document otherwise."""

    def __init__(self, app: ASGIApp, settings: AuthServerSettings, resource: str) -> None:
        self.app = app
        self.settings = settings
        self.resource = resource

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        named = self.settings.authorization_servers
        if scope["type"] == "http" and scope["path"].startswith(PRM_PATH) and named is not None:
            document = {
                "resource": self.resource,
                "authorization_servers": named,
                "scopes_supported": VALID_SCOPES,
                "bearer_methods_supported": ["header"],
            }
            await json_answer(send, 200, document)
            return
        await self.app(scope, receive, send)


def _machine_grants(app: ASGIApp, provider: SampleAuthServer, options: dict[str, Any]) -> ASGIApp:
    """The token endpoint's grants beyond the SDK's: client_credentials, and with `enterprise_users`
    the enterprise IdP and its jwt-bearer grant (sample_servers/enterprise.py)."""
    app = ClientCredentialsGrant(app, provider)
    users = options.get("enterprise_users")
    return EnterpriseGrants(app, provider, dict(users)) if users else app


def _revocation_compat(app: ASGIApp, options: dict[str, Any]) -> ASGIApp:
    return app if options.get("revoke_requires_secret_field") else PublicClientRevocation(app)


def _add_oauth_controls(plane: ControlPlane, provider: SampleAuthServer) -> None:
    plane.add_control("expire_tokens", lambda _: {"expired": provider.expire_access_tokens()})
    plane.add_control("revoke_all", lambda _: {"revoked_families": provider.revoke_everything()})

    def next_subject(payload: dict[str, Any]) -> dict[str, Any]:
        provider.queued_subjects.append(str(payload["subject"]))
        return {"queued": list(provider.queued_subjects)}

    def configure(payload: dict[str, Any]) -> dict[str, Any]:
        provider.settings.update(payload)
        return {"ok": True}

    plane.add_control("next_subject", next_subject)
    plane.add_control("configure", configure)


def _oauth_info(issuer: str, resource: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "resource_metadata": str(build_resource_metadata_url(resource)),  # type: ignore[arg-type]
        "scopes": VALID_SCOPES,
    }


def build_sdk_oauth(kind: str, options: dict[str, Any], ports: list[int]) -> Built:
    origin = origin_of(ports[0])
    resource = origin + MCP_PATH
    counters = Counters(kind)
    settings = _auth_server_settings(options, issuer=origin, resource=resource)
    provider = SampleAuthServer(settings, counters)
    auth = _auth_settings(options, issuer=origin, resource=resource)
    server = MCPServer(
        f"sample-{kind}", version="1.0.0", log_level="WARNING", auth_server_provider=provider, auth=auth
    )
    registry = ToolRegistry(SdkToolHost(server), common_tools(whoami))
    app = _sdk_app(server, options)
    app.router.routes.insert(0, _as_metadata_route(auth, settings))  # shadows the SDK's metadata route
    info = _oauth_info(origin, resource)
    served = _machine_grants(_revocation_compat(app, options), provider, options)
    plane = ControlPlane(
        ProtectedResourceOverride(served, settings, resource),
        counters,
        mcp_path=MCP_PATH,
        authenticator=OAuthAuthenticator(provider.identify),
        resource_metadata_url=info["resource_metadata"],
    )
    _add_drift_control(plane, registry)
    _add_oauth_controls(plane, provider)
    return Built([plane], {"tools": registry.names, **info})


def build_sdk_oauth_split(kind: str, options: dict[str, Any], ports: list[int]) -> Built:
    """Resource server on ports[0], authorization server on ports[1], one shared token store."""
    rs_origin, as_origin = origin_of(ports[0]), origin_of(ports[1])
    resource = rs_origin + MCP_PATH
    counters = Counters(kind)
    settings = _auth_server_settings(options, issuer=as_origin, resource=resource)
    provider = SampleAuthServer(settings, counters)
    auth = _auth_settings(options, issuer=as_origin, resource=resource)
    rs_auth = auth.model_copy(update={"client_registration_options": None, "revocation_options": None})
    server = MCPServer(
        f"sample-{kind}",
        version="1.0.0",
        log_level="WARNING",
        token_verifier=ProviderTokenVerifier(provider),
        auth=rs_auth,
    )
    registry = ToolRegistry(SdkToolHost(server), common_tools(whoami))
    info = _oauth_info(as_origin, resource)
    rs_plane = ControlPlane(
        ProtectedResourceOverride(_sdk_app(server, options), settings, resource),
        counters,
        mcp_path=MCP_PATH,
        authenticator=OAuthAuthenticator(provider.identify),
        resource_metadata_url=info["resource_metadata"],
    )
    as_routes = create_auth_routes(
        provider,
        issuer_url=auth.issuer_url,
        client_registration_options=auth.client_registration_options,
        revocation_options=auth.revocation_options,
    )
    as_app = Starlette(routes=[_as_metadata_route(auth, settings), *as_routes])
    as_plane = ControlPlane(
        _machine_grants(_revocation_compat(as_app, options), provider, options), counters, mcp_path=MCP_PATH
    )
    for plane in (rs_plane, as_plane):
        _add_drift_control(plane, registry)
        _add_oauth_controls(plane, provider)
    return Built([rs_plane, as_plane], {"tools": registry.names, "as_origin": as_origin, **info})


BuilderFn = Callable[[str, dict[str, Any], list[int]], Built]


@dataclass(frozen=True)
class Builder:
    build: BuilderFn
    port_count: int = 1


def _fastmcp_builder(kind: str, options: dict[str, Any], ports: list[int]) -> Built:
    # Imported lazily: FastMCP is slow to import and only this kind needs it.
    from sample_servers.fastmcp_server import build_fastmcp_oauth

    return build_fastmcp_oauth(kind, options, ports)


BUILDERS: dict[str, Builder] = {
    "plain": Builder(build_plain),
    "modern": Builder(build_plain),
    "bearer": Builder(build_key_auth),
    "api_key": Builder(build_key_auth),
    "paginated": Builder(build_paginated),
    "sdk_oauth": Builder(build_sdk_oauth),
    "sdk_oauth_split": Builder(build_sdk_oauth_split, port_count=2),
    "fastmcp_oauth": Builder(_fastmcp_builder),
}
