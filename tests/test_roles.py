"""Roles are enforced inside the services: every public method has a role, a role below it is refused
(and the refusal is logged with who asked), whatever face called."""

from __future__ import annotations

import inspect
import logging

import pytest

from core.access.service import AgentAccess
from core.errors import AccessDenied
from core.net import NetworkPolicy
from core.roles import ACTIONS, LOCAL_ADMIN, ROLES, Principal, Role, allows, enforce_roles
from core.services import Switchboard

VIEWER = Principal("vera", Role.VIEWER)
OPERATOR = Principal("otto", Role.OPERATOR)


@pytest.fixture
async def service(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "store.key"))
    monkeypatch.delenv("SWITCHBOARD_KEY", raising=False)
    board = Switchboard.open(str(tmp_path / "s.duckdb"), policy=NetworkPolicy.allowing("127.0.0.1"))
    yield board
    await board.aclose()


def test_every_public_method_of_the_services_has_a_role():
    for cls in (Switchboard, AgentAccess):
        public = [n for n, m in vars(cls).items() if not n.startswith("_") and inspect.isfunction(m)]
        assert public and all(n in ACTIONS for n in public), cls


def test_a_method_without_a_role_is_refused_at_import():
    class Services:
        async def erase_everything(self) -> None: ...

    with pytest.raises(TypeError, match="erase_everything has no role"):
        enforce_roles(Services)


def test_each_role_allows_what_those_below_it_do():
    for action in ACTIONS:
        allowed = [allows(role, action) for role in ROLES]
        assert allowed == sorted(allowed), action  # False... then True...
        assert allowed[-1], action  # an admin may do everything
    assert not allows(Role.ADMIN, "no_such_action")
    assert allows(Role.VIEWER, "audit") and not allows(Role.VIEWER, "call_tool")
    assert allows(Role.OPERATOR, "call_tool") and not allows(Role.OPERATOR, "add_connector")


async def test_a_viewer_reads_but_is_refused_a_tool_call_and_the_refusal_is_logged(
    service, plain_server, caplog
):
    await service.add_connector("plain", plain_server.url, "none")
    viewer = service.acting_as(VIEWER)
    assert [c.name for c in await viewer.list_connectors()] == ["plain"]
    calls_before = plain_server.counters().get("tools/call", 0)
    with (
        caplog.at_level(logging.INFO, logger="switchboard.actions"),
        pytest.raises(AccessDenied, match="a viewer may not call tool") as refused,
    ):
        await viewer.call_tool("plain", "greet", {"name": "x"})
    assert refused.value.hint == "ask an admin; it needs the operator role"
    assert plain_server.counters().get("tools/call", 0) == calls_before  # nothing reached the server
    assert await service.audit() == []  # no call happened, so no call row
    assert any(
        r.levelno == logging.WARNING and "vera (viewer) call_tool plain: refused" in r.getMessage()
        for r in caplog.records
    )
    with pytest.raises(AccessDenied):
        await viewer.sync("plain")
    with pytest.raises(AccessDenied):
        viewer.sync_many()  # refused before an iterator exists


async def test_an_operator_calls_and_syncs_but_may_not_change_connectors(service, plain_server):
    await service.add_connector("plain", plain_server.url, "none")
    operator = service.acting_as(OPERATOR)
    assert (await operator.sync("plain")).ok
    outcome = await operator.call_tool("plain", "greet", {"name": "Ada"})
    assert not outcome.is_error
    assert [row["operator"] for row in await service.audit()] == ["otto"]
    for attempt in (
        operator.add_connector("other", plain_server.url, "none"),
        operator.remove_connector("plain"),
        operator.add_agent("bot"),
        operator.rotate_key(),
    ):
        with pytest.raises(AccessDenied, match="an operator may not"):
            await attempt
    assert [c.name for c in await service.list_connectors()] == ["plain"]


async def test_agent_access_is_checked_the_same_way(service):
    await service.add_agent("bot")
    viewer = AgentAccess(service.store, principal=VIEWER)
    assert await viewer.list_tokens("bot") == []
    with pytest.raises(AccessDenied):
        await viewer.create_token("bot")
    admin = AgentAccess(service.store, principal=LOCAL_ADMIN)
    assert (await admin.create_token("bot")).agent == "bot"


async def test_the_services_hand_out_agent_access_acting_for_the_same_principal(service):
    await service.add_agent("bot")
    access = service.acting_as(OPERATOR).access()
    assert access.principal == OPERATOR
    assert await access.policy("bot") is not None  # reads: a viewer's
    for attempt in (access.create_token("bot"), access.approve("nothing-here")):
        with pytest.raises(AccessDenied, match="an operator may not"):
            await attempt
    assert await service.access().list_tokens("bot") == []
