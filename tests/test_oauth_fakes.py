"""A fake MCP resource server + authorization server on httpx2.MockTransport, for the OAuth tests.

Everything is configurable per test (documents, answers, hooks) and every request is recorded, so
tests assert on the exact sequence of requests. The AS implements strict refresh-token rotation with
family revocation on reuse, like the fixture servers, and checks PKCE S256.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2

from core.oauth import ConnectorSettings, CredentialKey, MemoryOAuthStorage, MemoryTrace, OAuthHttp

RS = "https://rs.test"
AS = "https://as.test"
SERVER_URL = RS + "/mcp"
REDIRECT_URI = "http://127.0.0.1:8765/oauth/callback"


@dataclass
class Recorded:
    method: str
    url: str
    path: str
    query: dict[str, str]
    headers: httpx2.Headers
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def json_response(status: int, document: Any, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, json=document, headers=headers)


@dataclass
class FakeWorld:
    issuer: str = AS
    prm: dict | None = field(default=None)
    prm_at: str = "path"  # "path" | "root" | "both" | "none"
    metadata: dict | None = field(default=None)
    registration_status: int = 201
    registration_answer: dict | None = None
    iss_in_response: str | None = None  # value of iss added to the redirect (None: none)
    token_ttl: int | None = 3600
    issue_refresh_tokens: bool = True
    rotate_refresh_tokens: bool = True
    overrides: dict[tuple[str, str], Any] = field(
        default_factory=dict
    )  # (method, path) -> Response or callable
    requests: list[Recorded] = field(default_factory=list)
    reuse_events: int = 0
    codes: dict[str, dict] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> "active" | "used" | "revoked"
    access_tokens: set[str] = field(default_factory=set)
    revoked: list[str] = field(default_factory=list)
    clients: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.prm is None:
            self.prm = {"resource": SERVER_URL, "authorization_servers": [self.issuer]}
        if self.metadata is None:
            self.metadata = {
                "issuer": self.issuer,
                "authorization_endpoint": AS + "/authorize",
                "token_endpoint": AS + "/token",
                "registration_endpoint": AS + "/register",
                "revocation_endpoint": AS + "/revoke",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "none",
                    "client_secret_basic",
                    "client_secret_post",
                ],
            }

    # --- plumbing ----------------------------------------------------------------------------------

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))

    def http(self, trace: MemoryTrace | None = None) -> OAuthHttp:
        return OAuthHttp(self.client(), trace)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.requests if method is None or r.method == method]

    def to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        parts = urlsplit(str(request.url))
        body = request.read()
        record = Recorded(
            request.method, str(request.url), parts.path, dict(parse_qsl(parts.query)), request.headers, body
        )
        self.requests.append(record)
        origin = f"{parts.scheme}://{parts.netloc}"
        override = self.overrides.get((request.method, origin + parts.path))
        if override is not None:
            return override(record) if callable(override) else override
        if origin == RS:
            return self._resource_server(record)
        if origin == AS:
            return self._authorization_server(record)
        return httpx2.Response(404)

    # --- resource server -----------------------------------------------------------------------------

    def _resource_server(self, r: Recorded) -> httpx2.Response:
        prm_path = "/.well-known/oauth-protected-resource"
        if r.path in (prm_path + "/mcp", prm_path):
            served = {"path": prm_path + "/mcp", "root": prm_path, "both": r.path}.get(self.prm_at)
            if r.path == served:
                return json_response(200, self.prm)
        return httpx2.Response(404)

    # --- authorization server ------------------------------------------------------------------------

    def _authorization_server(self, r: Recorded) -> httpx2.Response:
        issuer_path = urlsplit(self.issuer).path.rstrip("/")
        if r.method == "GET" and r.path == "/.well-known/oauth-authorization-server" + issuer_path:
            return json_response(200, self.metadata)
        if r.method == "POST" and r.path == "/register":
            return self._register(r)
        if r.method == "GET" and r.path == "/authorize":
            return self._authorize(r)
        if r.method == "POST" and r.path == "/token":
            return self._token(r)
        if r.method == "POST" and r.path == "/revoke":
            self.revoked.append(r.form["token"])
            return httpx2.Response(200)
        return httpx2.Response(404)

    def _register(self, r: Recorded) -> httpx2.Response:
        if self.registration_status != 201:
            return json_response(
                self.registration_status, self.registration_answer or {"error": "invalid_client_metadata"}
            )
        body = r.json
        answer = {
            "client_id": f"client-{len(self.clients) + 1}",
            "client_name": body.get("client_name"),
            "redirect_uris": body.get("redirect_uris"),
            "token_endpoint_auth_method": body.get("token_endpoint_auth_method", "none"),
            "grant_types": body.get("grant_types"),
        }
        if answer["token_endpoint_auth_method"] != "none":
            answer["client_secret"] = "secret-" + secrets.token_hex(4)
        answer.update(self.registration_answer or {})
        self.clients[answer["client_id"]] = answer
        return json_response(201, answer)

    def _authorize(self, r: Recorded) -> httpx2.Response:
        q = r.query
        code = "code-" + secrets.token_hex(8)
        self.codes[code] = q
        params = {"code": code, "state": q.get("state", "")}
        if self.iss_in_response is not None:
            params["iss"] = self.iss_in_response
        return httpx2.Response(302, headers={"Location": f"{q['redirect_uri']}?{urlencode(params)}"})

    def _issue(self, scope: str | None) -> httpx2.Response:
        access = "at-" + secrets.token_hex(8)
        self.access_tokens.add(access)
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer"}
        if self.token_ttl is not None:
            answer["expires_in"] = self.token_ttl
        if scope:
            answer["scope"] = scope
        return answer

    def _token(self, r: Recorded) -> httpx2.Response:
        form = r.form
        if form.get("grant_type") == "authorization_code":
            request = self.codes.pop(form.get("code", ""), None)
            if request is None:
                return json_response(400, {"error": "invalid_grant"})
            challenge = base64.urlsafe_b64encode(
                hashlib.sha256(form["code_verifier"].encode()).digest()
            ).rstrip(b"=")
            if (
                request.get("code_challenge_method") != "S256"
                or challenge.decode() != request["code_challenge"]
            ):
                return json_response(400, {"error": "invalid_grant", "error_description": "PKCE failed"})
            if form.get("redirect_uri") != request["redirect_uri"]:
                return json_response(400, {"error": "invalid_grant"})
            answer = self._issue(request.get("scope"))
            if self.issue_refresh_tokens:
                answer["refresh_token"] = self._new_refresh()
            return json_response(200, answer)
        if form.get("grant_type") == "refresh_token":
            token = form.get("refresh_token", "")
            state = self.refresh_tokens.get(token)
            if state != "active":
                if state == "used":
                    self.reuse_events += 1
                    for t in self.refresh_tokens:
                        self.refresh_tokens[t] = "revoked"
                return json_response(400, {"error": "invalid_grant"})
            answer = self._issue(None)
            if self.rotate_refresh_tokens:
                self.refresh_tokens[token] = "used"
                answer["refresh_token"] = self._new_refresh()
            return json_response(200, answer)
        return json_response(400, {"error": "unsupported_grant_type"})

    def _new_refresh(self) -> str:
        token = "rt-" + secrets.token_hex(8)
        self.refresh_tokens[token] = "active"
        return token


def settings(**changes: Any) -> ConnectorSettings:
    return ConnectorSettings(server_url=SERVER_URL, redirect_uri=REDIRECT_URI, **changes)


KEY = CredentialKey("connector-1")
AGENT_B = CredentialKey("connector-1", "agent-b")


def new_storage() -> MemoryOAuthStorage:
    return MemoryOAuthStorage()


def test_fake_world_serves_documents() -> None:
    world = FakeWorld()
    assert world.prm["authorization_servers"] == [AS]
    assert world.metadata["issuer"] == AS
