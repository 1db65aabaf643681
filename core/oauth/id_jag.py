"""Enterprise-managed authorization (MCP ext-auth SEP-990): an identity assertion grant (ID-JAG).

Two legs, both plain token requests:

1. RFC 8693 token exchange at the enterprise IdP: the user's ID token is exchanged for an ID-JAG
   (`requested_token_type=urn:ietf:params:oauth:token-type:id-jag`) whose audience is the MCP
   authorization server's issuer and whose `resource` is the MCP server.
2. RFC 7523 jwt-bearer grant at the MCP authorization server, the ID-JAG as `assertion`, with the
   client's own authentication (client_secret_basic).

The MCP authorization server is found through the server's protected-resource metadata (`flow.discover`,
issuer checked); the IdP is configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import TokenError
from core.oauth._http import OAuthHttp, require_secure_url, short_error_code
from core.oauth.flow import Discovery
from core.oauth.storage import ClientRegistration, TokenSet
from core.oauth.tokens import client_auth, encode_token_request, request_token

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"


@dataclass(frozen=True, repr=False)
class EnterpriseIdentity:
    idp_token_endpoint: str
    idp_client_id: str
    id_token: str

    def __repr__(self) -> str:
        return f"EnterpriseIdentity(idp_token_endpoint={self.idp_token_endpoint!r}, <id token redacted>)"


async def request_id_jag(
    http: OAuthHttp,
    identity: EnterpriseIdentity,
    *,
    audience: str,
    resource: str,
    scopes: tuple[str, ...] = (),
) -> str:
    """Leg 1: exchange the ID token for an ID-JAG at the IdP."""
    endpoint = require_secure_url(identity.idp_token_endpoint, "IdP token endpoint", error=TokenError)
    params = {
        "grant_type": TOKEN_EXCHANGE,
        "requested_token_type": ID_JAG,
        "audience": audience,
        "resource": resource,
        "subject_token": identity.id_token,
        "subject_token_type": ID_TOKEN,
    }
    if scopes:
        params["scope"] = " ".join(scopes)
    # A public client at the IdP: `none` authentication adds our client_id to the body.
    headers, body = encode_token_request(
        client_auth(ClientRegistration(issuer="", client_id=identity.idp_client_id)), endpoint, params
    )
    async with http.exchange(
        "token_exchange", "POST", endpoint, error=TokenError, form=body, headers=headers
    ) as answer:
        document = answer.json_object()
        if answer.status != 200 or document is None:
            error = short_error_code(document.get("error")) if document else "unknown"
            raise TokenError(
                f"the identity provider refused the token exchange (HTTP {answer.status}, {error})",
                error=error,
            )
        assertion = document.get("access_token")
        if document.get("issued_token_type") != ID_JAG or not isinstance(assertion, str) or not assertion:
            raise TokenError("the identity provider did not issue an identity assertion grant")
        answer.detail = "identity assertion grant issued"
        return assertion


async def enterprise_token(
    discovery: Discovery,
    identity: EnterpriseIdentity,
    registration: ClientRegistration,
    *,
    scopes: tuple[str, ...] | None = None,
    http: OAuthHttp | None = None,
) -> TokenSet:
    """Both legs: an MCP access token for the enterprise user."""
    http = http or OAuthHttp()
    scopes = discovery.scopes() if scopes is None else scopes
    assertion = await request_id_jag(
        http, identity, audience=discovery.issuer, resource=discovery.resource, scopes=scopes
    )
    params = {"grant_type": JWT_BEARER, "assertion": assertion, "resource": discovery.resource}
    if scopes:
        params["scope"] = " ".join(scopes)
    return await request_token(
        http,
        step="jwt_bearer",
        token_endpoint=discovery.metadata.token_endpoint,
        params=params,
        auth=client_auth(registration),
        issuer=discovery.issuer,
        client_id=registration.client_id,
        resource=discovery.resource,
        requested_scopes=scopes,
    )
