"""Smoke tests for the sample-server fixtures: each starts, answers over real HTTP on 127.0.0.1,
authenticates the way it should, and counts what happened. Raw httpx2 only, no MCP client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import psutil
import pytest

from sample_servers.launch import RunningServer, ServerStartError, start
from tests.fixtures import raw_oauth
from tests.fixtures.raw_mcp import (
    MODERN_VERSION,
    LegacySession,
    initialize_params,
    loopback_client,
    modern_request,
    post_rpc,
    rpc_message,
    rpc_result,
)
from tests.fixtures.servers import ServerFactory


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with loopback_client() as client:
        yield client


def listening_addresses(server: RunningServer) -> set[str]:
    connections = psutil.Process(server.process.pid).net_connections(kind="inet")
    return {conn.laddr.ip for conn in connections if conn.status == psutil.CONN_LISTEN}


# --- plain SDK server, all four response modes ------------------------------------------------


def test_response_modes_initialize(response_mode_server: RunningServer, http: httpx2.Client) -> None:
    server = response_mode_server
    response = post_rpc(http, server.url, "initialize", initialize_params())
    assert response.status_code == 200
    expected_type = "application/json" if server.options.get("json_response") else "text/event-stream"
    assert response.headers["content-type"].startswith(expected_type)
    stateless = server.options.get("stateless", False)
    assert ("mcp-session-id" in response.headers) is not stateless
    assert rpc_result(response)["serverInfo"]["name"] == "sample-plain"

    counters = server.counters()
    assert counters["rpc_methods"] == {"initialize": 1}
    assert counters["requests"] == [
        {
            "port": server.port,
            "method": "POST",
            "path": "/mcp",
            "authorization": False,
            "status": 200,
            "rpc": "initialize",
        }
    ]


def test_plain_common_tools(plain_server: RunningServer, http: httpx2.Client) -> None:
    session = LegacySession(http, plain_server.url).open()
    tools = {tool["name"]: tool for tool in session.request("tools/list")["tools"]}
    assert list(tools) == plain_server.tools

    assert session.call_tool("whoami")["structuredContent"]["auth"] == "none"
    assert session.call_tool("add", {"a": 2, "b": 3})["structuredContent"] == {"sum": 5}
    assert session.call_tool("tiny_image")["content"][0]["type"] == "image"
    assert session.call_tool("always_fails")["isError"] is True
    assert session.call_tool("greet", {"name": "Ada"})["content"][0]["text"] == "Hello, Ada!"

    schema = tools["configure"]["inputSchema"]
    assert set(schema["required"]) == {"mode", "level", "target"}
    assert schema["properties"]["mode"]["enum"] == ["fast", "safe", "thorough"]
    assert (schema["properties"]["level"]["minimum"], schema["properties"]["level"]["maximum"]) == (1, 10)
    assert tools["list_items"]["annotations"]["readOnlyHint"] is True
    assert tools["delete_item"]["annotations"]["destructiveHint"] is True

    assert plain_server.counters()["tool_calls"] == {
        "anonymous": {"whoami": 1, "add": 1, "tiny_image": 1, "always_fails": 1, "greet": 1}
    }


def test_tool_description_drift_and_reset(plain_server: RunningServer, http: httpx2.Client) -> None:
    session = LegacySession(http, plain_server.url).open()
    plain_server.set_tool_description("echo", "Echo, now with a changed description.")
    tools = session.request("tools/list")["tools"]
    assert [tool["name"] for tool in tools] == plain_server.tools  # order survives the change
    assert (
        next(t for t in tools if t["name"] == "echo")["description"]
        == "Echo, now with a changed description."
    )

    plain_server.reset()
    tools = session.request("tools/list")["tools"]
    assert next(t for t in tools if t["name"] == "echo")["description"] == "Echo the message back unchanged."


def test_tool_definition_drift_and_reset(plain_server: RunningServer, http: httpx2.Client) -> None:
    session = LegacySession(http, plain_server.url).open()
    original = next(t for t in session.request("tools/list")["tools"] if t["name"] == "echo")
    plain_server.change_tool("echo")
    tools = session.request("tools/list")["tools"]
    assert [tool["name"] for tool in tools] == plain_server.tools  # order survives the change
    changed = next(t for t in tools if t["name"] == "echo")
    assert set(changed["inputSchema"]["properties"]) == {"message", "repeat"}
    assert changed["annotations"]["destructiveHint"] is True and "annotations" not in original
    result = session.request("tools/call", {"name": "echo", "arguments": {"message": "hi", "repeat": 2}})
    assert result["content"][0]["text"] == "hi hi"

    plain_server.reset()
    restored = next(t for t in session.request("tools/list")["tools"] if t["name"] == "echo")
    assert restored == original


def test_fault_injection(plain_server: RunningServer, http: httpx2.Client) -> None:
    plain_server.fail_next("/mcp", status=503, count=1)
    assert post_rpc(http, plain_server.url, "initialize", initialize_params()).status_code == 503
    assert post_rpc(http, plain_server.url, "initialize", initialize_params()).status_code == 200
    assert [entry["status"] for entry in plain_server.counters()["requests"]] == [503, 200]


# --- 2026-07-28 (stateless, no handshake) ----------------------------------------------------


def test_modern_revision_is_served(modern_server: RunningServer, http: httpx2.Client) -> None:
    # The SDK serves both eras on one endpoint, routed by the MCP-Protocol-Version header.
    response = modern_request(http, modern_server.url, "server/discover")
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers
    assert MODERN_VERSION in rpc_result(response)["supportedVersions"]

    call = modern_request(
        http, modern_server.url, "tools/call", {"name": "echo", "arguments": {"message": "hi"}}, name="echo"
    )
    assert rpc_result(call)["content"][0]["text"] == "hi"

    mismatched = modern_request(
        http, modern_server.url, "tools/call", {"name": "echo", "arguments": {}}, name="add"
    )
    assert mismatched.status_code == 400  # Mcp-Name must match the body

    legacy = post_rpc(http, modern_server.url, "initialize", initialize_params())
    assert rpc_result(legacy)["protocolVersion"] == "2025-11-25"
    assert modern_server.counters()["rpc_methods"] == {"server/discover": 1, "tools/call": 2, "initialize": 1}


# --- static credentials ----------------------------------------------------------------------


def test_bearer_server_accepts_its_keys_only(bearer_server: RunningServer, http: httpx2.Client) -> None:
    url = bearer_server.url
    missing = post_rpc(http, url, "initialize", initialize_params())
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer ")
    assert "resource_metadata" not in missing.headers["www-authenticate"]

    wrong = post_rpc(
        http, url, "initialize", initialize_params(), headers={"Authorization": "Bearer not-a-key"}
    )
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]

    whoami = {}
    for identity in ("alice", "bob"):
        session = LegacySession(http, url, bearer_server.auth_headers(identity)).open()
        whoami[identity] = session.call_tool("whoami")["structuredContent"]
    assert whoami["alice"]["subject"] == "alice" and whoami["bob"]["subject"] == "bob"
    assert whoami["alice"]["fingerprint"] != whoami["bob"]["fingerprint"]

    # No OAuth metadata anywhere.
    for path in (
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
    ):
        assert http.get(bearer_server.origin + path).status_code == 404

    counters = bearer_server.counters()
    assert counters["auth_failures"] == {"401": 2}
    assert counters["tool_calls"] == {"alice": {"whoami": 1}, "bob": {"whoami": 1}}


def test_api_key_server_reads_its_header(api_key_server: RunningServer, http: httpx2.Client) -> None:
    url, key = api_key_server.url, api_key_server.keys["alice"]
    assert api_key_server.header == "X-API-Key"
    missing = post_rpc(http, url, "initialize", initialize_params())
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'ApiKey realm="sample", header="X-API-Key"'
    as_bearer = post_rpc(
        http, url, "initialize", initialize_params(), headers={"Authorization": f"Bearer {key}"}
    )
    assert as_bearer.status_code == 401  # right key, wrong place

    session = LegacySession(http, url, api_key_server.auth_headers("bob")).open()
    assert session.call_tool("whoami")["structuredContent"]["subject"] == "bob"
    assert api_key_server.counters()["tool_calls"] == {"bob": {"whoami": 1}}


def test_api_key_header_is_configurable(sample_server_factory: ServerFactory, http: httpx2.Client) -> None:
    server = sample_server_factory("api_key", header="X-Custom-Key", keys={"carol": "carol-key-123"})
    session = LegacySession(http, server.url, {"X-Custom-Key": "carol-key-123"}).open()
    assert session.call_tool("whoami")["structuredContent"]["subject"] == "carol"


# --- pagination ------------------------------------------------------------------------------


def test_paginated_tools_list(paginated_server: RunningServer, http: httpx2.Client) -> None:
    session = LegacySession(http, paginated_server.url).open()
    names: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        page = session.request("tools/list", {"cursor": cursor} if cursor else {})
        pages += 1
        assert len(page["tools"]) == 5
        names += [tool["name"] for tool in page["tools"]]
        cursor = page.get("nextCursor")
        if cursor is None:
            break
    assert pages == 5 and len(set(names)) == 25 and names == paginated_server.tools

    invalid = rpc_message(session.post("tools/list", {"cursor": "bm90LWEtY3Vyc29y"}), session.next_id - 1)
    assert invalid["error"]["code"] == -32602
    assert paginated_server.counters()["rpc_methods"]["tools/list"] == 6


# --- OAuth -----------------------------------------------------------------------------------


def discover(http: httpx2.Client, server: RunningServer) -> tuple[dict, dict]:
    """401 challenge -> protected-resource metadata -> authorization-server metadata."""
    challenge = post_rpc(http, server.url, "initialize", initialize_params())
    assert challenge.status_code == 401
    www_authenticate = challenge.headers["www-authenticate"]
    assert www_authenticate.startswith("Bearer ")
    assert f'resource_metadata="{server.resource_metadata_url}"' in www_authenticate
    # The SDK serves PRM only at the path-suffixed well-known URL (RFC 9728 §3.1).
    assert server.resource_metadata_url == f"{server.origin}/.well-known/oauth-protected-resource/mcp"
    prm = raw_oauth.fetch_json(http, server.resource_metadata_url)
    assert prm["resource"] == server.url
    assert prm["authorization_servers"] == [server.issuer]
    assert server.issuer is not None
    # RFC 8414 §3.1 for a path-less issuer (FastMCP's has a trailing "/").
    as_metadata = raw_oauth.fetch_json(
        http, f"{server.issuer.rstrip('/')}/.well-known/oauth-authorization-server"
    )
    assert as_metadata["issuer"] == server.issuer
    return prm, as_metadata


def test_sdk_oauth_full_flow(sdk_oauth_server: RunningServer, http: httpx2.Client) -> None:
    server = sdk_oauth_server
    _, as_metadata = discover(http, server)
    assert as_metadata["authorization_response_iss_parameter_supported"] is True
    assert as_metadata["code_challenge_methods_supported"] == ["S256"]

    flow = raw_oauth.run_flow(http, as_metadata, server.url, login_hint="alice")
    assert flow.redirect_params["iss"] == server.issuer
    assert flow.tokens.expires_in == 3600 and flow.tokens.refresh_token

    session = LegacySession(http, server.url, flow.tokens.headers).open()
    whoami = session.call_tool("whoami")["structuredContent"]
    assert (whoami["auth"], whoami["subject"], whoami["client_id"]) == ("oauth", "alice", flow.client_id)
    assert whoami["scopes"] == ["read", "write"]

    counters = server.counters()
    assert (counters["registrations"], counters["authorizations"]) == (1, 1)
    assert counters["token_requests"] == {"authorization_code": 1}
    assert counters["tool_calls"] == {"alice": {"whoami": 1}}
    assert counters["auth_failures"] == {"401": 1}
    assert counters["requests"][0] == {
        "port": server.port,
        "method": "POST",
        "path": "/mcp",
        "authorization": False,
        "status": 401,
        "rpc": "initialize",
    }


def test_sdk_oauth_rejects_bad_authorization_requests(
    sdk_oauth_server: RunningServer, http: httpx2.Client
) -> None:
    server = sdk_oauth_server
    _, as_metadata = discover(http, server)
    client_id = raw_oauth.register_client(http, as_metadata["registration_endpoint"])

    params, _ = raw_oauth.authorize(http, as_metadata, client_id, server.url)
    wrong_verifier = raw_oauth.pkce_pair()[0]
    response = raw_oauth.exchange_code(
        http, as_metadata["token_endpoint"], client_id, params["code"], wrong_verifier, server.url
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"  # PKCE

    missing, _ = raw_oauth.authorize(http, as_metadata, client_id, None)
    assert (missing["error"], missing["iss"]) == ("invalid_request", server.issuer)
    elsewhere, _ = raw_oauth.authorize(http, as_metadata, client_id, "http://127.0.0.1:9/mcp")
    assert elsewhere["error"] == "invalid_target" and "code" not in elsewhere
    assert server.counters()["authorizations"] == 1


def test_sdk_oauth_refresh_rotation_and_reuse(sdk_oauth_server: RunningServer, http: httpx2.Client) -> None:
    server = sdk_oauth_server
    _, as_metadata = discover(http, server)
    token_endpoint = as_metadata["token_endpoint"]
    flow = raw_oauth.run_flow(http, as_metadata, server.url)

    first = flow.tokens.refresh_token
    assert first is not None
    rotated = raw_oauth.tokens_from(
        raw_oauth.refresh(http, token_endpoint, flow.client_id, first, server.url)
    )
    assert rotated.refresh_token not in (None, first)
    assert LegacySession(http, server.url, rotated.headers).open().call_tool("echo", {"message": "ok"})

    reused = raw_oauth.refresh(http, token_endpoint, flow.client_id, first, server.url)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    counters = server.counters()
    assert counters["reuse_events"] == 1
    assert counters["token_requests"] == {"authorization_code": 1, "refresh_token": 2}
    assert counters["refresh_requests"] == 2
    assert counters["tokens_issued"] == {"authorization_code": 1, "refresh_token": 1}

    # Reuse revoked the whole family: the rotated refresh token and its access token are dead too.
    assert rotated.refresh_token is not None
    again = raw_oauth.refresh(http, token_endpoint, flow.client_id, rotated.refresh_token, server.url)
    assert again.status_code == 400
    assert (
        post_rpc(http, server.url, "initialize", initialize_params(), headers=rotated.headers).status_code
        == 401
    )


def test_sdk_oauth_admin_tool_needs_admin_scope(sdk_oauth_server: RunningServer, http: httpx2.Client) -> None:
    server = sdk_oauth_server
    _, as_metadata = discover(http, server)
    reader = raw_oauth.run_flow(http, as_metadata, server.url, scope="read")
    session = LegacySession(http, server.url, reader.tokens.headers).open()
    denied = session.post("tools/call", {"name": "admin_action", "arguments": {"action": "x"}})
    assert denied.status_code == 403
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
    assert 'scope="admin"' in denied.headers["www-authenticate"]

    admin = raw_oauth.run_flow(http, as_metadata, server.url, scope="read admin", client_id=reader.client_id)
    result = (
        LegacySession(http, server.url, admin.tokens.headers)
        .open()
        .call_tool("admin_action", {"action": "x"})
    )
    assert result["isError"] is False


def test_sdk_oauth_expire_and_revoke_knobs(sdk_oauth_server: RunningServer, http: httpx2.Client) -> None:
    server = sdk_oauth_server
    _, as_metadata = discover(http, server)
    flow = raw_oauth.run_flow(http, as_metadata, server.url)
    assert (
        post_rpc(http, server.url, "initialize", initialize_params(), headers=flow.tokens.headers).status_code
        == 200
    )
    server.expire_tokens()
    assert (
        post_rpc(http, server.url, "initialize", initialize_params(), headers=flow.tokens.headers).status_code
        == 401
    )

    assert flow.tokens.refresh_token is not None
    response = raw_oauth.refresh(
        http, as_metadata["token_endpoint"], flow.client_id, flow.tokens.refresh_token, server.url
    )
    renewed = raw_oauth.tokens_from(response)
    revoke = http.post(
        as_metadata["revocation_endpoint"], data={"token": renewed.access_token, "client_id": flow.client_id}
    )
    assert revoke.status_code == 200
    assert server.counters()["revocations"] == 1
    assert (
        post_rpc(http, server.url, "initialize", initialize_params(), headers=renewed.headers).status_code
        == 401
    )


def test_sdk_oauth_options(sample_server_factory: ServerFactory, http: httpx2.Client) -> None:
    server = sample_server_factory(
        "sdk_oauth", token_ttl=30, iss_param="omit", revoke_requires_secret_field=True
    )
    _, as_metadata = discover(http, server)
    assert "authorization_response_iss_parameter_supported" not in as_metadata
    flow = raw_oauth.run_flow(http, as_metadata, server.url)
    assert flow.tokens.expires_in == 30
    assert "iss" not in flow.redirect_params
    # The SDK's own revocation handler wants a client_secret field even from public clients.
    revoke = http.post(
        as_metadata["revocation_endpoint"],
        data={"token": flow.tokens.access_token, "client_id": flow.client_id},
    )
    assert revoke.status_code == 400 and "client_secret" in revoke.json()["error_description"]


def test_sdk_oauth_split_servers(sdk_oauth_split_server: RunningServer, http: httpx2.Client) -> None:
    server = sdk_oauth_split_server
    assert server.issuer is not None and server.issuer != server.origin
    _, as_metadata = discover(http, server)
    assert as_metadata["token_endpoint"].startswith(server.issuer)
    # The resource server is not an authorization server.
    assert http.get(f"{server.origin}/.well-known/oauth-authorization-server").status_code == 404

    flow = raw_oauth.run_flow(http, as_metadata, server.url, login_hint="bob")
    whoami = (
        LegacySession(http, server.url, flow.tokens.headers).open().call_tool("whoami")["structuredContent"]
    )
    assert whoami["subject"] == "bob"
    counters = server.counters()  # one store for both listeners
    assert (counters["registrations"], counters["authorizations"]) == (1, 1)
    as_port = int(server.issuer.rsplit(":", 1)[1])
    token_requests = [entry for entry in counters["requests"] if entry["path"] == "/token"]
    assert [entry["port"] for entry in token_requests] == [as_port]
    assert counters["tool_calls"] == {"bob": {"whoami": 1}}


def test_fastmcp_oauth_flow(fastmcp_oauth_server: RunningServer, http: httpx2.Client) -> None:
    server = fastmcp_oauth_server
    _, as_metadata = discover(http, server)
    flow = raw_oauth.run_flow(http, as_metadata, server.url)
    whoami = (
        LegacySession(http, server.url, flow.tokens.headers).open().call_tool("whoami")["structuredContent"]
    )
    assert whoami["auth"] == "oauth" and whoami["client_id"] == flow.client_id
    counters = server.counters()
    assert (counters["registrations"], counters["authorizations"]) == (1, 1)
    assert counters["tokens_issued"] == {"authorization_code": 1}


# --- npm reference server --------------------------------------------------------------------


def test_everything_server(everything_server: RunningServer, http: httpx2.Client) -> None:
    assert listening_addresses(everything_server) == {"127.0.0.1"}
    session = LegacySession(http, everything_server.url).open()
    assert session.initialize_result["serverInfo"]["name"]
    tools = [tool["name"] for tool in session.request("tools/list")["tools"]]
    assert "echo" in tools
    counters = everything_server.counters()
    assert counters["requests_total"] == 3
    assert [entry["path"] for entry in counters["requests"]] == ["/mcp"] * 3
    assert {entry["port"] for entry in counters["requests"]} == {everything_server.port}

    # The TypeScript SDK 1.x behind it is handshake-only: a 2026-07-28 request is refused with 400.
    assert modern_request(http, everything_server.url, "server/discover").status_code == 400


# --- the launcher itself ---------------------------------------------------------------------


def test_servers_listen_on_loopback_only(
    plain_server: RunningServer, sdk_oauth_split_server: RunningServer
) -> None:
    assert listening_addresses(plain_server) == {"127.0.0.1"}
    assert listening_addresses(sdk_oauth_split_server) == {"127.0.0.1"}


def test_explicit_start_and_stop_kill_the_process_group() -> None:
    server = start("plain")
    pid = server.process.pid
    assert server.running and psutil.pid_exists(pid)
    server.stop()
    assert not server.running
    assert not any(proc.info["pid"] == pid for proc in psutil.process_iter(["pid"]))
    server.stop()  # idempotent


def test_bad_options_fail_fast() -> None:
    with pytest.raises(ValueError, match="does not take"):
        start("plain", token_ttl=5)
    with pytest.raises(ValueError, match="unknown sample server kind"):
        start("nope")


def test_startup_failure_reports_the_log_tail() -> None:
    with pytest.raises(ServerStartError, match="keys must map at least one identity"):
        start("bearer", keys={})


def test_missing_node_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_NODE", "/nonexistent/node")
    with pytest.raises(ServerStartError, match="SWITCHBOARD_NODE"):
        start("everything")
