"""`Switchboard.overview()`: its counts against what the store's other read APIs say, its "needs
attention" items and their fixes, against real sample servers (a real schema change included)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from core.models import AttentionItem
from core.net import NetworkPolicy
from core.services import Switchboard
from core.services.overview import DAY, build_overview
from core.store import OverviewRows

LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost")
DEAD = "http://127.0.0.1:9/mcp"  # the discard port: nothing answers


@pytest.fixture
async def service(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "store.key"))
    board = Switchboard.open(
        str(tmp_path / "store.duckdb"), policy=LOOPBACK, redirect_uri="http://127.0.0.1:9/oauth/callback"
    )
    yield board
    await board.aclose()


async def expected_counts(service: Switchboard) -> dict[str, int]:
    """The overview's numbers, each from another read API than the overview's own query."""
    connectors = Counter(c.status for c in await service.list_connectors())
    health = await service.health()
    agents = [a.name for a in await service.list_agents()]
    reviews = []
    for connector in await service.list_connectors():
        for agent in [None] if connector.credential_mode == "shared" else agents:
            reviews += await service.access().reviews(connector.name, agent)
    audit = [row for row in await service.audit(limit=5000) if row["called_at"] >= time.time() - DAY]
    return {
        **{f"connectors_{s}": connectors[s] for s in ("connected", "needs_auth", "error", "never_synced")},
        "credentials_needing_reauth": sum(c.status != "connected" for c in health),
        "credentials_expiring": 0,  # every credential here renews itself or has no expiry
        "tools": (await service.tool_page(limit=1)).total,
        "tools_drifted": (await service.tool_page(filters={"drift": True}, limit=1)).total,
        "tools_quarantined": sum(r.state == "quarantined" for r in reviews),
        "tools_pending": sum(r.state == "pending" for r in reviews),
        "calls_24h": len(audit),
        "failed_calls_24h": sum(row["status"] != "ok" for row in audit),
    }


def kinds(items: tuple[AttentionItem, ...]) -> set[tuple[str, str, str | None, str]]:
    return {(i.kind, i.connector, i.agent, i.fix) for i in items}


async def test_counts_match_the_store_and_every_problem_has_its_fix(service, plain_server, bearer_server):
    await service.add_agent("alice")
    await service.add_connector("plain", plain_server.url, "none")
    await service.add_connector("tickets", bearer_server.url, "bearer", "per_agent")
    await service.add_connector("oauth", DEAD, "oauth")  # never connected
    await service.add_connector("down", DEAD, "none")
    await service.set_secret("tickets", bearer_server.keys["alice"], agent="alice")
    await service.sync("plain")
    assert not (await service.sync("down")).ok
    await service.call_tool("plain", "echo", {"message": "hi"})
    await service.call_tool("plain", "always_fails", {})
    bearer_server.change_tool("echo")  # a real schema change: a new parameter, new annotations
    await service.sync("tickets", agent="alice")

    overview = await service.overview()

    assert overview.counts() == await expected_counts(service)
    counts = overview.counts()
    assert (counts["tools_quarantined"], counts["calls_24h"], counts["failed_calls_24h"]) == (1, 2, 1)
    assert kinds(overview.attention) == {
        ("not_connected", "oauth", None, "connect"),
        ("sync_failed", "down", None, "sync"),
        ("quarantined", "tickets", "alice", "review"),
        ("failed_calls", "plain", None, "audit"),
    }
    assert [i.severity for i in overview.attention] == sorted(
        (i.severity for i in overview.attention), key=["error", "warning"].index
    )
    assert {(a.connector, a.calls, a.errors) for a in overview.activity} == {("plain", 2, 1)}
    assert {(t.connector, t.agent, t.tools, t.quarantined) for t in overview.tool_lists} == {
        ("plain", None, len(plain_server.tools), 0),
        ("tickets", "alice", len(bearer_server.tools), 1),
    }

    # Approving the change clears the quarantine and its attention item.
    assert await service.access().approve("tickets", ["echo"], "alice") == ["echo"]
    after = await service.overview()
    assert after.tools_quarantined == 0 and after.counts() == await expected_counts(service)
    assert "quarantined" not in {i.kind for i in after.attention}


async def test_a_refused_credential_needs_authorization_once(service, bearer_server):
    await service.add_agent("alice")
    await service.add_connector("tickets", bearer_server.url, "bearer", "per_agent")
    await service.set_secret("tickets", bearer_server.keys["alice"], agent="alice")
    store = service.store
    key = store.credentials.resolve(store.connectors.named("tickets").id, store.agents.named("alice").id)
    store.credentials.set_status(key, "needs_reauth", "the server refused the key (401)")

    overview = await service.overview()

    assert overview.credentials_needing_reauth == 1
    assert kinds(overview.attention) == {("needs_authorization", "tickets", "alice", "enter_key")}
    assert "401" in overview.attention[0].problem


def test_expiring_means_within_a_day_and_unable_to_renew():
    now = 1_000_000.0

    def credential(connector: str, expires_at: float | None, refresh: bool, kind: str = "oauth") -> dict:
        return {
            "connector": connector,
            "auth_type": "oauth" if kind == "oauth" else "client_credentials",
            "agent": None,
            "kind": kind,
            "status": "connected",
            "reason": None,
            "expires_at": expires_at,
            "has_refresh_token": refresh,
        }

    rows = OverviewRows(
        connectors=[],
        credentials=[
            credential("renews", now + 600, refresh=True),
            credential("machine", now + 600, refresh=False, kind="client_credentials"),
            credential("soon", now + 3600, refresh=False),
            credential("expired", now - 60, refresh=False),
            credential("later", now + 2 * DAY, refresh=False),
            credential("static", None, refresh=False),
        ],
        tool_lists=[],
        activity=[],
    )

    overview = build_overview(rows, now)

    assert overview.credentials_expiring == 2
    assert [e.connector for e in overview.expiries] == ["expired", "renews", "machine", "soon", "later"]
    assert {(i.kind, i.connector, i.fix) for i in overview.attention} == {
        ("expiring", "soon", "connect"),
        ("expiring", "expired", "connect"),
    }
    assert "has expired" in next(i.problem for i in overview.attention if i.connector == "expired")
