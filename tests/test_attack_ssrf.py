"""S-05 end to end: SSRF through the services' OAuth discovery, registration, token and MCP paths.

The fixture origin (a raw RS + AS on 127.0.0.1) is the only allowed host. A trap listener on
127.0.0.2 must receive zero connections whatever the hostile documents, challenges and redirects
name: every spelling of 127.0.0.2, the internal ranges, a name resolving there, a 302 towards it.
A control test allows 127.0.0.2 and shows the same flows would reach the trap.

Safety net: no test here may ever open a connection outside 127.0.0.0/8 (internal ranges are
watched on this network), so `create_connection` is wrapped to refuse and record such attempts; a
recorded attempt fails the test as a policy bypass.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from core.errors import NetworkPolicyError, SwitchboardError
from core.net import NetworkPolicy, aclose_shared_clients
from core.net.policy import ALLOW_HOSTS_ENV
from core.services import Switchboard
from tests.test_attack_kit import RawHttpServer, Reply, Request, Trap, trap_urls

INTERNAL = [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "https://10.0.0.1/",
    "https://100.64.0.1/",
    "https://[fc00::1]/",
    "https://[fe80::1]/",
    "https://[::ffff:10.0.0.1]/",
    "https://0.0.0.0/",
]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse (and record) any connection attempt outside 127.0.0.0/8 and ::1."""
    attempts: list[str] = []
    original = asyncio.base_events.BaseEventLoop.create_connection

    async def guarded(self, protocol_factory, host=None, port=None, *args: Any, **kwargs: Any):
        try:
            address = ipaddress.ip_address(str(host).strip("[]"))
            mapped = getattr(address, "ipv4_mapped", None) or address
            loopback = mapped.is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            attempts.append(f"{host}:{port}")
            raise OSError(f"test safety net: connection to {host} refused")
        return await original(self, protocol_factory, host, port, *args, **kwargs)

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "create_connection", guarded)
    yield attempts
    assert attempts == [], f"policy bypass: connection attempts to {attempts}"


@dataclass
class World:
    rs: RawHttpServer
    trap: Trap
    service: Switchboard
    prm: dict[str, Any]
    metadata: dict[str, Any]
    challenge: str

    @property
    def origin(self) -> str:
        return self.rs.origin

    @property
    def trap_origin(self) -> str:
        return f"http://127.0.0.2:{self.trap.port}"


def _oauth_routes(world: World) -> dict:
    def mcp(request: Request) -> Reply:
        return Reply(
            401,
            {"www-authenticate": world.challenge, "content-type": "application/json"},
            b'{"error":"invalid_token"}',
        )

    def register(request: Request) -> Reply:
        body = request.json()
        return Reply.json(
            {
                "client_id": "client-1",
                "redirect_uris": body["redirect_uris"],
                "token_endpoint_auth_method": "none",
            },
            status=201,
        )

    return {
        ("POST", "/mcp"): mcp,
        ("GET", "/.well-known/oauth-protected-resource/mcp"): lambda r: Reply.json(world.prm),
        ("GET", "/.well-known/oauth-authorization-server"): lambda r: Reply.json(world.metadata),
        ("POST", "/register"): register,
        ("POST", "/token"): lambda r: Reply.json(
            {"access_token": "at", "token_type": "Bearer", "expires_in": 60}
        ),
    }


async def _make_world(tmp_path, monkeypatch, policy: NetworkPolicy | None) -> World:
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "keys" / "store.key"))
    monkeypatch.delenv("SWITCHBOARD_KEY", raising=False)
    rs = await RawHttpServer().start("127.0.0.1")
    trap = await Trap().start("127.0.0.2", rs.port)  # the same port: only the address differs
    origin = rs.origin
    service = Switchboard.open(
        str(tmp_path / "data" / "s.duckdb"), policy=policy, redirect_uri="http://127.0.0.1:9/oauth/callback"
    )
    world = World(
        rs,
        trap,
        service,
        prm={"resource": origin + "/mcp", "authorization_servers": [origin]},
        metadata={
            "issuer": origin,
            "authorization_endpoint": origin + "/authorize",
            "token_endpoint": origin + "/token",
            "registration_endpoint": origin + "/register",
            "revocation_endpoint": origin + "/revoke",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
        },
        challenge=f'Bearer resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp"',
    )
    rs.routes.update(_oauth_routes(world))
    await service.add_connector("target", origin + "/mcp", "oauth")
    return world


@pytest.fixture
async def world(tmp_path, monkeypatch) -> AsyncIterator[World]:
    w = await _make_world(tmp_path, monkeypatch, NetworkPolicy.allowing("127.0.0.1"))
    yield w
    await w.service.aclose()
    await w.rs.stop()
    await w.trap.stop()
    await aclose_shared_clients()


def _refused(exc: SwitchboardError) -> None:
    """A refusal by the network policy names the setting that would allow the host (or, for plain
    http off loopback, that https is required)."""
    if isinstance(exc, NetworkPolicyError):
        assert ALLOW_HOSTS_ENV in str(exc) or "https is required" in str(exc), str(exc)


async def _connect_fails(world: World) -> SwitchboardError:
    with pytest.raises(SwitchboardError) as info:
        await world.service.connect("target")
    _refused(info.value)
    return info.value


# --- discovery --------------------------------------------------------------------------------------------


async def test_resource_metadata_in_the_challenge_never_reaches_the_trap(world: World) -> None:
    errors = []
    for url in trap_urls(world.trap.port, "/.well-known/oauth-protected-resource") + INTERNAL:
        world.challenge = f'Bearer resource_metadata="{url}"'
        errors.append(await _connect_fails(world))
    assert world.trap.connections == 0
    # The policy (not only the https rule) refused the https spellings, and the message says how to allow.
    assert sum(isinstance(e, NetworkPolicyError) for e in errors) >= 5
    # Nothing was registered or stored for the connector.
    assert world.rs.to("/register") == []
    conn = await world.service.get_connector("target")
    assert conn.status == "error" and await world.service.health() == []


async def test_authorization_servers_in_the_prm_never_reach_the_trap(world: World) -> None:
    for url in trap_urls(world.trap.port, "") + [u.rstrip("/") for u in INTERNAL if "meta-data" not in u]:
        world.prm["authorization_servers"] = [url]
        await _connect_fails(world)
    assert world.trap.connections == 0
    assert world.rs.to("/.well-known/oauth-authorization-server") == []


async def test_registration_endpoint_pointing_at_the_trap(world: World) -> None:
    for url in trap_urls(world.trap.port, "/register") + INTERNAL:
        world.metadata["registration_endpoint"] = url
        await _connect_fails(world)
    assert world.trap.connections == 0
    assert world.rs.to("/register") == []


async def test_token_endpoint_pointing_at_the_trap_fails_the_callback(world: World) -> None:
    for url in [
        f"https://127.0.0.2:{world.trap.port}/token",
        f"http://127.0.0.2:{world.trap.port}/token",
        f"https://2130706434:{world.trap.port}/token",
        f"https://[::ffff:127.0.0.2]:{world.trap.port}/token",
        "https://169.254.169.254/token",
        "https://10.0.0.1/token",
    ]:
        world.metadata["token_endpoint"] = url
        authorization_url = await world.service.start_authorization("target")
        state = dict(parse_qsl(urlsplit(authorization_url).query))["state"]
        outcome = await world.service.complete_authorization({"state": state, "code": "code-1"})
        assert not outcome.ok
        assert ALLOW_HOSTS_ENV in outcome.message or "https is required" in outcome.message, outcome.message
    assert world.trap.connections == 0
    assert world.rs.to("/token") == []
    assert await world.service.health() == []  # no credential was stored


async def test_redirects_towards_the_trap_are_never_followed(world: World) -> None:
    trap = f"http://127.0.0.2:{world.trap.port}"
    world.rs.routes[("GET", "/.well-known/oauth-protected-resource/mcp")] = lambda r: Reply.redirect(
        trap + "/prm"
    )
    await _connect_fails(world)
    # The MCP endpoint itself redirecting: the sync fails, the redirect is not followed.
    world.rs.routes[("GET", "/.well-known/oauth-protected-resource/mcp")] = lambda r: Reply.json(world.prm)
    world.rs.routes[("POST", "/register")] = lambda r: Reply.redirect(trap + "/register", 307)
    await _connect_fails(world)
    world.rs.routes[("POST", "/register")] = lambda r: Reply.json(
        {"client_id": "c", "redirect_uris": r.json()["redirect_uris"], "token_endpoint_auth_method": "none"},
        201,
    )
    world.rs.routes[("POST", "/token")] = lambda r: Reply.redirect(trap + "/token", 307)
    authorization_url = await world.service.start_authorization("target")
    state = dict(parse_qsl(urlsplit(authorization_url).query))["state"]
    outcome = await world.service.complete_authorization({"state": state, "code": "code-1"})
    assert not outcome.ok
    await world.service.add_connector("plain", world.origin + "/plain", "none")
    world.rs.routes[("POST", "/plain")] = lambda r: Reply.redirect(trap + "/mcp", 307)
    result = await world.service.sync("plain")
    assert not result.ok
    assert world.trap.connections == 0


async def test_revocation_endpoint_pointing_at_the_trap(world: World) -> None:
    world.metadata["revocation_endpoint"] = f"https://127.0.0.2:{world.trap.port}/revoke"
    authorization_url = await world.service.start_authorization("target")
    state = dict(parse_qsl(urlsplit(authorization_url).query))["state"]
    outcome = await world.service.complete_authorization({"state": state, "code": "code-1"})
    assert outcome.message  # connected (the sync fails: the RS keeps answering 401) or not; either way:
    await world.service.disconnect("target")
    assert world.trap.connections == 0
    assert await world.service.health() == []


# --- the connector URL itself -------------------------------------------------------------------------------


async def test_connector_urls_at_the_trap_are_refused(world: World) -> None:
    for index, url in enumerate(trap_urls(world.trap.port, "/mcp") + [u + "mcp" for u in INTERNAL]):
        name = f"c{index}"
        try:
            await world.service.add_connector(name, url, "none")
        except SwitchboardError as exc:
            _refused(exc)
            continue
        # Names that only resolve to the trap pass the literal check and are refused at connect time.
        result = await world.service.sync(name)
        assert not result.ok and ALLOW_HOSTS_ENV in result.error, (url, result.error)
    assert world.trap.connections == 0


# --- DNS: checked after resolution, connected to the checked address ----------------------------------------


async def test_names_are_checked_after_resolution_and_the_checked_address_is_used(
    tmp_path, monkeypatch
) -> None:
    answers = {"as.evil.test": ["127.0.0.2"], "rs.mixed.localhost": ["127.0.0.2", "127.0.0.1"]}

    async def resolver(host: str, port: int) -> list[str]:
        return answers[host]

    w = await _make_world(tmp_path, monkeypatch, NetworkPolicy.allowing("127.0.0.1", resolver=resolver))
    try:
        # An https issuer whose name resolves to the trap: refused after resolution.
        w.prm["authorization_servers"] = [f"https://as.evil.test:{w.trap.port}"]
        error = await _connect_fails(w)
        assert isinstance(error, NetworkPolicyError) and "127.0.0.2" in str(error)
        # A name resolving to the trap AND the allowed origin: only the checked address is used.
        await w.service.add_connector("mixed", f"http://rs.mixed.localhost:{w.rs.port}/plain", "none")
        w.rs.routes[("POST", "/plain")] = lambda r: Reply(500)
        await w.service.sync("mixed")
        assert w.rs.to("/plain") and all(
            r.headers["host"] == f"rs.mixed.localhost:{w.rs.port}" for r in w.rs.to("/plain")
        )
        assert w.trap.connections == 0
    finally:
        await w.service.aclose()
        await w.rs.stop()
        await w.trap.stop()
        await aclose_shared_clients()


# --- control: the trap does catch what the allow-list lets through -----------------------------------------


async def test_control_allowing_the_trap_host_lets_the_same_flows_reach_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ALLOW_HOSTS_ENV, "127.0.0.1,127.0.0.2")
    w = await _make_world(tmp_path, monkeypatch, None)  # policy from the environment
    try:
        w.challenge = f'Bearer resource_metadata="http://127.0.0.2:{w.trap.port}/prm"'
        with pytest.raises(SwitchboardError) as info:
            await w.service.connect("target")
        assert not isinstance(info.value, NetworkPolicyError)
        assert w.trap.connections == 1
    finally:
        await w.service.aclose()
        await w.rs.stop()
        await w.trap.stop()
        await aclose_shared_clients()


async def test_discovery_requests_carry_no_credential(world: World) -> None:
    """S-14 through the services: PRM, AS metadata and registration requests carry no Authorization."""
    await world.service.connect("target")
    discovery = [r for r in world.rs.requests if r.method == "GET" or r.path == "/register"]
    assert discovery and all("authorization" not in r.headers for r in discovery)
