"""#16.8: a per-agent OAuth credential never falls back to another agent's or to the shared one.

Through the services (`Switchboard`) against the real sample OAuth server (official SDK
authorization server, 127.0.0.1), with the real authorization-code flow: two agents authorized and
one not; and a connector switched from shared to per_agent while its shared row still exists.
The agent that never authorized is refused on every path that can send a token (call, sync,
the gateway's resolved call, after the others' tokens expired) and the server never serves it as
somebody else. Each assertion was checked against a deliberately broken credential lookup (another
agent's row, the shared row): the tests failed, then the code was restored.
"""

from __future__ import annotations

import pytest

from core.errors import AuthError
from core.services import Switchboard
from tests.fixtures.services import LOOPBACK, authorize_in_browser


async def authorize(service: Switchboard, server, connector: str, agent: str | None, subject: str) -> None:
    """The real flow, the sample AS approving as `subject`."""
    server.next_subject(subject)
    outcome = await authorize_in_browser(service, connector, agent)
    assert outcome.ok, outcome.message


async def subject_of(service: Switchboard, agent: str | None) -> str:
    result = await service.call_tool("linear", "whoami", {}, agent=agent)
    assert not result.is_error, result.text()
    return result.result["structuredContent"]["subject"]


def served_subjects(server) -> set[str]:
    """Whom the server has served a tool call as since its counters were last reset."""
    return set(server.counters()["tool_calls"])


async def assert_refused(service: Switchboard, server, agent: str) -> None:
    """`agent` has no credential: every path refuses it, and nobody's token is sent on its behalf."""
    server.reset()
    with pytest.raises(AuthError) as refused:
        await service.call_tool("linear", "whoami", {}, agent=agent)
    assert "authoriz" in str(refused.value).lower() or "connect" in str(refused.value).lower(), refused.value
    synced = await service.sync("linear", agent)
    assert not synced.ok
    agent_id = next(a.id for a in await service.list_agents() if a.name == agent)  # the gateway knows ids
    target = (await service.call_targets(agent_id))["linear"]
    with pytest.raises(AuthError):
        await service.call_resolved(target, "whoami", {})
    seen = server.counters()
    assert served_subjects(server) == set(), seen["tool_calls"]
    assert seen["requests_with_authorization"] == 0, [r for r in seen["requests"] if r["authorization"]]


async def test_an_agent_that_never_authorized_is_refused_not_served_another_agents_token(
    service, sdk_oauth_server
) -> None:
    await service.add_connector("linear", sdk_oauth_server.url, "oauth", "per_agent")
    for agent in ("alice", "bob", "carol"):
        await service.add_agent(agent)
    await authorize(service, sdk_oauth_server, "linear", "alice", "alice")
    await authorize(service, sdk_oauth_server, "linear", "bob", "bob")
    assert await subject_of(service, "alice") == "alice"
    assert await subject_of(service, "bob") == "bob"

    await assert_refused(service, sdk_oauth_server, "carol")

    # After every access token expired the refresh path runs: still each agent its own, carol none.
    sdk_oauth_server.expire_tokens()
    assert await subject_of(service, "bob") == "bob"
    assert await subject_of(service, "alice") == "alice"
    await assert_refused(service, sdk_oauth_server, "carol")
    await service.aclose()

    # A fresh process (nothing pooled, nothing cached) reads the same answer from the store.
    later = Switchboard(service.store, policy=LOOPBACK)
    await assert_refused(later, sdk_oauth_server, "carol")
    assert await subject_of(later, "alice") == "alice"
    await later.aclose()


async def test_switching_to_per_agent_never_serves_the_leftover_shared_token(
    service, sdk_oauth_server
) -> None:
    await service.add_connector("linear", sdk_oauth_server.url, "oauth", "shared")
    for agent in ("alice", "carol"):
        await service.add_agent(agent)
    await authorize(service, sdk_oauth_server, "linear", None, "team")
    assert await subject_of(service, None) == "team"
    assert await subject_of(service, "carol") == "team"  # shared: every agent uses the team's

    await service.update_connector("linear", credential_mode="per_agent")
    leftover = [c for c in await service.health() if c.connector == "linear" and c.agent is None]
    assert len(leftover) == 1 and leftover[0].kind == "oauth"  # the shared row is still there
    await authorize(service, sdk_oauth_server, "linear", "alice", "alice")
    assert await subject_of(service, "alice") == "alice"

    await assert_refused(service, sdk_oauth_server, "carol")
    sdk_oauth_server.expire_tokens()  # the refresh path must not reach for the shared row either
    await assert_refused(service, sdk_oauth_server, "carol")
    assert await subject_of(service, "alice") == "alice"
    await service.aclose()
