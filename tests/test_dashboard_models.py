"""The dashboard's param models against the real services, a temporary store and real sample servers.

No browser: where a browser would follow the authorization server's redirect, the test fetches the
authorization URL itself (the sample authorization server approves at once) and hands the callback
parameters to the same function the `/oauth/callback` route runs.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from core.errors import ConfigurationError, SwitchboardError
from core.public_url import PUBLIC_URL_ENV, dashboard_redirect_uri
from core.services import Switchboard
from dashboard import demo, flash, plugins
from dashboard.models import (
    AgentCredentials,
    AgentDirectory,
    AuditLog,
    AuthTrace,
    ConnectorForm,
    ConnectorsIndex,
    CredentialHealth,
    Playground,
    ToolInventory,
)
from dashboard.models.access import AgentGateway
from dashboard.models.agents import CONNECTED, NOT_CONNECTED
from dashboard.models.overview import Fix, OverviewModel
from dashboard.models.review import ToolReviews, definition_diff
from dashboard.views.schema_form import form_for

PUBLIC_URL = "http://127.0.0.1:5999"  # only the redirect_uri's origin: nothing listens there


@pytest.fixture
async def services(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_STORE", str(tmp_path / "store.duckdb"))
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "store.key"))
    monkeypatch.setenv("SWITCHBOARD_ALLOW_HOSTS", "127.0.0.1,localhost")
    monkeypatch.setenv(PUBLIC_URL_ENV, PUBLIC_URL)
    service = Switchboard.open(str(tmp_path / "store.duckdb"))
    yield service
    await service.aclose()


async def approve_like_a_browser(authorization_url: str) -> dict[str, list[bytes]]:
    """Visit the authorization URL; the sample AS approves and redirects to our callback at once."""
    async with httpx2.AsyncClient(trust_env=False) as client:
        response = await client.get(authorization_url)
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"]
    assert location.startswith(dashboard_redirect_uri())
    return {key: [value.encode()] for key, value in parse_qsl(urlsplit(location).query)}


async def flash_of(services, location: str) -> flash.Flash:
    key = dict(parse_qsl(urlsplit(location).query))[flash.FLASH_PARAM]
    arrival = await flash.take(services.store, key)
    assert arrival is not None
    return arrival


async def add(services, name: str, url: str, auth_type: str, mode: str = "shared", **fields) -> ConnectorForm:
    form = ConnectorForm(
        service=services, connector_name=name, url=url, auth_type=auth_type, credential_mode=mode, **fields
    )
    await form.submit()
    return form


async def test_bearer_connector_with_a_shared_key_connects_and_the_form_forgets_the_key(
    services, bearer_server
):
    form = await add(
        services, "render", bearer_server.url, "bearer", shared_secret=bearer_server.keys["alice"]
    )
    assert form.shared_secret == "" and form.client_secret == ""
    assert form.stored.has_shared_credential and form.credential.status == "connected"
    index = ConnectorsIndex(service=services)
    await index.refresh()
    row = index.frame().set_index("name").loc["render"]
    assert row["status"] == "connected" and row["tools"] == len(bearer_server.tools)


async def test_api_key_connector_sends_its_key_in_the_named_header(services, api_key_server):
    form = await add(
        services,
        "keyed",
        api_key_server.url,
        "api_key_header",
        header_name=api_key_server.header,
        shared_secret=api_key_server.keys["bob"],
    )
    assert form.stored.header_name == api_key_server.header
    assert form.stored.tool_count == len(api_key_server.tools)


async def test_a_refused_key_is_an_error_and_the_form_keeps_editing_the_connector(services, bearer_server):
    form = ConnectorForm(
        service=services,
        connector_name="render",
        url=bearer_server.url,
        auth_type="bearer",
        shared_secret="not-a-valid-key",
    )
    with pytest.raises(SwitchboardError):
        await form.submit()
    assert form.editing == "render" and form.shared_secret == ""
    form.shared_secret = bearer_server.keys["alice"]
    connector = await form.submit()
    assert connector.has_shared_credential


async def test_invalid_input_is_refused_before_reaching_the_services(services):
    form = ConnectorForm(service=services, connector_name="x", url="not a url", auth_type="oauth")
    with pytest.raises(ConfigurationError, match="https://"):
        await form.submit()
    assert set(form.errors) == {"url"}
    assert await services.list_connectors() == []


async def test_shared_oauth_connect_goes_through_the_authorization_server_and_back(
    services, sdk_oauth_server
):
    await add(services, "linear", sdk_oauth_server.url, "oauth")
    index = ConnectorsIndex(service=services)
    await index.refresh()
    action = await index.connect("linear")
    assert action.outcome is None and action.authorization_url
    params = await approve_like_a_browser(action.authorization_url)

    location = await plugins.finish_authorization(services, params)

    assert location.startswith("/connectors?flash=")
    arrival = await flash_of(services, location)
    assert arrival.ok, arrival.message
    assert arrival.connector == "linear"
    await index.refresh()
    index.selected = "linear"
    details = index.details()
    assert details["status"] == "connected" and details["authorization server"] != "—"
    assert details["registration"] != "—"
    inventory = ToolInventory(service=services, connector="linear")
    await inventory.load()
    assert inventory.total == len(sdk_oauth_server.tools)

    trace = AuthTrace(service=services, connector="linear")
    steps = await trace.load()
    assert steps, "the auth trace records the discovery, registration and token steps"
    assert params["code"][0].decode() not in json.dumps(steps, default=str)


async def test_a_replayed_callback_returns_to_the_connectors_page_with_an_error(services, sdk_oauth_server):
    await add(services, "linear", sdk_oauth_server.url, "oauth")
    index = ConnectorsIndex(service=services)
    await index.refresh()
    params = await approve_like_a_browser((await index.connect("linear")).authorization_url)
    assert (await flash_of(services, await plugins.finish_authorization(services, params))).ok

    location = await plugins.finish_authorization(services, params)

    assert urlsplit(location).path in ("/", "/connectors")  # both serve the connectors page
    assert not (await flash_of(services, location)).ok


async def test_per_agent_oauth_started_on_an_agent_page_returns_to_it(services, sdk_oauth_server):
    await AgentDirectory(service=services).create("alice")
    await add(services, "granola", sdk_oauth_server.url, "oauth", mode="per_agent")
    page = AgentCredentials(service=services, agent="alice")
    await page.refresh()
    assert page.row("granola").state == NOT_CONNECTED

    action = await page.connect("granola")
    location = await plugins.finish_authorization(
        services, await approve_like_a_browser(action.authorization_url)
    )

    assert location.startswith("/agent?name=alice&flash=")
    assert (await flash_of(services, location)).ok
    await page.refresh()
    assert page.row("granola").state == CONNECTED
    index = ConnectorsIndex(service=services)
    await index.refresh()
    with pytest.raises(ConfigurationError, match="agent"):
        await index.connect("granola")


async def test_per_agent_keys_move_an_agent_through_its_states(services, bearer_server):
    directory = AgentDirectory(service=services)
    await directory.create("alice", "support")
    await directory.create("bob")
    assert list(directory.frame()["name"]) == ["alice", "bob"]
    await add(services, "render", bearer_server.url, "bearer", mode="per_agent")
    await add(services, "public", bearer_server.url, "bearer", shared_secret=bearer_server.keys["bob"])
    page = AgentCredentials(service=services, agent="alice")
    await page.refresh()
    assert page.row("render").state == NOT_CONNECTED and page.row("render").takes_key
    assert [r.connector for r in page.shared] == ["public"]

    await page.set_key("render", bearer_server.keys["alice"])
    assert page.row("render").state == CONNECTED
    assert page.row("render").credential.fingerprint

    result = await page.sync("render")
    assert result.ok and result.tools == len(bearer_server.tools)
    await page.disconnect("render")
    assert page.row("render").state == NOT_CONNECTED


async def test_sync_all_covers_shared_connectors_and_each_agents_own_credentials(
    services, plain_server, bearer_server
):
    await add(services, "plain", plain_server.url, "none")
    await add(services, "render", bearer_server.url, "bearer", mode="per_agent")
    await add(services, "gone", "http://127.0.0.1:9/mcp", "none")  # nothing listens on the discard port
    directory = AgentDirectory(service=services)
    for agent in ("alice", "bob", "carol"):  # carol has no key: nothing of hers to sync
        await directory.create(agent)
    for agent in ("alice", "bob"):
        await AgentCredentials(service=services, agent=agent).set_key("render", bearer_server.keys[agent])
    index = ConnectorsIndex(service=services)

    results = await index.sync_all()

    assert index.sync_total == 4 and not index.syncing
    outcomes = {(r.connector, r.agent): r.ok for r in results}
    assert outcomes == {
        ("plain", None): True,
        ("gone", None): False,
        ("render", "alice"): True,
        ("render", "bob"): True,
    }
    assert next(r for r in results if r.connector == "gone").error
    assert index.frame().set_index("name").loc["gone", "status"] == "error"
    assert sorted(r.agent for r in await index.sync("render")) == ["alice", "bob"]  # a row's Sync
    assert [(r.connector, r.ok) for r in await index.sync("plain")] == [("plain", True)]


async def test_sync_all_lists_every_sync_when_it_starts_and_fills_each_in_as_it_finishes(
    services, plain_server, bearer_server
):
    await add(services, "plain", plain_server.url, "none")
    await add(services, "gone", "http://127.0.0.1:9/mcp", "none")
    await add(services, "render", bearer_server.url, "bearer", mode="per_agent")
    await AgentDirectory(service=services).create("alice")
    await AgentCredentials(service=services, agent="alice").set_key("render", bearer_server.keys["alice"])
    index = ConnectorsIndex(service=services)
    snapshots = []
    index.param.watch(lambda _e: snapshots.append(index.sync_progress()), ["sync_plan", "sync_results"])

    await index.sync_all()

    planned = snapshots[0]  # as soon as the syncs are planned, before any finished
    assert sorted(zip(planned["connector"], planned["agent"], strict=True)) == [
        ("gone", "(shared)"),
        ("plain", "(shared)"),
        ("render", "alice"),
    ]
    assert set(planned["state"]) == {"waiting"}
    assert [sum(frame["state"] != "waiting") for frame in snapshots] == [0, 1, 2, 3]
    final = snapshots[-1].set_index("connector")
    assert final.loc["plain", "state"] == "synced" and final.loc["plain", "tools"] == len(plain_server.tools)
    assert final.loc["gone", "state"] == "failed" and final.loc["gone", "error"]


async def test_overview_shows_every_count_and_each_fix_leads_to_the_fix(
    services, sdk_oauth_server, plain_server
):
    await add(services, "plain", plain_server.url, "none")
    await add(services, "linear", sdk_oauth_server.url, "oauth")  # never connected
    await add(services, "gone", "http://127.0.0.1:9/mcp", "none")
    await AgentDirectory(service=services).create("alice")
    await add(services, "render", "http://127.0.0.1:9/mcp", "bearer", mode="per_agent")
    await ConnectorsIndex(service=services).sync_all()
    await services.call_tool("plain", "always_fails", {})
    model = OverviewModel(service=services)

    overview = await model.refresh()

    tiles = {t.key: t for group in model.tiles().values() for t in group}
    assert {k: t.value for k, t in tiles.items()} == overview.counts()
    assert (tiles["connectors_error"].tone, tiles["failed_calls_24h"].tone) == ("bad", "bad")
    assert tiles["credentials_needing_reauth"].tone == "ok"  # nothing counted: the all-clear colour
    items = {(i.kind, i.connector): i for i in overview.attention}
    assert model.fix(items["not_connected", "linear"]) == Fix("Connect linear")
    assert model.fix(items["sync_failed", "gone"]) == Fix("Sync gone")
    assert model.fix(items["failed_calls", "plain"]) == Fix(
        "Open the audit log of plain", "/audit?connector=plain"
    )
    assert list(model.activity_frame()["errors"]) == [1]
    assert list(model.tools_frame()["connector"]) == ["plain"]

    # One click on "Connect linear": the authorization server, then back to the overview.
    action = await model.connect(items["not_connected", "linear"])
    location = await plugins.finish_authorization(
        services, await approve_like_a_browser(action.authorization_url)
    )
    assert location.startswith("/?flash=") and (await flash_of(services, location)).ok
    # One click on "Sync gone": it is still down, so the item stays, with the sync's error.
    assert [r.ok for r in await model.sync(items["sync_failed", "gone"])] == [False]
    assert {(i.kind, i.connector) for i in model.overview.attention} == {
        ("sync_failed", "gone"),
        ("failed_calls", "plain"),
    }
    assert model.tiles()["Connectors"][0].value == overview.connectors["connected"] + 1


async def test_tool_review_shows_a_schema_change_side_by_side_and_approval_releases_it(
    services, bearer_server
):
    await AgentDirectory(service=services).create("alice")
    await add(services, "render", bearer_server.url, "bearer", mode="per_agent")
    page = AgentCredentials(service=services, agent="alice")
    await page.set_key("render", bearer_server.keys["alice"])
    bearer_server.change_tool("echo")
    await page.sync("render")
    reviews = ToolReviews(service=services)

    assert [(t.connector, t.agent, t.quarantined) for t in await reviews.load_queue()] == [
        ("render", "alice", 1)
    ]
    await reviews.choose("render", "alice")

    assert [r.name for r in reviews.reviews] == ["echo"] and reviews.tool == "echo"
    sections = {s.title: s for s in reviews.diff()}
    assert list(sections) == ["Description", "Input schema", "Annotations"]
    assert all(s.changed for s in sections.values())
    added = [line.after for line in sections["Input schema"].lines if line.kind == "added"]
    assert any('"repeat"' in line for line in added)
    assert any('"maximum": 5' in line for line in added)
    description = sections["Description"].lines
    assert [(d.before, d.after, d.kind) for d in description] == [
        ("Echo the message back unchanged.", "Echo the message back, repeated.", "changed")
    ]
    assert all(line.before is None for line in sections["Annotations"].lines)  # it had none

    assert await reviews.approve(["echo"]) == ["echo"]
    assert reviews.queue == [] and reviews.reviews == []
    assert {r.state for r in await services.access().reviews("render", "alice")} == {"approved"}


def test_a_diff_pairs_changed_lines_and_keeps_unchanged_parts():
    before = {"description": "a\nb", "inputSchema": {"type": "object"}, "title": "T"}
    after = {"description": "a\nc\nd", "inputSchema": {"type": "object"}, "title": "T"}

    sections = definition_diff(before, after)

    assert [(s.title, s.changed) for s in sections] == [
        ("Description", True),
        ("Input schema", False),
        ("Annotations", False),
    ]
    assert [(d.before, d.after, d.kind) for d in sections[0].lines] == [
        ("a", "a", "same"),
        ("b", "c", "changed"),
        (None, "d", "added"),
    ]


async def test_agent_gateway_tokens_are_shown_once_and_policy_rules_and_limits_apply(services):
    await AgentDirectory(service=services).create("alice")
    gateway = AgentGateway(service=services, agent="alice")

    issued = await gateway.create_token("laptop", expires_in_days=30)

    assert issued.token.startswith("swb_") and issued.token not in repr(issued)
    frame = gateway.token_frame()
    assert list(frame["label"]) == ["laptop"] and list(frame["status"]) == ["active"]
    assert issued.token not in frame.to_csv()  # listed without the secret
    await gateway.revoke_token(issued.id)
    assert list(gateway.token_frame()["status"]) == ["revoked"]

    await gateway.add_rule("deny", annotation="destructiveHint")
    await gateway.add_rule("allow", connector="render*", tool=" ")
    rules = gateway.rule_frame()
    assert rules.to_dict("records") == [
        {"n": 1, "effect": "deny", "connector": "*", "tool": "*", "annotation": "destructiveHint"},
        {"n": 2, "effect": "allow", "connector": "render*", "tool": "*", "annotation": "—"},
    ]
    await gateway.remove_rule(1)
    assert list(gateway.rule_frame()["effect"]) == ["allow"]
    with pytest.raises(ConfigurationError):
        await gateway.add_rule("maybe")
    await gateway.set_limits(120, None)
    assert gateway.limits() == {"requests per minute": "120", "concurrent calls": "the gateway's default"}
    policy = await services.access().policy("alice")
    assert (policy.requests_per_minute, policy.max_concurrent_calls) == (120, None)


async def test_tool_inventory_reads_one_page_at_a_time_from_the_store(services, paginated_server):
    await add(services, "pages", paginated_server.url, "none")
    await services.sync("pages")
    inventory = ToolInventory(service=services, page_size=10)
    await inventory.load()
    total = len(paginated_server.tools)
    assert inventory.total == total and len(inventory.rows) == 10
    assert list(inventory.rows.index) == list(range(10))

    inventory.query(page=2)
    await inventory.load()
    assert list(inventory.rows.index) == list(range(10, 20))

    inventory.query(search="filler_07")
    await inventory.load()
    assert inventory.page == 1 and list(inventory.rows["name"]) == ["filler_07"]

    inventory.query(search="filler_1", sort="name", descending=True)
    await inventory.load()
    names = list(inventory.rows["name"])
    assert len(names) > 1 and all("filler_1" in n for n in names) and names == sorted(names, reverse=True)

    inventory.query(search="", filters={"read_only": True})
    await inventory.load()
    assert list(inventory.rows["name"]) == ["list_items"] and inventory.rows["read_only"].all()

    definition = await inventory.open("pages", "filler_07")
    assert definition["name"] == "filler_07" and "inputSchema" in definition


async def test_playground_calls_a_tool_through_its_generated_form_and_the_call_is_audited(
    services, plain_server
):
    await add(services, "plain", plain_server.url, "none")
    await services.sync("plain")
    await AgentDirectory(service=services).create("alice")
    playground = Playground(service=services)
    await playground.load_choices()
    assert playground.connector_names == ["plain"] and playground.agent_names == ["alice"]
    assert "greet" in await playground.choose(connector="plain", agent="alice")
    await playground.choose_tool("greet")
    form = form_for(playground.fields)
    form.children["name"].widget.value = "Ada"
    playground.arguments = form.value()

    outcome = await playground.call()

    assert not outcome.is_error and outcome.text() == "Hello, Ada!"
    assert [p.text for p in playground.result_parts() if p.kind == "text"] == ["Hello, Ada!"]
    log = AuditLog(service=services)
    entries = await log.refresh()
    assert any("greet" in json.dumps(e, default=str) for e in entries)
    assert not log.frame().empty


async def test_playground_renders_structured_content_images_and_tool_errors(services, plain_server):
    await add(services, "plain", plain_server.url, "none")
    await services.sync("plain")
    playground = Playground(service=services)
    await playground.choose(connector="plain", agent=None)

    await playground.choose_tool("add")
    playground.param.update(raw_mode=True, raw_json='{"a": 2, "b": 3}')
    await playground.call()
    assert [p.value for p in playground.result_parts() if p.kind == "json"] == [{"sum": 5}]

    await playground.choose_tool("tiny_image")
    playground.raw_json = "{}"
    await playground.call()
    assert [p.mime_type for p in playground.result_parts()] == ["image/png"]

    await playground.choose_tool("always_fails")
    playground.raw_json = "{}"
    assert (await playground.call()).is_error

    playground.raw_json = "{not json"
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        await playground.call()


async def test_credential_health_lists_stored_credentials_without_secrets(services, bearer_server):
    key = bearer_server.keys["alice"]
    await add(services, "render", bearer_server.url, "bearer", shared_secret=key)
    health = CredentialHealth(service=services)
    credentials = await health.refresh()
    assert [(c.connector, c.status) for c in credentials] == [("render", "connected")]
    frame = health.frame()
    assert frame.loc[0, "agent"] == "(shared)" and key not in frame.to_csv()


async def test_editing_a_connector_changes_only_what_was_edited(services, bearer_server):
    form = await add(
        services, "render", bearer_server.url, "bearer", shared_secret=bearer_server.keys["alice"]
    )
    form.load(form.stored)
    assert form.editing == "render" and form.shared_secret == ""
    form.credential_mode = "per_agent"
    edited = await form.submit()
    assert edited.credential_mode == "per_agent" and edited.url == bearer_server.url
    index = ConnectorsIndex(service=services)
    await index.refresh()
    await index.remove("render")
    assert index.connectors == []


async def test_the_demo_registers_its_servers_and_can_run_again_on_the_same_store(
    services, tmp_path, sdk_oauth_server, bearer_server
):
    for _ in range(2):
        await demo.register(
            str(tmp_path / "store.duckdb"),
            oauth_url=sdk_oauth_server.url,
            bearer_url=bearer_server.url,
            bearer_keys=bearer_server.keys,
        )
    assert [a.name for a in await services.list_agents()] == ["alice", "bob"]
    connectors = {c.name: c.credential_mode for c in await services.list_connectors()}
    assert connectors == {
        "demo-oauth": "shared",
        "demo-oauth-per-agent": "per_agent",
        "demo-bearer": "per_agent",
    }
    page = AgentCredentials(service=services, agent="bob")
    await page.refresh()
    assert page.row("demo-bearer").state == CONNECTED
    assert page.row("demo-oauth-per-agent").state == NOT_CONNECTED
    outcome = await Playground(service=services, connector="demo-bearer", tool="whoami", agent="bob").call()
    assert json.loads(outcome.text())["subject"] == "bob"
