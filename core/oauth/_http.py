"""Outbound HTTP for the OAuth modules, and the URL rules every OAuth request obeys.

All requests go through one `httpx2.AsyncClient` — by default `core.net.shared_http_client()`, so the
network policy (SSRF guard, allow-list) applies — and through `OAuthHttp.exchange`, which:

* refuses endpoints that are not https (plain http only for loopback hosts, for development);
* never follows redirects (a 3xx is an answer like any other: nothing is re-sent elsewhere);
* never adds credentials on its own: discovery and registration carry no bearer token (S-14);
* reads at most `MAX_BODY` bytes of an answer;
* reports each request to the auth trace, with the error message as detail when a step fails.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2

from core.errors import AuthError, InvalidUrlError, SwitchboardError
from core.net.http import map_httpx_errors, read_capped
from core.net.policy import is_loopback_host
from core.net.urls import parse_http_url, redact_url
from core.oauth.trace import AuthTrace, TraceEvent

MAX_BODY = 256 * 1024  # metadata, registration and token answers are small; a larger body is refused
USER_AGENT = "Switchboard-OAuth/0.1"


def require_secure_url(url: str, what: str, *, error: type[SwitchboardError] = InvalidUrlError) -> str:
    """Accept https URLs, and http only for a loopback host; nothing else (no javascript:, file:...)."""
    try:
        parsed = parse_http_url(url, what, allow_fragment=True)
    except InvalidUrlError as exc:
        if error is InvalidUrlError:
            raise
        raise error(exc.message, hint=exc.hint) from None
    if parsed.scheme == "https" or is_loopback_host(parsed.host):
        return url
    raise error(
        f"{what} must use https (plain http is allowed only for loopback hosts): {parsed.shown}",
        hint="the server or authorization server is misconfigured, or the metadata was tampered with",
    )


@dataclass
class HttpResult:
    status: int
    headers: httpx2.Headers = field(repr=False)  # Set-Cookie, ...
    body: bytes = field(repr=False)  # token responses: never in a repr or a captured traceback
    url: str
    detail: str = field(default="")  # set by the caller for the trace (e.g. "issuer ok")

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def is_json(self) -> bool:
        media = self.media_type
        return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))

    def json_object(self) -> dict[str, Any] | None:
        """The body as a JSON object when it is declared and parses as one; otherwise None."""
        if not self.is_json():
            return None
        try:
            value = json.loads(self.body)
        except (ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None


def default_http_client() -> httpx2.AsyncClient:
    from core.net import shared_http_client  # late: core.net owns the pool and the network policy

    return shared_http_client()


class OAuthHttp:
    """One client plus one optional trace: what every OAuth step needs to talk to the network."""

    def __init__(self, client: httpx2.AsyncClient | None = None, trace: AuthTrace | None = None) -> None:
        self._client = client
        self.trace = trace

    @property
    def client(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = default_http_client()
        return self._client

    def note(self, step: str, url: str, detail: str) -> None:
        """A trace record for a step that sent nothing (a decision, a refusal before sending)."""
        self._record(TraceEvent(step, "-", redact_url(url), None, 0.0, detail))

    @contextlib.asynccontextmanager
    async def exchange(
        self,
        step: str,
        method: str,
        url: str,
        *,
        error: type[AuthError],
        form: str | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[HttpResult]:
        """Send one request and yield its (bounded) answer; the trace record is written on exit.

        `form` is an already encoded application/x-www-form-urlencoded body (client authentication
        may have added to it). `error` is the error type for an answer that cannot be used (too large);
        network failures raise the transport's errors (`ConnectError`, `RequestTimeout`,
        `ConnectionLost`: see `core.net.http`) so callers can tell "unreachable" from "refused".
        """
        started = time.perf_counter()
        result: HttpResult | None = None
        detail = ""
        try:
            require_secure_url(url, f"{step} endpoint", error=error)
            result = await self._send(
                method, url, error=error, form=form, json_body=json_body, headers=headers
            )
            yield result
            detail = result.detail
        except SwitchboardError as exc:
            detail = exc.message
            raise
        finally:
            self._record(
                TraceEvent(
                    step,
                    method,
                    redact_url(url),
                    result.status if result else None,
                    round((time.perf_counter() - started) * 1000, 1),
                    detail[:300],
                )
            )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        error: type[AuthError],
        form: str | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
    ) -> HttpResult:
        request_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        if form is not None:
            request_headers["Content-Type"] = "application/x-www-form-urlencoded"
        with map_httpx_errors(method, url):
            async with self.client.stream(
                method, url, content=form, json=json_body, headers=request_headers, follow_redirects=False
            ) as response:
                body = await read_capped(response, MAX_BODY, error=error)
                return HttpResult(response.status_code, response.headers, body, url)

    def _record(self, event: TraceEvent) -> None:
        if self.trace is not None:
            self.trace.record(event)


def short_error_code(value: object) -> str:
    """An OAuth `error` code safe to show: the RFC 6749 charset, bounded; anything else is 'unknown'."""
    if (
        isinstance(value, str)
        and 0 < len(value) <= 64
        and all(0x20 < ord(c) < 0x7F and c not in '"\\' for c in value)
    ):
        return value
    return "unknown"


def safe_description(value: object, limit: int = 200) -> str:
    """An `error_description` from a verified party, reduced to printable text of bounded length."""
    if not isinstance(value, str):
        return ""
    text = "".join(c for c in value if c.isprintable() and c not in "<>")
    return text[:limit]
