"""OAuth benchmarks against the `sdk_oauth` sample server (SDK MCP server that is its own
authorization server; `/authorize` auto-approves with a 302 back to the redirect URI).

* flow: a first connection with nothing stored: discovery (PRM, AS metadata) -> dynamic client
  registration -> authorize -> token -> initialize -> tools/list. Fresh client state every run.
  - Switchboard: `OAuthProvider(MemoryOAuthStorage(), key, ConnectorSettings(url), headless=True)`
    as the McpClient's credential provider (`authorize_headless` does the browser's part).
  - SDK: `OAuthClientProvider` on an `httpx2.AsyncClient(auth=...)` handed to
    `streamable_http_client`, as its OAuth docs show, with an in-memory `TokenStorage`, a redirect
    handler that GETs the authorization URL without following the redirect, and a callback handler
    that returns the code, state and iss from its Location.
  HTTP requests are the server's own count (it sees every MCP and OAuth request).
* refresh: one authorized session, then its access token expires, then 50 concurrent tools/call on
  that session. Two ways to expire: `server_expired` (the server's `expire_tokens()`: only a 401
  tells the client) and `clock_expired` (token_ttl 3 s, wait 3.5 s: the client can know from
  expires_in). The server counts refresh requests (POST /token with grant_type=refresh_token),
  re-authorizations, refresh-token reuse events and 401s.

Both sides use the initialize handshake (era "legacy") so the flow ends in initialize + tools/list.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from benchmarks.common import alternate, paired_ratios, ratio, stats, target
from benchmarks.servers import start

REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"  # never contacted: the redirect is read, not followed
SIDES = ("switchboard", "sdk")


class _HeadlessBrowser:
    """The SDK's redirect + callback handlers for an auto-approving authorization server."""

    def __init__(self, http: Any) -> None:
        self.http = http
        self.query: dict[str, list[str]] = {}

    async def redirect(self, authorization_url: str) -> None:
        answer = await self.http.get(authorization_url)  # follow_redirects is off: read the Location
        location = answer.headers.get("location", "")
        if not location.startswith(REDIRECT_URI):
            raise RuntimeError(f"authorization did not redirect back (HTTP {answer.status_code})")
        self.query = parse_qs(urlsplit(location).query)

    async def callback(self) -> Any:
        from mcp.client.auth import AuthorizationCodeResult

        return AuthorizationCodeResult(
            code=self.query["code"][0],
            state=self.query.get("state", [None])[0],
            iss=self.query.get("iss", [None])[0],
        )


class _SdkTokenStorage:
    def __init__(self) -> None:
        self.tokens: Any = None
        self.client_info: Any = None

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client_info

    async def set_client_info(self, client_info: Any) -> None:
        self.client_info = client_info


class _Switchboard:
    def __init__(self) -> None:
        from benchmarks.common import loopback_policy
        from core.net import shared_http_client
        from core.oauth import OAuthHttp

        self.http = shared_http_client(loopback_policy())
        self.oauth_http = OAuthHttp(self.http)

    def session(self, url: str) -> Any:
        from core.mcp.client import McpClient
        from core.oauth import ConnectorSettings, CredentialKey, MemoryOAuthStorage, OAuthProvider

        provider = OAuthProvider(
            MemoryOAuthStorage(),
            CredentialKey("bench", ""),
            ConnectorSettings(url, redirect_uri=REDIRECT_URI),
            http=self.oauth_http,
            headless=True,
        )
        return _SbSession(McpClient(url, http=self.http, auth=provider, era="legacy"))

    async def aclose(self) -> None:
        from core.net import aclose_shared_clients

        await aclose_shared_clients()


class _SbSession:
    def __init__(self, client: Any) -> None:
        self.client = client

    async def __aenter__(self) -> Self:
        await self.client.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    async def list_tools(self) -> list[str]:
        return [t["name"] for t in await self.client.list_tools()]

    async def call(self, name: str, arguments: dict[str, Any]) -> None:
        result = await self.client.call_tool(name, arguments)
        if result.is_error:
            raise RuntimeError(f"{name} failed")


class _Sdk:
    def __init__(self) -> None:
        import httpx2

        self.browser_http = httpx2.AsyncClient(trust_env=False, follow_redirects=False)

    def session(self, url: str) -> Any:
        return _SdkSession(url, self.browser_http)

    async def aclose(self) -> None:
        await self.browser_http.aclose()


class _SdkSession:
    def __init__(self, url: str, browser_http: Any) -> None:
        self.url = url
        self.browser = _HeadlessBrowser(browser_http)

    async def __aenter__(self) -> Self:
        import httpx2
        from mcp import Client
        from mcp.client.auth import OAuthClientProvider
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared.auth import OAuthClientMetadata
        from pydantic import AnyUrl

        provider = OAuthClientProvider(
            server_url=self.url,
            client_metadata=OAuthClientMetadata(client_name="bench", redirect_uris=[AnyUrl(REDIRECT_URI)]),
            storage=_SdkTokenStorage(),
            redirect_handler=self.browser.redirect,
            callback_handler=self.browser.callback,
        )
        self.http = httpx2.AsyncClient(
            auth=provider, follow_redirects=True, timeout=httpx2.Timeout(30, read=300)
        )
        await self.http.__aenter__()
        self.client = Client(streamable_http_client(self.url, http_client=self.http), mode="legacy")
        try:
            await self.client.__aenter__()
        except BaseException:
            await self.http.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.client.__aexit__(None, None, None)
        finally:
            await self.http.aclose()

    async def list_tools(self) -> list[str]:
        return [t.name for t in (await self.client.list_tools()).tools]

    async def call(self, name: str, arguments: dict[str, Any]) -> None:
        result = await self.client.call_tool(name, arguments)
        if result.is_error:
            raise RuntimeError(f"{name} failed")


def _sides() -> dict[str, Any]:
    return {"switchboard": _Switchboard(), "sdk": _Sdk()}


def _paths(counters: dict[str, Any]) -> dict[str, int]:
    found: dict[str, int] = {}
    for request in counters["requests"]:
        key = f"{request['method']} {request['path']}" + (f" {request['rpc']}" if request.get("rpc") else "")
        found[key] = found.get(key, 0) + 1
    return found


async def flow(runs: int = 10, warmup: int = 1) -> dict[str, Any]:
    with start("sdk_oauth") as server:
        sides = _sides()
        requests: dict[str, list[int]] = {name: [] for name in SIDES}
        breakdown: dict[str, dict[str, int]] = {}
        try:

            def variant(name: str) -> Any:
                async def run() -> float:
                    server.reset()
                    started = time.perf_counter()
                    async with sides[name].session(server.url) as session:
                        tools = await session.list_tools()
                        elapsed = (time.perf_counter() - started) * 1000
                    if "whoami" not in tools:
                        raise AssertionError(f"{name}: no tools after the OAuth flow")
                    counters = server.counters()
                    if counters["authorizations"] != 1 or counters["registrations"] != 1:
                        raise AssertionError(
                            f"{name}: expected one registration and one authorization, got "
                            f"{counters['registrations']} and {counters['authorizations']}"
                        )
                    requests[name].append(int(counters["requests_total"]))
                    breakdown[name] = _paths(counters)
                    return elapsed

                return run

            variants = {name: variant(name) for name in SIDES}
            await alternate(warmup, variants)
            for name in SIDES:
                requests[name].clear()
            times = await alternate(runs, variants)
        finally:
            for side in sides.values():
                await side.aclose()
    sb, sdk = stats(times["switchboard"]), stats(times["sdk"])
    return {
        "unit": "ms",
        "runs": runs,
        "switchboard": sb,
        "sdk": sdk,
        "ratio": ratio(sb["median"], sdk["median"]),
        "paired_ratio": paired_ratios(times["switchboard"], times["sdk"]),
        "http_requests": {name: stats(requests[name], 0) for name in SIDES},
        "requests_by_kind": breakdown,
        "note": "requests_by_kind: the last run's requests (method, path, JSON-RPC method); the count "
        "includes the DELETE that ends the session",
    }


SCENARIOS = {
    # The server expires every access token; neither client can know before its request gets a 401.
    "server_expired": "expire_tokens() on the server, then the calls (each client learns from a 401)",
    # The token's own lifetime ran out; both clients can see it from expires_in before sending.
    "clock_expired": "token_ttl=3 s, wait 3.5 s, then the calls (proactive refresh possible)",
}
CLOCK_TTL = 3


async def refresh(
    callers: int = 50, runs: int = 3, scenarios: tuple[str, ...] = ("server_expired", "clock_expired")
) -> dict[str, Any]:
    results: dict[str, Any] = {"callers": callers, "runs": runs}
    for scenario in scenarios:
        options = {"token_ttl": CLOCK_TTL} if scenario == "clock_expired" else {}
        with start("sdk_oauth", **options) as server:
            rows = await _refresh_runs(server, scenario, callers, runs)
        result: dict[str, Any] = {"what": SCENARIOS[scenario]}
        for name in SIDES:
            samples = rows[name]
            result[name] = {
                "wall_ms": stats([s["wall_ms"] for s in samples], 1),
                **{
                    key: stats([s[key] for s in samples], 0)
                    for key in (
                        "refresh_requests",
                        "authorizations",
                        "reuse_events",
                        "unauthorized_401",
                        "http_requests",
                        "succeeded",
                        "failed",
                    )
                },
                "token_requests_last_run": samples[-1]["token_requests"],
                "first_error": next((s["first_error"] for s in samples if s["first_error"]), None),
            }
        result["ratio"] = ratio(
            result["switchboard"]["wall_ms"]["median"], result["sdk"]["wall_ms"]["median"]
        )
        results[scenario] = result
    return results


async def _refresh_runs(
    server: Any, scenario: str, callers: int, runs: int
) -> dict[str, list[dict[str, Any]]]:
    sides = _sides()
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in SIDES}
    try:

        def variant(name: str) -> Any:
            async def run() -> float:
                async with sides[name].session(server.url) as session:
                    await session.list_tools()
                    await session.call("echo", {"message": "before"})
                    if scenario == "server_expired":
                        server.expire_tokens()
                    else:
                        await asyncio.sleep(CLOCK_TTL + 0.5)
                    server.reset()
                    started = time.perf_counter()
                    outcomes = await asyncio.gather(
                        *(session.call("echo", {"message": f"c{i}"}) for i in range(callers)),
                        return_exceptions=True,
                    )
                    elapsed = (time.perf_counter() - started) * 1000
                    counters = server.counters()
                failures = [o for o in outcomes if isinstance(o, BaseException)]
                rows[name].append(
                    {
                        "wall_ms": elapsed,
                        "refresh_requests": counters["refresh_requests"],
                        "token_requests": counters["token_requests"],
                        "authorizations": counters["authorizations"],
                        "reuse_events": counters["reuse_events"],
                        "unauthorized_401": counters["auth_failures"].get("401", 0),
                        "http_requests": counters["requests_total"],
                        "succeeded": callers - len(failures),
                        "failed": len(failures),
                        "first_error": f"{type(failures[0]).__name__}: {failures[0]}"[:300]
                        if failures
                        else None,
                    }
                )
                return elapsed

            return run

        await alternate(runs, {name: variant(name) for name in SIDES})
    finally:
        for side in sides.values():
            await side.aclose()
    return rows


def targets(
    flow_result: dict[str, Any] | None, refresh_result: dict[str, Any] | None
) -> list[dict[str, Any]]:
    found = []
    for scenario in SCENARIOS:
        row = (refresh_result or {}).get(scenario)
        if row:
            sb = row["switchboard"]["refresh_requests"]
            exact = sb["min"] == sb["max"] == 1
            found.append(
                target(
                    f"refresh requests, {row['switchboard']['succeeded']['min']}/"
                    f"{(refresh_result or {}).get('callers')} calls ok ({scenario}, every run)",
                    1 if exact else sb["max"],
                    1,
                    op="==",
                )
            )
    return found
