"""Test-only observation and control around a sample server's ASGI app.

`ControlPlane` wraps the framework's app and:
- logs every request (method, path, whether an Authorization header came, status, JSON-RPC
  method) without recording any credential;
- serves `/_control/*` (counters, reset, knobs) outside the log and outside authentication;
- resolves the caller's `Identity` and stores it in the ASGI scope for `whoami`;
- for bearer/API-key kinds, enforces the credential on the MCP path (401 + WWW-Authenticate);
- for OAuth kinds, answers 403 insufficient_scope for tools that need an extra scope;
- injects faults on request (`fail_next`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote_plus

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sample_servers.toolset import TOOL_REQUIRED_SCOPES

IDENTITY_SCOPE_KEY = "sample_servers.identity"
CONTROL_PREFIX = "/_control/"
MAX_LOGGED_REQUESTS = 5000
# The OAuth endpoints whose request bodies are logged (so tests can check what a client sent), with
# every credential-bearing field replaced by SECRET_PRESENT: never a secret in the log.
BODY_LOGGED_PATHS = frozenset({"/token", "/register", "/revoke", "/idp/token"})
SECRET_FIELDS = frozenset(
    {
        "code",
        "code_verifier",
        "refresh_token",
        "client_secret",
        "assertion",
        "client_assertion",
        "subject_token",
        "token",
    }
)
SECRET_PRESENT = "<present>"

# The path of the request being served, for code below the app (the OAuth provider) that has
# no access to the request. Safe as a contextvar: AS endpoints run in the request's own task.
current_path: ContextVar[str] = ContextVar("current_path", default="")
# The `login_hint` of the /authorize request being served (picks the OAuth subject).
current_login_hint: ContextVar[str | None] = ContextVar("current_login_hint", default=None)


def fingerprint(secret: str) -> str:
    """A short, non-reversible tag for a credential, so tests can tell credentials apart."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Identity:
    auth: str
    subject: str
    client_id: str | None = None
    scopes: tuple[str, ...] = ()
    fingerprint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scopes"] = list(self.scopes)
        return data


ANONYMOUS = Identity(auth="none", subject="anonymous")


class Authenticator(Protocol):
    """Maps request headers to an identity. `enforce` says whether the plane itself rejects
    unauthenticated MCP requests (bearer/API key) or leaves that to the framework (OAuth)."""

    enforce: bool

    def identify(self, headers: Headers) -> Identity | None: ...

    def challenge(self, credential_present: bool) -> dict[str, str]: ...


@dataclass
class Counters:
    """Everything a server counts; `snapshot()` is what `RunningServer.counters()` returns."""

    kind: str
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_LOGGED_REQUESTS))
    requests_total: int = 0
    requests_with_authorization: int = 0
    rpc_methods: Counter[str] = field(default_factory=Counter)
    tool_calls: dict[str, Counter[str]] = field(default_factory=dict)
    auth_failures: Counter[str] = field(default_factory=Counter)
    registrations: int = 0
    authorizations: int = 0
    token_requests: Counter[str] = field(default_factory=Counter)
    tokens_issued: Counter[str] = field(default_factory=Counter)
    reuse_events: int = 0
    revocations: int = 0
    # Token requests whose PKCE verifier had already appeared in a request URL (A-18: it belongs only
    # in the body of POST /token). The URLs' query strings are kept in memory to check against, never
    # reported.
    verifiers_in_urls: int = 0
    queries: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_LOGGED_REQUESTS))

    def reset(self) -> None:
        kind = self.kind
        self.__init__(kind)  # type: ignore[misc]

    def record_tool_call(self, subject: str, tool: str) -> None:
        self.tool_calls.setdefault(subject, Counter())[tool] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "requests": list(self.requests),
            "requests_total": self.requests_total,
            "requests_with_authorization": self.requests_with_authorization,
            "rpc_methods": dict(self.rpc_methods),
            "tool_calls": {who: dict(calls) for who, calls in self.tool_calls.items()},
            "auth_failures": dict(self.auth_failures),
            "registrations": self.registrations,
            "authorizations": self.authorizations,
            "token_requests": dict(self.token_requests),
            "refresh_requests": self.token_requests.get("refresh_token", 0),
            "tokens_issued": dict(self.tokens_issued),
            "reuse_events": self.reuse_events,
            "revocations": self.revocations,
            "verifiers_in_urls": self.verifiers_in_urls,
        }


@dataclass
class Fault:
    path: str
    status: int
    remaining: int
    body: str
    headers: dict[str, str]


ControlHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]] | dict[str, Any]]


class ControlPlane:
    """ASGI wrapper; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        counters: Counters,
        *,
        mcp_path: str = "/mcp",
        authenticator: Authenticator | None = None,
        resource_metadata_url: str | None = None,
    ) -> None:
        self.app = app
        self.counters = counters
        self.mcp_path = mcp_path
        self.authenticator = authenticator
        self.resource_metadata_url = resource_metadata_url
        self.faults: list[Fault] = []
        self.controls: dict[str, ControlHandler] = {}
        self.on_reset: list[Callable[[], None]] = []
        self.add_control("health", lambda _: {"ok": True, "kind": counters.kind})
        self.add_control("counters", lambda _: counters.snapshot())
        self.add_control("reset", self._reset)
        self.add_control("fail_next", self._add_fault)

    def add_control(self, name: str, handler: ControlHandler) -> None:
        self.controls[name] = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX):
            await self._serve_control(path.removeprefix(CONTROL_PREFIX), receive, send)
            return
        await self._serve_observed(scope, receive, send)

    # --- observed traffic -------------------------------------------------------------------

    async def _serve_observed(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        entry: dict[str, Any] = {
            "port": (scope.get("server") or ("", 0))[1],  # tells the split kind's two listeners apart
            "method": scope["method"],
            "path": scope["path"],
            "authorization": "authorization" in headers,
            "status": None,
            "rpc": None,
        }
        self._log(entry)
        body, receive = await self._peek_body(scope, receive)
        rpc = _rpc_summary(body) if self._is_mcp_post(scope) else None
        if rpc:
            entry["rpc"] = rpc["method"]
            self.counters.rpc_methods[rpc["method"]] += 1
        query = unquote_plus(scope.get("query_string", b"").decode("latin-1"))
        if query:
            self.counters.queries.append(query)
        if scope["path"] in BODY_LOGGED_PATHS and scope["method"] == "POST":
            entry["body"] = _masked_body(body)
        if scope["path"] == "/token" and scope["method"] == "POST":
            self.counters.token_requests[_grant_type(body)] += 1
            verifier = _form_value(body, "code_verifier")
            if verifier and any(verifier in seen for seen in self.counters.queries):
                self.counters.verifiers_in_urls += 1

        fault = self._take_fault(scope["path"])
        if fault is not None:
            await _respond(
                self._status_recorder(entry, send, tool_call=None),
                fault.status,
                fault.body.encode(),
                fault.headers,
            )
            return
        identity = self._identify(headers)
        caller = (identity or ANONYMOUS).subject
        send = self._status_recorder(
            entry,
            send,
            tool_call=(caller, rpc.get("tool") or "?") if rpc and rpc["method"] == "tools/call" else None,
        )
        if self._is_mcp_path(scope) and await self._rejected(headers, identity, rpc, send):
            return
        scope[IDENTITY_SCOPE_KEY] = (identity or ANONYMOUS).as_dict()
        token_path = current_path.set(scope["path"])
        hint = current_login_hint.set(_query_value(scope, "login_hint"))
        try:
            await self.app(scope, receive, send)
        finally:
            current_path.reset(token_path)
            current_login_hint.reset(hint)

    def _log(self, entry: dict[str, Any]) -> None:
        self.counters.requests.append(entry)
        self.counters.requests_total += 1
        if entry["authorization"]:
            self.counters.requests_with_authorization += 1

    def _is_mcp_path(self, scope: Scope) -> bool:
        return scope["path"].rstrip("/") == self.mcp_path

    def _is_mcp_post(self, scope: Scope) -> bool:
        return self._is_mcp_path(scope) and scope["method"] == "POST"

    def _identify(self, headers: Headers) -> Identity | None:
        if self.authenticator is None:
            return ANONYMOUS
        return self.authenticator.identify(headers)

    async def _rejected(
        self, headers: Headers, identity: Identity | None, rpc: dict[str, Any] | None, send: Send
    ) -> bool:
        """Answer 401/403 when the plane itself owns that decision; True if it answered."""
        auth = self.authenticator
        if auth is None:
            return False
        if identity is None and auth.enforce:
            credential_present = any(name in headers for name in _credential_headers(auth))
            challenge = auth.challenge(credential_present)
            body = json.dumps({"error": "invalid_token", "error_description": "Authentication required"})
            self.counters.auth_failures["401"] += 1
            await _respond(send, 401, body.encode(), {"content-type": "application/json", **challenge})
            return True
        if identity is not None and identity.auth == "oauth" and rpc and rpc["method"] == "tools/call":
            needed = TOOL_REQUIRED_SCOPES.get(rpc.get("tool") or "")
            if needed and needed not in identity.scopes:
                await self._insufficient_scope(send, needed)
                return True
        return False

    async def _insufficient_scope(self, send: Send, scope_needed: str) -> None:
        parts = [
            'error="insufficient_scope"',
            f'scope="{scope_needed}"',
            f'error_description="Required scope: {scope_needed}"',
        ]
        if self.resource_metadata_url:
            parts.append(f'resource_metadata="{self.resource_metadata_url}"')
        body = json.dumps(
            {"error": "insufficient_scope", "error_description": f"Required scope: {scope_needed}"}
        )
        self.counters.auth_failures["403"] += 1
        headers = {"content-type": "application/json", "www-authenticate": "Bearer " + ", ".join(parts)}
        await _respond(send, 403, body.encode(), headers)

    def _status_recorder(
        self, entry: dict[str, Any], send: Send, *, tool_call: tuple[str, str] | None
    ) -> Send:
        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                if message["status"] in (401, 403):
                    self._count_framework_auth_failure(message)
                elif tool_call is not None and message["status"] < 400:
                    # Counted before the response leaves: a client that reads counters right after its
                    # call must see it (the app returns only after the client already has the answer).
                    self.counters.record_tool_call(*tool_call)
            await send(message)

        return recording_send

    def _count_framework_auth_failure(self, message: Message) -> None:
        # Failures the plane itself sends are counted where they are sent; this catches the
        # framework's (e.g. the SDK's 401 for a missing or expired token).
        if not any(name == b"x-sample-plane" for name, _ in message.get("headers", [])):
            self.counters.auth_failures[str(message["status"])] += 1

    async def _peek_body(self, scope: Scope, receive: Receive) -> tuple[bytes, Receive]:
        """Read a POST body so it can be inspected, then replay it to the app."""
        if scope["method"] != "POST":
            return b"", receive
        return await read_body(receive)

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.path in (path, "*") and fault.remaining > 0:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    # --- control endpoints ------------------------------------------------------------------

    async def _serve_control(self, name: str, receive: Receive, send: Send) -> None:
        handler = self.controls.get(name)
        if handler is None:
            await _respond_json(
                send, 404, {"error": f"unknown control {name!r}", "known": sorted(self.controls)}
            )
            return
        payload = await _read_json(receive)
        try:
            result = handler(payload)
            if isinstance(result, Awaitable):
                result = await result
        except (KeyError, ValueError, TypeError) as exc:
            await _respond_json(send, 400, {"error": str(exc)})
            return
        await _respond_json(send, 200, result)

    def _reset(self, _: dict[str, Any]) -> dict[str, Any]:
        self.counters.reset()
        self.faults.clear()
        for hook in self.on_reset:
            hook()
        return {"ok": True}

    def _add_fault(self, payload: dict[str, Any]) -> dict[str, Any]:
        fault = Fault(
            path=str(payload["path"]),
            status=int(payload.get("status", 500)),
            remaining=int(payload.get("count", 1)),
            body=str(payload.get("body", '{"error": "injected fault"}')),
            headers={"content-type": "application/json", **payload.get("headers", {})},
        )
        self.faults.append(fault)
        return {"ok": True}


def _credential_headers(auth: Authenticator) -> tuple[str, ...]:
    return getattr(auth, "credential_headers", ("authorization",))


async def read_body(receive: Receive) -> tuple[bytes, Receive]:
    """Read a whole request body; returns it and a `receive` that replays it to the app."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), replay_body(b"".join(chunks), receive, pending=message)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), replay_body(b"".join(chunks), receive)


def replay_body(body: bytes, receive: Receive, pending: Message | None = None) -> Receive:
    """A `receive` that first yields `body`, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent, pending
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if pending is not None:
            message, pending = pending, None
            return message
        return await receive()

    return replay


def _rpc_summary(body: bytes) -> dict[str, Any] | None:
    """JSON-RPC method (and tool name for tools/call) of a single-message body, else None."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return None
    summary: dict[str, Any] = {"method": message["method"]}
    params = message.get("params")
    if message["method"] == "tools/call" and isinstance(params, dict):
        summary["tool"] = params.get("name")
    return summary


def _grant_type(body: bytes) -> str:
    return _form_value(body, "grant_type") or "?"


def _masked_body(body: bytes) -> dict[str, Any]:
    """A form or JSON request body with its secrets replaced by SECRET_PRESENT."""
    try:
        data = json.loads(body) if body.lstrip().startswith(b"{") else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {k: v[0] for k, v in parse_qs(body.decode("latin-1"), keep_blank_values=True).items()}
    return {k: SECRET_PRESENT if k in SECRET_FIELDS and v else v for k, v in data.items()}


def _form_value(body: bytes, key: str) -> str | None:
    values = parse_qs(body.decode("latin-1")).get(key)
    return values[0] if values else None


def _query_value(scope: Scope, key: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(key)
    return values[0] if values else None


async def _read_json(receive: Receive) -> dict[str, Any]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks).strip()
    if not raw:
        return {}
    data = json.loads(raw)
    return data if isinstance(data, dict) else {}


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers += [(b"content-length", str(len(body)).encode()), (b"x-sample-plane", b"1")]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def json_answer(send: Send, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
    """A JSON answer from a sample endpoint itself (not the plane): no-store, as token answers must be."""
    body = json.dumps(data).encode()
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store"), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _respond_json(send: Send, status: int, data: Any) -> None:
    await _respond(send, status, json.dumps(data).encode(), {"content-type": "application/json"})
