"""Scopes (#17.4): per credential, the scopes granted next to what the server's metadata lists and
what its last 403 insufficient_scope challenge asked for; a step-up authorization where they differ.
Against the sample OAuth server, whose `admin_action` tool challenges for scope `admin`."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from core.errors import ConfigurationError, InsufficientScope
from core.net import NetworkPolicy
from core.services import Switchboard

LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost")


@pytest.fixture
def service(store_location, tmp_path, monkeypatch):
    """On each engine (see tests/fixtures/postgres.py)."""
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "store.key"))
    monkeypatch.delenv("SWITCHBOARD_KEY", raising=False)
    return Switchboard.open(
        store_location,
        policy=LOOPBACK,
        redirect_uri="http://127.0.0.1:9/oauth/callback",
    )


async def _browser(service: Switchboard, url: str) -> None:
    async with httpx2.AsyncClient() as browser:
        answer = await browser.get(url)
    assert answer.status_code in (302, 303, 307), answer.status_code
    query = dict(parse_qsl(urlsplit(answer.headers["location"]).query))
    done = await service.complete_authorization(query)
    assert done.ok, done.message


async def test_a_scope_challenge_is_shown_and_a_step_up_grants_it(service, sdk_oauth_server):
    await service.add_connector("linear", sdk_oauth_server.url, "oauth", "per_agent")
    await service.add_agent("ops-bot")
    await _browser(service, await service.start_authorization("linear", "ops-bot"))
    [before] = await service.credential_scopes("linear", "ops-bot")
    assert before.granted and "admin" not in before.granted
    assert before.challenged == () and before.step_up == ()
    # The sample's protected-resource metadata lists only the scope every request needs.
    assert before.supported == ("read",) and before.not_granted == ()
    with pytest.raises(ConfigurationError, match="nothing to step up to"):
        await service.step_up("linear", "ops-bot")

    with pytest.raises(InsufficientScope):
        await service.call_tool("linear", "admin_action", {"action": "rotate"}, agent="ops-bot")
    await service.aclose()  # the challenge is recorded in the background: let it land

    [after] = await service.credential_scopes("linear", "ops-bot")
    assert after.challenged == ("admin",) and after.missing == ("admin",) and after.challenged_at
    assert after.step_up == (*before.granted, "admin")
    url = await service.step_up("linear", "ops-bot", return_to="/health")
    assert "admin" in dict(parse_qsl(urlsplit(url).query))["scope"].split()
    await _browser(service, url)

    [stepped] = await service.credential_scopes("linear", "ops-bot")
    assert "admin" in stepped.granted and stepped.missing == () and stepped.step_up == ()
    outcome = await service.call_tool("linear", "admin_action", {"action": "rotate"}, agent="ops-bot")
    assert not outcome.is_error
    await service.aclose()


async def test_static_credentials_have_no_scopes_to_show(service, bearer_server):
    await service.add_connector("render", bearer_server.url, "bearer")
    await service.set_secret("render", bearer_server.keys["alice"])
    assert await service.credential_scopes() == []
    await service.aclose()
