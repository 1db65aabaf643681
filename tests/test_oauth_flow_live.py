"""The OAuth library's happy paths against the real sample authorization server (official SDK AS).

Moved here from the `FakeWorld` (httpx2.MockTransport) files, which keep the fault and
malformed-input cases (docs/architecture.md, "Testing"): the authorization request, DCR, the code
exchange, the callback in another process, the headless helper, refresh rotation and single flight,
the provider's 401 handling, and client_credentials (Basic authentication, fetched on a 401, never a
step-up). What the client sent is read from the sample server's request log,
whose OAuth bodies show every secret as "<present>".
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from core.errors import AuthRequired, InsufficientScope, NeedsReauthorization
from core.mcp.auth import AuthChallenge
from core.mcp.client import McpClient
from core.net import create_http_client
from core.oauth import (
    ClientCredentials,
    ConnectorSettings,
    CredentialKey,
    MemoryOAuthStorage,
    MemoryTrace,
    OAuthHttp,
    OAuthProvider,
    TokenSet,
    authorize_headless,
    client_credentials_token,
    complete_authorization,
    discover,
    ensure_client,
    refresh_tokens,
    start_authorization,
)
from core.rfc9110 import Challenge
from sample_servers.control import SECRET_PRESENT
from tests.fixtures.services import LOOPBACK

REDIRECT_URI = "http://127.0.0.1:8765/oauth/callback"  # never contacted: the redirect is read
KEY = CredentialKey("connector-1")
AGENT_B = CredentialKey("connector-1", "agent-b")


@pytest.fixture(params=["memory", "duckdb"])
def make_storage(request: pytest.FixtureRequest, tmp_path):
    """Refresh tests run against MemoryOAuthStorage and the DuckDB store's OAuthStorage."""
    if request.param == "memory":
        return MemoryOAuthStorage
    from core.store.crypto import Keyring
    from core.store.db import Store

    return Store(tmp_path / "store.duckdb", keyring=Keyring.generate()).oauth_storage


def settings(server, **changes) -> ConnectorSettings:
    return ConnectorSettings(server_url=server.url, redirect_uri=REDIRECT_URI, **changes)


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def bodies(server, path: str) -> list[dict]:
    """What the client POSTed to `path` (secrets shown as "<present>"), oldest first."""
    return [r["body"] for r in server.counters()["requests"] if r["path"] == path and r["method"] == "POST"]


async def callback_params(url: str) -> dict[str, str]:
    """The browser's part: the sample AS auto-approves; read the redirect without following it."""
    async with httpx2.AsyncClient() as browser:
        answer = await browser.get(url)
    assert answer.status_code in (302, 303), answer.status_code
    return query(answer.headers["location"])


async def whoami(server, http: OAuthHttp, provider: OAuthProvider) -> dict:
    async with McpClient(server.url, http=http.client, auth=provider) as client:
        return (await client.call_tool("whoami", {})).raw["structuredContent"]


# --- flow (from tests/test_oauth_flow.py) ------------------------------------------------------------


async def test_dcr_request_body_and_reuse_per_issuer(sdk_oauth_server, http) -> None:
    storage = MemoryOAuthStorage()
    found = await discover(sdk_oauth_server.url, http=http)
    first = await ensure_client(found, settings(sdk_oauth_server), storage, http=http)
    again = await ensure_client(found, settings(sdk_oauth_server), storage, http=http)
    assert first.client_id == again.client_id and first.issuer == sdk_oauth_server.issuer
    registered = bodies(sdk_oauth_server, "/register")
    assert len(registered) == 1
    body = registered[0]
    assert body["redirect_uris"] == [REDIRECT_URI]
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["response_types"] == ["code"] and body["application_type"] == "native"
    assert body["client_name"] == "Switchboard"
    # The client takes a method the AS supports (the fake AS offered only "none"; the SDK's offers
    # secret-based ones, so a confidential client is registered).
    assert (
        body["token_endpoint_auth_method"] in found.metadata.document["token_endpoint_auth_methods_supported"]
    )
    register = [r for r in sdk_oauth_server.counters()["requests"] if r["path"] == "/register"]
    assert not register[0]["authorization"]


async def test_concurrent_ensure_client_registers_once(sdk_oauth_server, http) -> None:
    storage = MemoryOAuthStorage()
    found = await discover(sdk_oauth_server.url, http=http)
    results = await asyncio.gather(
        *(ensure_client(found, settings(sdk_oauth_server), storage, http=http) for _ in range(10))
    )
    assert len({r.client_id for r in results}) == 1
    assert sdk_oauth_server.counters()["registrations"] == 1


async def test_registration_is_never_reused_with_another_issuer(
    sdk_oauth_server, sample_server_factory, http
) -> None:
    """One storage, two authorization servers (the second as if the server had moved to it): the
    client registered at the first is never presented to the second, which gets its own."""
    moved_to = sample_server_factory("sdk_oauth")
    storage = MemoryOAuthStorage()
    first = await ensure_client(
        await discover(sdk_oauth_server.url, http=http), settings(sdk_oauth_server), storage, http=http
    )
    second = await ensure_client(
        await discover(moved_to.url, http=http), settings(sdk_oauth_server), storage, http=http
    )
    assert (first.issuer, second.issuer) == (sdk_oauth_server.issuer, moved_to.issuer)
    assert first.client_id != second.client_id
    assert sdk_oauth_server.counters()["registrations"] == moved_to.counters()["registrations"] == 1


async def test_authorization_url_parameters(sdk_oauth_server, http) -> None:
    storage = MemoryOAuthStorage()
    url, state = await start_authorization(storage, KEY, settings(sdk_oauth_server), http=http)
    q = query(url)
    assert url.startswith(sdk_oauth_server.issuer + "/authorize?")
    assert q["response_type"] == "code" and q["code_challenge_method"] == "S256"
    assert q["resource"] == sdk_oauth_server.url and q["redirect_uri"] == REDIRECT_URI and q["state"] == state
    assert len(base64.urlsafe_b64decode(state + "==")) >= 16  # >= 128 bits
    pending = storage._pending[state]
    assert pending.code_verifier not in url and 43 <= len(pending.code_verifier) <= 128
    async with httpx2.AsyncClient() as plain:
        prm = (await plain.get(sdk_oauth_server.resource_metadata_url)).json()
    assert q["scope"] == " ".join(prm["scopes_supported"])  # no challenge given: the PRM's scopes


async def test_full_flow_and_resource_byte_identical(sdk_oauth_server, http) -> None:
    storage = MemoryOAuthStorage()
    url, _ = await start_authorization(
        storage, KEY, settings(sdk_oauth_server), return_to="/connectors/1", http=http
    )
    key, tokens, return_to = await complete_authorization(storage, await callback_params(url), http=http)
    assert key == KEY and return_to == "/connectors/1"
    assert tokens.refresh_token and tokens.version == 1
    (token_request,) = bodies(sdk_oauth_server, "/token")
    assert token_request["grant_type"] == "authorization_code"
    assert token_request["resource"] == query(url)["resource"] == sdk_oauth_server.url
    assert token_request["redirect_uri"] == REDIRECT_URI and token_request["code_verifier"] == SECRET_PRESENT
    assert storage.load_tokens(KEY) == tokens
    provider = OAuthProvider(storage, KEY, settings(sdk_oauth_server), http=http)
    assert (await whoami(sdk_oauth_server, http, provider))["auth"] == "oauth"  # the token works


async def test_callback_in_another_process_needs_only_storage(sdk_oauth_server, http) -> None:
    storage = MemoryOAuthStorage()
    url, _ = await start_authorization(storage, KEY, settings(sdk_oauth_server), http=http)
    params = await callback_params(url)
    # The callback handler gets nothing but the storage and the query string (and its own client).
    async with create_http_client(LOOPBACK) as other:
        _, tokens, _ = await complete_authorization(storage, params, http=OAuthHttp(other))
    assert tokens.issuer == sdk_oauth_server.issuer
    assert tokens.token_endpoint == sdk_oauth_server.issuer + "/token"


async def test_headless_helper_uses_the_same_callback_path(sdk_oauth_server) -> None:
    storage = MemoryOAuthStorage()
    trace = MemoryTrace()
    async with create_http_client(LOOPBACK) as client:
        http = OAuthHttp(client, trace)
        tokens = await authorize_headless(storage, KEY, settings(sdk_oauth_server), http=http)
        assert trace.steps() == ["prm", "as_metadata", "register", "authorize", "authorize", "token"]
        assert all("?" not in e.url for e in trace.events)
        provider = OAuthProvider(storage, KEY, settings(sdk_oauth_server), http=http)
        assert (await provider.auth_headers())["Authorization"] == f"Bearer {tokens.access_token}"
        assert (await whoami(sdk_oauth_server, http, provider))["auth"] == "oauth"


# --- refresh (from tests/test_oauth_tokens.py) --------------------------------------------------------


async def authorized(server, storage, http: OAuthHttp, key: CredentialKey = KEY) -> TokenSet:
    return await authorize_headless(storage, key, settings(server), http=http)


async def expired(server, storage, http: OAuthHttp) -> TokenSet:
    """A real authorization whose access token is then stored as expired (refresh due)."""
    tokens = await authorized(server, storage, http)
    now = time.time()
    return storage.save_tokens(
        KEY, replace(tokens, expires_at=now - 10, issued_at=now - 3600), expected_version=None
    )


def registration_of(storage, tokens: TokenSet):
    return storage.client_by_id(tokens.issuer, tokens.client_id)


async def test_refresh_rotates_persists_and_sends_resource_without_scope(
    sdk_oauth_server, http, make_storage
) -> None:
    storage = make_storage()
    stale = await expired(sdk_oauth_server, storage, http)
    sdk_oauth_server.reset()
    fresh = await refresh_tokens(storage, KEY, http, registration_of(storage, stale), stale=stale)
    assert fresh.refresh_token != stale.refresh_token and storage.load_tokens(KEY) == fresh
    assert fresh.version == stale.version + 1 and fresh.scopes == stale.scopes
    (form,) = bodies(sdk_oauth_server, "/token")
    assert form["resource"] == sdk_oauth_server.url and "scope" not in form
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == SECRET_PRESENT


async def test_ten_refreshes_in_a_row_without_reuse(sdk_oauth_server, http, make_storage) -> None:
    storage = make_storage()
    tokens = await authorized(sdk_oauth_server, storage, http)
    registration = registration_of(storage, tokens)
    for _ in range(10):
        tokens = await refresh_tokens(storage, KEY, http, registration, stale=tokens, rejected=True)
    counters = sdk_oauth_server.counters()
    assert counters["refresh_requests"] == 10 and counters["reuse_events"] == 0


async def test_c01_fifty_concurrent_refreshes_make_one_request(sdk_oauth_server, http, make_storage) -> None:
    storage = make_storage()
    stale = await expired(sdk_oauth_server, storage, http)
    registration = registration_of(storage, stale)
    results = await asyncio.gather(
        *(refresh_tokens(storage, KEY, http, registration, stale=stale) for _ in range(50))
    )
    counters = sdk_oauth_server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0
    assert len({r.access_token for r in results}) == 1


def test_c03_threads_with_their_own_event_loops_make_one_request(sdk_oauth_server, make_storage) -> None:
    storage = make_storage()

    async def authorize() -> TokenSet:
        async with create_http_client(LOOPBACK) as client:
            return await expired(sdk_oauth_server, storage, OAuthHttp(client))

    stale = asyncio.run(authorize())
    registration = registration_of(storage, stale)
    results: list[TokenSet] = []
    barrier = threading.Barrier(4)

    async def refresh() -> TokenSet:
        async with create_http_client(LOOPBACK) as client:
            return await refresh_tokens(storage, KEY, OAuthHttp(client), registration, stale=stale)

    def worker() -> None:
        barrier.wait()
        results.append(asyncio.run(refresh()))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counters = sdk_oauth_server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0
    assert len(results) == 4 and len({r.access_token for r in results}) == 1


# --- the provider (from tests/test_oauth_provider.py) -------------------------------------------------

UNAUTHORIZED = Challenge("bearer", {"error": "invalid_token"})


def unauthorized(server) -> AuthChallenge:
    return AuthChallenge(401, (UNAUTHORIZED,), server.url, "tools/list")


async def test_headless_authorizes_on_the_first_401(sdk_oauth_server, http) -> None:
    storage = MemoryOAuthStorage()
    provider = OAuthProvider(storage, KEY, settings(sdk_oauth_server), http=http, headless=True)
    assert await provider.auth_headers() == {}
    assert await provider.handle_challenge(unauthorized(sdk_oauth_server)) is True
    header = (await provider.auth_headers())["Authorization"]
    assert header == f"Bearer {storage.load_tokens(KEY).access_token}"
    assert (await whoami(sdk_oauth_server, http, provider))["auth"] == "oauth"


async def test_401_refreshes_once_then_needs_reauthorization(sdk_oauth_server, http) -> None:
    storage = MemoryOAuthStorage()
    first = await authorized(sdk_oauth_server, storage, http)
    provider = OAuthProvider(storage, KEY, settings(sdk_oauth_server), http=http)
    assert (await provider.auth_headers())["Authorization"] == f"Bearer {first.access_token}"
    assert await provider.handle_challenge(unauthorized(sdk_oauth_server)) is True
    second = (await provider.auth_headers())["Authorization"]
    assert second != f"Bearer {first.access_token}"
    assert sdk_oauth_server.counters()["token_requests"] == {"authorization_code": 1, "refresh_token": 1}
    with pytest.raises(NeedsReauthorization):
        await provider.handle_challenge(unauthorized(sdk_oauth_server))
    assert sdk_oauth_server.counters()["refresh_requests"] == 1 and storage.needs_reauth(KEY)


async def test_concurrent_401s_for_one_token_refresh_once(sdk_oauth_server, http) -> None:
    storage = MemoryOAuthStorage()
    await authorized(sdk_oauth_server, storage, http)
    provider = OAuthProvider(storage, KEY, settings(sdk_oauth_server), http=http)

    async def call() -> bool:
        await provider.auth_headers()  # each task remembers the token it sent
        return await provider.handle_challenge(unauthorized(sdk_oauth_server))

    assert all(await asyncio.gather(*(call() for _ in range(50))))
    counters = sdk_oauth_server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0


async def test_fifty_calls_with_an_expired_token_refresh_once(sdk_oauth_server, http) -> None:
    storage = MemoryOAuthStorage()
    tokens = await authorized(sdk_oauth_server, storage, http)
    storage.save_tokens(KEY, replace(tokens, expires_at=time.time() - 1), expected_version=None)
    providers = [OAuthProvider(storage, KEY, settings(sdk_oauth_server), http=http) for _ in range(5)]
    headers = await asyncio.gather(*(providers[i % 5].auth_headers() for i in range(50)))
    assert len({h["Authorization"] for h in headers}) == 1
    counters = sdk_oauth_server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0


async def test_two_agents_have_separate_tokens(sdk_oauth_server, http) -> None:
    storage = MemoryOAuthStorage()
    sdk_oauth_server.next_subject("agent-a")
    a = await authorized(sdk_oauth_server, storage, http, KEY)
    sdk_oauth_server.next_subject("agent-b")
    b = await authorized(sdk_oauth_server, storage, http, AGENT_B)
    assert a.access_token != b.access_token
    provider_a = OAuthProvider(storage, KEY, settings(sdk_oauth_server), http=http)
    provider_b = OAuthProvider(storage, AGENT_B, settings(sdk_oauth_server), http=http)
    assert (await provider_a.auth_headers())["Authorization"].endswith(a.access_token)
    assert (await provider_b.auth_headers())["Authorization"].endswith(b.access_token)
    assert (await whoami(sdk_oauth_server, http, provider_a))["subject"] == "agent-a"
    assert (await whoami(sdk_oauth_server, http, provider_b))["subject"] == "agent-b"
    assert sdk_oauth_server.counters()["registrations"] == 1  # one client per issuer, shared by the agents


async def test_interactive_without_tokens_asks_for_authorization(sdk_oauth_server, http) -> None:
    provider = OAuthProvider(MemoryOAuthStorage(), KEY, settings(sdk_oauth_server), http=http)
    assert await provider.auth_headers() == {}
    with pytest.raises(AuthRequired, match="authorize"):
        async with McpClient(sdk_oauth_server.url, http=http.client, auth=provider):
            pass
    assert sdk_oauth_server.counters()["authorizations"] == 0


async def test_token_is_only_sent_to_its_resource(sdk_oauth_server, plain_server, http) -> None:
    storage = MemoryOAuthStorage()
    await authorized(sdk_oauth_server, storage, http)
    other = OAuthProvider(storage, KEY, settings(plain_server), http=http)
    assert await other.auth_headers() == {}
    async with McpClient(plain_server.url, http=http.client, auth=other) as client:
        await client.call_tool("whoami", {})
    assert plain_server.counters()["requests_with_authorization"] == 0


# --- client_credentials (from tests/test_oauth_provider.py) ---------------------------------------------

MACHINE = "agent"


@pytest.fixture
def machine_secret() -> str:
    return "s-" + secrets.token_urlsafe(12)


@pytest.fixture
def cc_server(sample_server_factory, machine_secret):
    return sample_server_factory("sdk_oauth", machine_clients={MACHINE: machine_secret})


async def test_client_credentials_basic(cc_server, http, machine_secret) -> None:
    found = await discover(cc_server.url, http=http)
    tokens = await client_credentials_token(
        found, ClientCredentials(MACHINE, client_secret=machine_secret), http=http
    )
    (request,) = bodies(cc_server, "/token")
    assert request == {
        "grant_type": "client_credentials",
        "resource": cc_server.url,
        "client_id": MACHINE,
        "scope": " ".join(found.scopes()),
    }
    # The AS accepted the Basic header (id and secret form-urlencoded) and issued a working token.
    assert tokens.refresh_token is None and tokens.resource == cc_server.url
    assert cc_server.counters()["tokens_issued"] == {"client_credentials": 1}
    storage = MemoryOAuthStorage()
    storage.save_tokens(KEY, tokens, expected_version=None)
    provider = OAuthProvider(storage, KEY, settings(cc_server), http=http)
    assert (await whoami(cc_server, http, provider))["subject"] == MACHINE


async def test_client_credentials_provider_fetches_on_401_and_never_steps_up(
    cc_server, http, machine_secret
) -> None:
    provider = OAuthProvider(
        MemoryOAuthStorage(),
        KEY,
        settings(cc_server),
        http=http,
        client_credentials=ClientCredentials(MACHINE, client_secret=machine_secret),
    )
    async with McpClient(cc_server.url, http=http.client, auth=provider) as client:
        assert (await client.call_tool("whoami", {})).raw["structuredContent"]["subject"] == MACHINE
        with pytest.raises(InsufficientScope):
            await client.call_tool("admin_action", {"action": "x"})  # the server's real 403
    counters = cc_server.counters()
    assert counters["tokens_issued"] == {"client_credentials": 1} and counters["authorizations"] == 0
