"""RFC 7009 token revocation, used when an operator disconnects a credential or offboards an agent
or a connector.

Revocation is best effort by nature (the AS may not offer it; a 200 is returned even for unknown
tokens); what matters is that it happens when offered and that a failure is reported, not hidden:
`revoke` says why it did not revoke when there was nothing it could do (`Revocation.reason`), and
raises when revoking was possible and failed (metadata unreachable, an error answer).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlencode

from authlib.oauth2.auth import ClientAuth

from core.errors import TokenError
from core.oauth._http import OAuthHttp, require_secure_url
from core.oauth.flow import ConnectorSettings
from core.oauth.rfc8414 import fetch_authorization_server_metadata
from core.oauth.storage import CredentialKey, OAuthStorage
from core.oauth.tokens import client_auth, load_tokens


@dataclass(frozen=True)
class Revocation:
    """What `revoke` did: revoked at `issuer`, or not, and why not (no secret in either)."""

    revoked: bool
    issuer: str = ""
    reason: str = ""


async def revoke_token(
    http: OAuthHttp, *, revocation_endpoint: str, token: str, token_type_hint: str, auth: ClientAuth
) -> None:
    require_secure_url(revocation_endpoint, "revocation_endpoint", error=TokenError)
    _, headers, body = auth.prepare(
        "POST", revocation_endpoint, {}, urlencode({"token": token, "token_type_hint": token_type_hint})
    )
    async with http.exchange(
        "revoke", "POST", revocation_endpoint, error=TokenError, form=body, headers=headers
    ) as answer:
        if answer.status != 200:
            raise TokenError(
                f"the authorization server did not revoke the {token_type_hint} (HTTP {answer.status})"
            )
        answer.detail = f"{token_type_hint} revoked"


async def revoke(
    storage: OAuthStorage, key: CredentialKey, settings: ConnectorSettings, *, http: OAuthHttp | None = None
) -> Revocation:
    """Revoke a credential's tokens at its AS when the AS offers revocation.

    Not revoked, with the reason, when there is nothing to revoke or no way to: no tokens, no client
    registration to authenticate with, no revocation endpoint. Raises (`DiscoveryError`,
    `TokenError`) when the AS's metadata cannot be read or it refuses. The refresh token is revoked
    first (RFC 7009 §2.1: that normally ends the access token too), then the access token. Removing
    the local copy is the caller's business.
    """
    http = http or OAuthHttp()
    tokens = await load_tokens(storage, key)
    if tokens is None or not tokens.issuer:
        return Revocation(False, reason="no tokens stored")
    registration = await asyncio.to_thread(storage.client_by_id, tokens.issuer, tokens.client_id)
    if registration is None or registration.client_id != tokens.client_id:
        reason = "no client registration for this credential"
        http.note("revoke", tokens.issuer, f"{reason}: not revoked")
        return Revocation(False, tokens.issuer, reason)
    metadata = await fetch_authorization_server_metadata(http, tokens.issuer)
    if not metadata.revocation_endpoint:
        reason = "the authorization server offers no revocation"
        http.note("revoke", tokens.issuer, reason)
        return Revocation(False, tokens.issuer, reason)
    auth = client_auth(registration)
    if tokens.refresh_token:
        await revoke_token(
            http,
            revocation_endpoint=metadata.revocation_endpoint,
            token=tokens.refresh_token,
            token_type_hint="refresh_token",
            auth=auth,
        )
    await revoke_token(
        http,
        revocation_endpoint=metadata.revocation_endpoint,
        token=tokens.access_token,
        token_type_hint="access_token",
        auth=auth,
    )
    return Revocation(True, tokens.issuer)
