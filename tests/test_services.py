"""The services API end to end against real sample servers and a real store file."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2
import pytest

from core.errors import AuthRequired, ConfigurationError, InvalidArguments, NetworkPolicyError, NotFoundError
from core.mcp.client import McpClient
from core.net import NetworkPolicy
from core.oauth.storage import CredentialKey
from core.services import Switchboard
from core.services.credentials import resolve_key

LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost")


@pytest.fixture
def service(store_location, tmp_path, monkeypatch):
    """The services on a fresh store, once per engine."""
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "keys" / "store.key"))
    monkeypatch.delenv("SWITCHBOARD_KEY", raising=False)
    board = Switchboard.open(
        store_location,
        policy=LOOPBACK,
        redirect_uri="http://127.0.0.1:9/oauth/callback",
    )
    yield board


def test_each_part_is_built_once_when_threads_ask_for_it_at_once(service):
    """The parts are built on first use (`core/services/parts.py`): threads racing for one, and
    for the parts it needs, all get the same instances."""
    with ThreadPoolExecutor(8) as threads:
        authorizers = list(threads.map(lambda _: service._authorizer, range(32)))
    assert all(authorizer is authorizers[0] for authorizer in authorizers)
    assert authorizers[0]._credentials is service._credentials
    assert authorizers[0]._syncs is service._syncs and authorizers[0]._offboarding is service._offboarding


# Moved from tests/test_store.py: which credential a pair uses is decided here, not in the store.
def test_resolution_shared_and_per_agent_never_fall_back(store_factory):
    """Which credential a (connector, agent) pair uses (`core.services.credentials`, on each engine)."""
    store = store_factory()
    shared = store.connectors.create("shared", "https://s/mcp", "bearer")
    per_agent = store.connectors.create(
        "mine", "https://m/mcp", "api_key_header", header_name="X-Key", credential_mode="per_agent"
    )
    a, b = store.agents.create("a"), store.agents.create("b")
    assert resolve_key(store, shared, None, managing=False) == CredentialKey(shared.id, "")
    assert resolve_key(store, shared, "a", managing=False) == CredentialKey(shared.id, "")
    key_a = resolve_key(store, per_agent, "a", managing=False)
    assert key_a == CredentialKey(per_agent.id, a.id)
    with pytest.raises(ConfigurationError, match="name an agent"):
        resolve_key(store, per_agent, None, managing=False)

    # b has no credential: it must not see a's, nor a shared one.
    store.credentials.save_secret(key_a, "key-of-a")
    store.credentials.save_secret(CredentialKey(per_agent.id, ""), "stray-shared")
    with pytest.raises(NotFoundError):
        store.credentials.load_secret(resolve_key(store, per_agent, "b", managing=False))
    assert store.credentials.load_secret(key_a).reveal() == "key-of-a"
    assert b.id not in str(key_a)


async def _follow_authorization(url: str) -> dict[str, str]:
    """The browser's part: GET the authorization URL (the sample AS auto-approves) and read the
    callback parameters from the redirect, without following it."""
    async with httpx2.AsyncClient() as browser:
        answer = await browser.get(url)
    assert answer.status_code in (302, 303, 307), answer.status_code
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))


async def test_shared_bearer_connector_syncs_and_calls(service, bearer_server):
    await service.add_connector("render", bearer_server.url, "bearer")
    info = await service.set_secret("render", bearer_server.keys["alice"] + "\n")
    assert info.status == "connected" and len(info.fingerprint) == 8
    connector = await service.get_connector("render")
    assert connector.status == "connected" and connector.tool_count == len(bearer_server.tools)
    outcome = await service.call_tool("render", "whoami", {})
    assert outcome.is_error is False
    assert "alice" in outcome.text()
    audit = await service.audit()
    assert audit[0]["tool"] == "whoami" and audit[0]["status"] == "ok"
    assert audit[0]["credential_fingerprint"] == info.fingerprint
    await service.aclose()


async def test_wrong_key_is_refused_and_nothing_is_stored(service, bearer_server):
    await service.add_connector("render", bearer_server.url, "bearer")
    with pytest.raises(AuthRequired, match="rejected this key"):
        await service.set_secret("render", "not-a-key")
    assert await service.health() == []


async def test_per_agent_api_keys_keep_agents_apart(service, api_key_server):
    await service.add_connector(
        "keys", api_key_server.url, "api_key_header", "per_agent", header_name=api_key_server.header
    )
    for agent in ("alice", "bob"):
        await service.add_agent(agent)
        await service.set_secret("keys", api_key_server.keys[agent], agent=agent)
    assert "alice" in (await service.call_tool("keys", "whoami", {}, agent="alice")).text()
    assert "bob" in (await service.call_tool("keys", "whoami", {}, agent="bob")).text()
    await service.add_agent("carol")
    with pytest.raises(AuthRequired, match="agent carol has no credential for keys"):
        await service.call_tool("keys", "whoami", {}, agent="carol")
    with pytest.raises(ConfigurationError, match="name an agent"):
        await service.call_tool("keys", "whoami", {})
    states = {c.connector: c.status for c in await service.credentials_for_agent("carol")}
    assert states == {"keys": "missing"}
    await service.aclose()


async def test_arguments_are_validated_before_sending(service, plain_server):
    await service.add_connector("plain", plain_server.url, "none")
    assert (await service.connect("plain")).status == "connected"
    with pytest.raises(InvalidArguments, match="'a' is a required property"):
        await service.call_tool("plain", "add", {"b": 1})
    assert plain_server.counters()["tool_calls"] == {}
    result = await service.call_tool("plain", "add", {"a": 2, "b": 3})
    assert result.result["structuredContent"] == {"result": 5} or "5" in result.text()
    await service.aclose()


async def test_loopback_is_refused_without_allow_list(tmp_path, monkeypatch, plain_server):
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "store.key"))
    board = Switchboard.open(str(tmp_path / "s.duckdb"), policy=NetworkPolicy.allowing())
    with pytest.raises(NetworkPolicyError, match="SWITCHBOARD_ALLOW_HOSTS"):
        await board.add_connector("plain", plain_server.url, "none")


async def test_oauth_connect_authorize_sync_and_call(service, sdk_oauth_server):
    await service.add_connector("linear", sdk_oauth_server.url, "oauth")
    outcome = await service.connect("linear")
    assert outcome.status == "needs_auth"
    assert outcome.discovery.issuer == sdk_oauth_server.issuer
    assert outcome.discovery.registration_method == "dcr"
    url = await service.start_authorization("linear", return_to="/connectors")
    params = await _follow_authorization(url)
    done = await service.complete_authorization(params)
    assert done.ok, done.message
    assert done.return_to == "/connectors" and done.tools == len(sdk_oauth_server.tools)
    replay = await service.complete_authorization(params)
    assert not replay.ok and "start the authorization again" in replay.message
    result = await service.call_tool("linear", "whoami", {})
    assert not result.is_error
    steps = [s["step"] for s in await service.auth_trace("linear")]
    assert "token" in steps and "authorize" in steps
    counters = sdk_oauth_server.counters()
    assert counters["registrations"] == 1 and counters["authorizations"] == 1
    await service.disconnect("linear")
    assert sdk_oauth_server.counters()["revocations"] >= 1
    assert await service.health() == []
    await service.aclose()


async def test_callback_error_returns_to_where_it_started(service, sdk_oauth_server):
    await service.add_connector("linear", sdk_oauth_server.url, "oauth", "per_agent")
    await service.add_agent("ada")
    url = await service.start_authorization("linear", "ada", return_to="/agent?name=ada")
    state = dict(parse_qsl(urlsplit(url).query))["state"]
    outcome = await service.complete_authorization(
        {
            "state": state,
            "error": "access_denied",
            "error_description": "<script>x</script>",
            "iss": "https://evil.example",
        }
    )
    assert not outcome.ok and outcome.return_to == "/agent?name=ada"
    assert "<script>" not in outcome.message


async def test_loopback_authorized_credential_refreshes_from_the_dashboard(service, sdk_oauth_server):
    """Tokens obtained through the CLI's loopback redirect are refreshed by a process whose own
    redirect URI (the dashboard's) differs: the registration is found by issuer and client id."""
    await service.add_connector("linear", sdk_oauth_server.url, "oauth")
    browsing: list[asyncio.Task] = []

    async def browse(url: str) -> None:
        params = await _follow_authorization(url)
        async with httpx2.AsyncClient() as browser:
            await browser.get(_loopback_callback(url, params))

    outcome = await service.connect_cli(
        "linear",
        timeout=30,
        on_authorization_url=lambda url: browsing.append(asyncio.create_task(browse(url))),
    )
    await asyncio.gather(*browsing)
    assert outcome.status == "connected"
    sdk_oauth_server.expire_tokens()
    before = sdk_oauth_server.counters()["refresh_requests"]
    assert not (await service.call_tool("linear", "whoami", {})).is_error
    assert sdk_oauth_server.counters()["refresh_requests"] == before + 1
    for _ in range(100):  # the refresh is written to the trace in the background
        if [s["step"] for s in await service.auth_trace("linear")] == ["refresh"]:
            break
        await asyncio.sleep(0.05)
    assert [s["step"] for s in await service.auth_trace("linear")] == ["refresh"]
    await service.aclose()


def _loopback_callback(authorization_url: str, params: dict[str, str]) -> str:
    redirect_uri = dict(parse_qsl(urlsplit(authorization_url).query))["redirect_uri"]
    return f"{redirect_uri}?{urlencode(params)}"


async def test_sync_many_covers_every_agent_credential(service, bearer_server, api_key_server):
    await service.add_connector("shared", bearer_server.url, "bearer")
    await service.set_secret("shared", bearer_server.keys["alice"])
    await service.add_connector(
        "keys", api_key_server.url, "api_key_header", "per_agent", header_name=api_key_server.header
    )
    for agent in ("alice", "bob"):
        await service.add_agent(agent)
        await service.set_secret("keys", api_key_server.keys[agent], agent=agent)
    totals: list[int] = []
    results = [r async for r in service.sync_many(on_start=totals.append)]
    assert totals == [3]
    assert sorted((r.connector, r.agent, r.ok) for r in results) == [
        ("keys", "alice", True),
        ("keys", "bob", True),
        ("shared", None, True),
    ]
    only_bob = [r async for r in service.sync_many(["keys", "missing"], agent="bob")]
    assert sorted((r.connector, r.agent, r.ok) for r in only_bob) == [
        ("keys", "bob", True),
        ("missing", None, False),
    ]
    await service.aclose()


def test_client_metadata_document_only_over_https(monkeypatch):
    from core.public_url import client_metadata

    monkeypatch.setenv("SWITCHBOARD_PUBLIC_URL", "http://localhost:5006")
    assert client_metadata() is None
    monkeypatch.setenv("SWITCHBOARD_PUBLIC_URL", "https://switchboard.example.com/")
    document = client_metadata()
    assert document["client_id"] == "https://switchboard.example.com/oauth/client-metadata.json"
    assert document["redirect_uris"] == ["https://switchboard.example.com/oauth/callback"]


async def test_cimd_url_is_offered_only_for_the_dashboard_redirect(service, monkeypatch, plain_server):
    monkeypatch.setenv("SWITCHBOARD_PUBLIC_URL", "https://switchboard.example.com")
    board = Switchboard(service.store, policy=LOOPBACK)
    await board.add_connector("x", plain_server.url, "oauth")
    connector = await board.context.connector("x")
    dashboard = await board._credentials.read_settings(connector)
    assert dashboard.client_metadata_url == "https://switchboard.example.com/oauth/client-metadata.json"
    loopback = await board._credentials.read_settings(connector, "http://127.0.0.1:4321/callback")
    assert loopback.client_metadata_url is None


@pytest.mark.parametrize("mode", ["shared", "per_agent"])
@pytest.mark.parametrize("auth_type", ["none", "bearer", "api_key_header", "oauth"])
async def test_every_auth_type_in_both_modes(service, sample_server_factory, auth_type, mode):
    kind = {"none": "plain", "bearer": "bearer", "api_key_header": "api_key", "oauth": "sdk_oauth"}[auth_type]
    server = sample_server_factory(kind)
    await service.add_connector(
        "srv",
        server.url,
        auth_type,
        mode,
        header_name=getattr(server, "header", None) if auth_type == "api_key_header" else None,
    )
    agents = ["alice", "bob"] if mode == "per_agent" else [None]
    for agent in agents:
        if agent:
            await service.add_agent(agent)
        if auth_type in ("bearer", "api_key_header"):
            await service.set_secret("srv", server.keys[agent or "alice"], agent=agent)
        elif auth_type == "oauth":
            url = await service.start_authorization("srv", agent)
            assert (await service.complete_authorization(await _follow_authorization(url))).ok
        else:
            assert (await service.connect("srv", agent)).status == "connected"
    for agent in agents:
        result = await service.call_tool("srv", "whoami", {}, agent=agent)
        assert not result.is_error
        if auth_type in ("bearer", "api_key_header"):
            assert result.result["structuredContent"]["subject"] == (agent or "alice")
    if mode == "per_agent" and auth_type != "none":
        fingerprints = {c.fingerprint for c in await service.health()}
        assert len(fingerprints) == 2  # each agent its own credential
    await service.aclose()


async def test_a_credential_changed_by_another_process_is_honoured(service, bearer_server):
    """A running process (the dashboard) must not keep using a key another process (the CLI)
    replaced or removed: its cached client is rebuilt when the stored credential changes."""
    await service.add_connector("render", bearer_server.url, "bearer")
    await service.set_secret("render", bearer_server.keys["alice"])
    assert "alice" in (await service.call_tool("render", "whoami", {})).text()
    other = Switchboard(service.store, policy=LOOPBACK)
    await other.set_secret("render", bearer_server.keys["bob"])
    assert "bob" in (await service.call_tool("render", "whoami", {})).text()
    await other.disconnect("render")
    with pytest.raises(AuthRequired, match="no shared credential"):
        await service.call_tool("render", "whoami", {})
    result = await service.sync("render")
    assert not result.ok and "no shared credential" in result.error
    await service.aclose()
    await other.aclose()


async def test_sync_many_survives_an_unexpected_error_in_one_fetch(service, plain_server, monkeypatch):
    for name in ("a", "b"):
        await service.add_connector(name, plain_server.url, "none")
    real = McpClient.list_tools

    async def flaky(self):
        if self.url.endswith("/mcp") and flaky.calls == 0:
            flaky.calls += 1
            raise RuntimeError("a bug")
        return await real(self)

    flaky.calls = 0
    monkeypatch.setattr(McpClient, "list_tools", flaky)
    results = {r.connector: r for r in [r async for r in service.sync_many()]}
    assert sorted(results) == ["a", "b"]
    assert sum(r.ok for r in results.values()) == 1
    assert any("unexpected RuntimeError" in (r.error or "") for r in results.values())
    await service.aclose()


@pytest.mark.parametrize("bad_key", ["two words", "line\nbreak", "naïve"])
async def test_a_key_that_cannot_travel_in_a_header_is_refused_clearly(service, bearer_server, bad_key):
    await service.add_connector("render", bearer_server.url, "bearer")
    with pytest.raises(ConfigurationError, match="printable ASCII") as caught:
        await service.set_secret("render", bad_key)
    assert bad_key not in str(caught.value)


def test_store_query_runs_one_select_only(service):
    assert service.store.query("SELECT count(*) AS n FROM agents")["n"][0] == 0
    for sql in ("DELETE FROM agents", "SELECT 1; DELETE FROM agents", "COPY agents TO '/tmp/x.csv'"):
        with pytest.raises(ConfigurationError, match="exactly one SELECT"):
            service.store.query(sql)


def test_broken_input_schemas_never_block_or_raise():
    from core.validation import validate_arguments

    for schema in ({"$ref": "#/nowhere"}, {"type": "strange"}, {"type": "string", "pattern": "("}, ["x"]):
        validate_arguments("t", schema, {"a": 1})  # the server will judge the call


async def test_moving_a_connector_to_another_origin_forgets_its_static_keys(
    service, bearer_server, plain_server
):
    await service.add_connector("render", bearer_server.url, "bearer")
    await service.set_secret("render", bearer_server.keys["alice"])
    same_origin = await service.update_connector("render", url=bearer_server.url)
    assert same_origin.has_shared_credential
    moved = await service.update_connector("render", url=plain_server.url.replace("127.0.0.1", "localhost"))
    assert not moved.has_shared_credential
    with pytest.raises(AuthRequired, match="no shared credential"):
        await service.call_tool("render", "whoami", {})
    assert plain_server.counters()["requests_with_authorization"] == 0
    await service.aclose()


async def test_a_background_write_still_waiting_is_not_queued_twice(service):
    """Ten calls answered with one 401 record the rejection once (not ten store turns ahead of the
    refresh they wait for); a write that already ran is written again."""
    store = service.store
    connector = await service.add_connector("render", "https://render.example/mcp", "bearer")
    key = CredentialKey(connector.id)
    store.credentials.save_secret(key, "a-key")
    written = []

    def record(key, status):
        written.append(status)
        store.credentials.record_rejection(key, status)

    for _ in range(10):
        service.context.db_later(record, key, 401)
    service.context.db_later(record, key, 403)  # another write: queued
    await service.context.settle()
    assert sorted(written) == [401, 403]
    service.context.db_later(record, key, 401)
    await service.context.settle()
    assert sorted(written) == [401, 401, 403]
    info = store.credentials.info(key)
    assert info.last_401_at and info.last_403_at
