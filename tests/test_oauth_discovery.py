"""Discovery: canonical URIs and resource matching (RFC 8707), PRM (RFC 9728), AS metadata (RFC 8414)."""

from __future__ import annotations

import httpx2
import pytest

from core.errors import DiscoveryError, InvalidUrlError
from core.oauth import discover
from core.oauth.rfc7636 import choose_method
from core.oauth.rfc8414 import metadata_urls
from core.oauth.rfc8707 import canonical_resource, resource_matches
from core.oauth.rfc9728 import well_known_urls
from core.oauth.trace import MemoryTrace
from core.rfc9110 import Challenge
from tests.test_oauth_fakes import AS, RS, SERVER_URL, FakeWorld, json_response

# --- RFC 8707 canonical URI and the PRM matching rule (A-05) ------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("HTTPS://MCP.EXAMPLE.test/mcp", "https://mcp.example.test/mcp"),
        ("https://h:443/mcp", "https://h/mcp"),
        ("https://h/", "https://h"),
        ("https://h", "https://h"),
        ("http://127.0.0.1:8080/mcp", "http://127.0.0.1:8080/mcp"),
        ("https://h/mcp/", "https://h/mcp/"),
        ("https://[::1]:9/x", "https://[::1]:9/x"),
    ],
)
def test_canonical_resource(given: str, canonical: str) -> None:
    assert canonical_resource(given) == canonical


@pytest.mark.parametrize(
    "bad", ["mcp.example.com", "https://h/mcp#f", "ftp://h/x", "https://user:pw@h/x", ""]
)
def test_canonical_resource_rejects(bad: str) -> None:
    with pytest.raises(InvalidUrlError):
        canonical_resource(bad)


@pytest.mark.parametrize(
    ("resource", "server", "ok"),
    [
        ("https://h/mcp", "https://h/mcp", True),
        ("https://H/mcp", "https://h/mcp", True),  # host case is not identity
        ("https://h", "https://h/mcp", True),  # one document for the whole origin (auth/metadata-var2)
        ("https://h/", "https://h/mcp", True),
        ("https://h/api", "https://h/api/mcp", True),
        ("https://h/ap", "https://h/api/mcp", False),  # not on a segment boundary
        ("https://h/mcp/", "https://h/mcp", False),  # strict: a trailing slash is another resource
        ("https://h/mcp/x", "https://h/mcp", False),  # more specific than the server
        ("https://h/other", "https://h/mcp", False),
        ("https://evil.example.com/mcp", "https://h/mcp", False),  # S-02, auth/resource-mismatch
        ("http://h/mcp", "https://h/mcp", False),
        ("https://h:8443/mcp", "https://h/mcp", False),
        ("https://h/mcp?tenant=a", "https://h/mcp?tenant=b", False),
        ("not a url", "https://h/mcp", False),
    ],
)
def test_resource_matches_same_origin_segment_prefix(resource: str, server: str, ok: bool) -> None:
    assert resource_matches(resource, server) is ok


# --- RFC 9728 -----------------------------------------------------------------------------------------


def test_well_known_urls_insert_between_host_and_path() -> None:
    assert well_known_urls("https://h/public/mcp") == [
        "https://h/.well-known/oauth-protected-resource/public/mcp",
        "https://h/.well-known/oauth-protected-resource",
    ]
    assert well_known_urls("https://h/") == ["https://h/.well-known/oauth-protected-resource"]
    assert well_known_urls("https://h") == ["https://h/.well-known/oauth-protected-resource"]


async def test_challenge_resource_metadata_is_the_only_prm_url() -> None:
    world = FakeWorld()
    custom = RS + "/custom/prm.json"
    world.overrides[("GET", custom)] = json_response(200, world.prm)
    found = await discover(
        SERVER_URL, challenge=Challenge("bearer", {"resource_metadata": custom}), http=world.http()
    )
    assert world.paths() == ["/custom/prm.json", "/.well-known/oauth-authorization-server"]
    assert found.issuer == AS and found.resource == SERVER_URL


async def test_path_then_root_prm() -> None:
    world = FakeWorld(prm_at="root")
    world.prm["resource"] = RS
    found = await discover(SERVER_URL, http=world.http())
    assert world.paths()[:2] == [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ]
    assert found.resource == RS  # sent byte-identical to the document, no trailing slash added


async def test_prm_resource_mismatch_aborts_before_any_as_request() -> None:
    world = FakeWorld()
    world.prm["resource"] = "https://evil.example.com/mcp"
    with pytest.raises(DiscoveryError, match="not for this server"):
        await discover(SERVER_URL, http=world.http())
    assert all(r.url.startswith(RS) for r in world.requests)


@pytest.mark.parametrize("servers", [None, [], AS, [123], ["http://as.example"], [AS + "?x=1"]])
async def test_authorization_servers_invalid(servers: object) -> None:
    world = FakeWorld()
    if servers is None:
        del world.prm["authorization_servers"]
    else:
        world.prm["authorization_servers"] = servers
    with pytest.raises(DiscoveryError):
        await discover(SERVER_URL, http=world.http())
    assert all(r.url.startswith(RS) for r in world.requests)


async def test_prm_5xx_aborts_instead_of_falling_back_to_legacy() -> None:
    world = FakeWorld()
    world.overrides[("GET", RS + "/.well-known/oauth-protected-resource/mcp")] = httpx2.Response(503)
    with pytest.raises(DiscoveryError, match="503"):
        await discover(SERVER_URL, http=world.http())
    assert len(world.requests) == 1


async def test_prm_that_is_html_aborts() -> None:
    world = FakeWorld()
    world.overrides[("GET", RS + "/.well-known/oauth-protected-resource/mcp")] = httpx2.Response(
        200, text="<html>", headers={"content-type": "text/html"}
    )
    with pytest.raises(DiscoveryError, match="not a JSON object"):
        await discover(SERVER_URL, http=world.http())


# --- RFC 8414 / OIDC ----------------------------------------------------------------------------------


def test_metadata_urls_in_spec_order() -> None:
    assert [u for u, _ in metadata_urls("https://as/tenant1")] == [
        "https://as/.well-known/oauth-authorization-server/tenant1",
        "https://as/.well-known/openid-configuration/tenant1",
        "https://as/tenant1/.well-known/openid-configuration",
    ]
    assert [u for u, _ in metadata_urls("https://as")] == [
        "https://as/.well-known/oauth-authorization-server",
        "https://as/.well-known/openid-configuration",
    ]
    assert [u for u, _ in metadata_urls("https://as/")] == [
        "https://as/.well-known/oauth-authorization-server",
        "https://as/.well-known/openid-configuration",
    ]


async def test_oidc_fallback_after_404_and_root_never_asked_for_path_issuer() -> None:
    issuer = AS + "/tenant1"
    world = FakeWorld(issuer=issuer)
    document = dict(world.metadata, issuer=issuer)
    world.overrides[("GET", AS + "/.well-known/oauth-authorization-server/tenant1")] = httpx2.Response(404)
    world.overrides[("GET", AS + "/tenant1/.well-known/openid-configuration")] = json_response(200, document)
    found = await discover(SERVER_URL, http=world.http())
    assert found.metadata.source == "oidc"
    assert world.paths()[1:] == [
        "/.well-known/oauth-authorization-server/tenant1",
        "/.well-known/openid-configuration/tenant1",
        "/tenant1/.well-known/openid-configuration",
    ]
    assert "/.well-known/oauth-authorization-server" not in world.paths()


@pytest.mark.parametrize(
    "claimed", ["https://honest.example", AS + "/", "https://AS.test", "https://as.test:443", None]
)
async def test_issuer_mismatch_aborts_without_trying_other_urls(claimed: str | None) -> None:
    world = FakeWorld()
    world.metadata["issuer"] = claimed
    trace = MemoryTrace()
    with pytest.raises(DiscoveryError, match="expected exactly"):
        await discover(SERVER_URL, http=world.http(trace))
    assert world.paths()[-1] == "/.well-known/oauth-authorization-server"  # no OIDC URL after the impostor
    assert not world.to("/register") and not world.to("/token") and not world.to("/authorize")
    assert trace.events[-1].step == "as_metadata" and "expected exactly" in trace.events[-1].detail


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token_endpoint": None}, "token_endpoint"),
        ({"token_endpoint": "http://as.example/token"}, "https"),
        ({"authorization_endpoint": "javascript:alert(1)"}, "authorization_endpoint"),
        ({"authorization_endpoint": "file:///etc/passwd"}, "authorization_endpoint"),
        ({"response_types_supported": ["token"]}, "code flow"),
    ],
)
async def test_unusable_metadata_aborts(change: dict, message: str) -> None:
    world = FakeWorld()
    world.metadata.update(change)
    with pytest.raises(DiscoveryError, match=message):
        await discover(SERVER_URL, http=world.http())


@pytest.mark.parametrize(
    "answer",
    [
        httpx2.Response(200, text="<html>login</html>", headers={"content-type": "text/html"}),
        httpx2.Response(200, json=[1, 2]),
        httpx2.Response(500),
    ],
)
async def test_metadata_not_a_document_aborts(answer: httpx2.Response) -> None:
    world = FakeWorld()
    world.overrides[("GET", AS + "/.well-known/oauth-authorization-server")] = answer
    with pytest.raises(DiscoveryError):
        await discover(SERVER_URL, http=world.http())
    assert world.paths()[-1] == "/.well-known/oauth-authorization-server"


async def test_discovery_requests_carry_no_bearer_token() -> None:
    world = FakeWorld()
    await discover(SERVER_URL, http=world.http())
    assert world.requests and all("authorization" not in r.headers for r in world.requests)


# --- 2025-03-26 fallback ------------------------------------------------------------------------------


async def test_legacy_server_metadata_on_its_origin() -> None:
    world = FakeWorld()
    world.prm_at = "none"
    world.overrides[("GET", RS + "/.well-known/oauth-authorization-server")] = json_response(
        200, dict(world.metadata, issuer=RS)
    )
    found = await discover(SERVER_URL, http=world.http())
    assert found.protected_resource is None and found.issuer == RS and found.resource == SERVER_URL
    assert world.paths() == [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
    ]


async def test_legacy_server_without_metadata_uses_default_endpoints() -> None:
    world = FakeWorld()
    world.prm_at = "none"
    found = await discover(SERVER_URL, http=world.http())
    assert found.metadata.source == "defaults"
    assert (
        found.metadata.authorization_endpoint,
        found.metadata.token_endpoint,
        found.metadata.registration_endpoint,
    ) == (RS + "/authorize", RS + "/token", RS + "/register")


async def test_legacy_issuer_check_is_kept() -> None:
    # auth/2025-03-26-oauth-metadata-backcompat (0.1.16) serves issuer <origin>/oauth here: refused.
    world = FakeWorld()
    world.prm_at = "none"
    world.overrides[("GET", RS + "/.well-known/oauth-authorization-server")] = json_response(
        200, dict(world.metadata, issuer=RS + "/oauth")
    )
    with pytest.raises(DiscoveryError, match="expected exactly"):
        await discover(SERVER_URL, http=world.http())


# --- PKCE method choice (A-19) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("methods", "has_metadata", "allow_plain", "expected"),
    [
        (("S256",), True, False, "S256"),
        (("plain", "S256"), True, False, "S256"),
        (None, False, False, "S256"),  # 2025-03-26 default endpoints: PKCE S256 is mandatory there
        (("plain",), True, True, "plain"),
        (None, True, True, "S256"),
    ],
)
def test_pkce_method(methods, has_metadata, allow_plain, expected) -> None:
    assert choose_method(methods, has_metadata=has_metadata, allow_plain=allow_plain, issuer=AS) == expected


@pytest.mark.parametrize("methods", [None, (), ("plain",)])
def test_pkce_refused_without_s256(methods) -> None:
    with pytest.raises(DiscoveryError, match="S256"):
        choose_method(methods, has_metadata=True, allow_plain=False, issuer=AS)
