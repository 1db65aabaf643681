"""Enterprise-managed authorization (SEP-990) for the `sdk_oauth` kinds: an identity provider and
the identity-assertion grant, so `core/oauth/id_jag.py` has a real peer.

With the option `enterprise_users` {id_token: subject} the authorization server's origin also hosts:

- `POST /idp/token` — the enterprise IdP's RFC 8693 token exchange. A public client
  (`client_id=IDP_CLIENT_ID`, no secret) exchanges a known ID token
  (`subject_token_type=…:id_token`) for an ID-JAG (`requested_token_type=…:id-jag`) whose `audience`
  must be this authorization server's issuer and whose `resource` must be the MCP server (RFC 8707).
- `POST /token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523): a
  `machine_clients` client (`client_secret_basic`) presents the ID-JAG as `assertion`; it works
  once, for the resource it names; the access token's subject is the enterprise user.

The ID-JAG is opaque here (a real IdP signs a JWT): the client never looks inside it, and the
checks a real authorization server makes on its claims are made on what the IdP recorded.
"""

import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from sample_servers.control import json_answer, read_body
from sample_servers.oauth_provider import DEFAULT_GRANTED_SCOPES, VALID_SCOPES, SampleAuthServer

IDP_TOKEN_PATH = "/idp/token"
IDP_CLIENT_ID = "sample-idp-client"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG_TTL_SECONDS = 300


@dataclass(frozen=True)
class IdentityAssertion:
    subject: str
    audience: str
    resource: str
    scopes: tuple[str, ...]
    expires_at: float


class EnterpriseGrants:
    """ASGI wrapper serving the IdP's token exchange and the jwt-bearer grant; everything else
    passes through."""

    def __init__(self, app: ASGIApp, provider: SampleAuthServer, users: dict[str, str]) -> None:
        self.app = app
        self.provider = provider
        self.users = users  # id_token -> subject
        self.assertions: dict[str, IdentityAssertion] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in ("/token", IDP_TOKEN_PATH)
        ):
            await self.app(scope, receive, send)
            return
        body, replay = await read_body(receive)
        form = {k: v[0] for k, v in parse_qs(body.decode("latin-1")).items()}
        if scope["path"] == IDP_TOKEN_PATH:
            status, answer = self._exchange(form)
        elif form.get("grant_type") == JWT_BEARER:
            client_id = self.provider.authenticate_machine_client(
                Headers(scope=scope).get("authorization", "")
            )
            status, answer = (
                (401, {"error": "invalid_client"}) if client_id is None else self._grant(client_id, form)
            )
        else:
            await self.app(scope, replay, send)
            return
        await json_answer(send, status, answer)

    def _exchange(self, form: dict[str, str]) -> tuple[int, dict]:
        """RFC 8693 at the IdP: an ID token for an ID-JAG aimed at this authorization server."""
        if form.get("client_id") != IDP_CLIENT_ID:
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != TOKEN_EXCHANGE or form.get("requested_token_type") != ID_JAG:
            return 400, {"error": "unsupported_grant_type"}
        subject = self.users.get(form.get("subject_token", ""))
        if form.get("subject_token_type") != ID_TOKEN or subject is None:
            return 400, {"error": "invalid_grant", "error_description": "unknown ID token"}
        if form.get("audience") != self.provider.settings.issuer:
            return 400, {"error": "invalid_target", "error_description": "unknown audience"}
        error = self.provider._resource_error(form.get("resource"))
        if error is not None or not form.get("resource"):
            return 400, {"error": "invalid_target", "error_description": "unknown resource"}
        jag = "jag-" + secrets.token_urlsafe(24)
        scopes = tuple(s for s in form.get("scope", "").split() if s in VALID_SCOPES)
        self.assertions[jag] = IdentityAssertion(
            subject, form["audience"], form["resource"], scopes, time.time() + ID_JAG_TTL_SECONDS
        )
        self.provider.counters.tokens_issued["id_jag"] += 1
        answer = {"access_token": jag, "issued_token_type": ID_JAG, "token_type": "N_A", "expires_in": 300}
        return 200, answer | ({"scope": " ".join(scopes)} if scopes else {})

    def _grant(self, client_id: str, form: dict[str, str]) -> tuple[int, dict]:
        """RFC 7523 at the authorization server: one use of an ID-JAG for its resource."""
        assertion = self.assertions.pop(form.get("assertion", ""), None)
        if assertion is None or assertion.expires_at < time.time():
            return 400, {"error": "invalid_grant", "error_description": "unknown or used assertion"}
        if form.get("resource") != assertion.resource or assertion.audience != self.provider.settings.issuer:
            return 400, {
                "error": "invalid_target",
                "error_description": "the assertion is for another resource",
            }
        asked = tuple(s for s in form.get("scope", "").split() if s in VALID_SCOPES)
        token = self.provider.issue_client_credentials(
            client_id,
            list(asked or assertion.scopes or DEFAULT_GRANTED_SCOPES),
            assertion.resource,
            subject=assertion.subject,
            grant="jwt_bearer",
        )
        return 200, token.model_dump(exclude_none=True)
