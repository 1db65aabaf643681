"""The auth scenarios of the official MCP conformance suite (`python -m core.conformance URL`).

`core.conformance` hands every `auth/*` scenario to `run_auth_scenario`. The suite's fake
authorization servers approve automatically, so the flow runs headless: `OAuthProvider(headless=True)`
reacts to the server's 401/403 by discovering, registering and authorizing through
`authorize_headless` — the same `complete_authorization` the dashboard's callback uses. Then the client
does what the suite's reference client does: list the tools and call `test-tool` when offered.

Scenario context (`MCP_CONFORMANCE_CONTEXT`): `client_id`/`client_secret` (pre-registration,
client_credentials, cross-app access), `private_key_pem`/`signing_algorithm` (private_key_jwt),
`idp_*` (cross-app access). The CIMD URL is the suite's fixed one, used only in `auth/basic-cimd`:
elsewhere the suite would try to fetch it from the network.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any
from urllib.parse import urlsplit

from core.errors import SwitchboardError
from core.mcp.client import McpClient
from core.net.client import create_http_client
from core.net.policy import ALLOW_HOSTS_ENV, NetworkPolicy
from core.oauth._http import OAuthHttp
from core.oauth.client_credentials import ClientCredentials
from core.oauth.flow import ConnectorSettings, discover
from core.oauth.id_jag import EnterpriseIdentity, enterprise_token
from core.oauth.provider import OAuthProvider
from core.oauth.storage import ClientRegistration, CredentialKey, MemoryOAuthStorage
from core.oauth.trace import MemoryTrace

SUITE_CIMD_URL = "https://conformance-test.local/client-metadata.json"
REDIRECT_URI = "http://127.0.0.1:3000/callback"
KEY = CredentialKey("conformance")


def run_auth_scenario(url: str, scenario: str, context: dict[str, Any]) -> int:
    """Run one auth scenario against the suite's server at `url`; the process exit code."""
    trace = MemoryTrace()
    try:
        asyncio.run(_run(url, scenario, context, trace))
        code = 0
    except SwitchboardError as exc:
        print(f"conformance: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    for event in trace.events:  # the auth trace, for the suite's stderr.txt (it holds no secrets)
        print(
            f"  {event.step:<18} {event.method:<4} {event.status or '-':>3} {event.url} {event.detail}",
            file=sys.stderr,
        )
    return code


async def _run(url: str, scenario: str, context: dict[str, Any], trace: MemoryTrace) -> None:
    # The suite's servers run on this machine: allow exactly the hosts it named, besides the operator's.
    hosts = {
        urlsplit(url).hostname or "",
        urlsplit(str(context.get("idp_token_endpoint", ""))).hostname or "",
    }
    policy = NetworkPolicy.allowing(*os.environ.get(ALLOW_HOSTS_ENV, "").split(","), *(h for h in hosts if h))
    async with create_http_client(policy) as client:
        http = OAuthHttp(client, trace)
        storage = MemoryOAuthStorage()
        settings = ConnectorSettings(
            server_url=url,
            redirect_uri=REDIRECT_URI,
            client_name="Switchboard conformance client",
            client_id=context.get("client_id") if scenario == "auth/pre-registration" else None,
            client_secret=context.get("client_secret") if scenario == "auth/pre-registration" else None,
            client_metadata_url=context.get("client_metadata_url", SUITE_CIMD_URL)
            if scenario == "auth/basic-cimd"
            else None,
        )
        credentials = None
        if scenario.startswith("auth/client-credentials"):
            credentials = ClientCredentials(
                client_id=context["client_id"],
                client_secret=context.get("client_secret"),
                private_key_pem=context.get("private_key_pem"),
                signing_algorithm=context.get("signing_algorithm"),
            )
        if scenario == "auth/cross-app-access-complete-flow":
            discovery = await discover(url, http=http)
            registration = ClientRegistration(
                issuer=discovery.issuer,
                client_id=context["client_id"],
                client_secret=context["client_secret"],
                token_endpoint_auth_method="client_secret_basic",
                method="pre_registered",
            )
            identity = EnterpriseIdentity(
                context["idp_token_endpoint"], context["idp_client_id"], context["idp_id_token"]
            )
            tokens = await enterprise_token(discovery, identity, registration, http=http)
            storage.save_tokens(KEY, tokens, expected_version=None)
        provider = OAuthProvider(
            storage, KEY, settings, http=http, headless=True, client_credentials=credentials
        )
        async with McpClient(url, http=client, auth=provider, era="legacy") as mcp:
            tools = await mcp.list_tools()
            if any(tool.get("name") == "test-tool" for tool in tools):
                await mcp.call_tool("test-tool", {})
