"""RFC 7591 dynamic client registration.

What we ask for: `client_name`, our `redirect_uris`, `grant_types` authorization_code + refresh_token,
`response_types` code, `application_type` ("native" for loopback redirect URIs, else "web") and a
`token_endpoint_auth_method` chosen from what the AS supports, preferring `none` (we are a public
client protected by PKCE), then `client_secret_basic`, then `client_secret_post`.

What we keep: whatever the AS answers (RFC 7591 §3.2.1 lets it replace requested values): its
`client_id`, `client_secret`, `token_endpoint_auth_method`, `redirect_uris`. The registration is
stored per issuer and never used with another authorization server.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from core.errors import RegistrationError
from core.oauth._http import (
    OAuthHttp,
    is_loopback_host,
    require_secure_url,
    safe_description,
    short_error_code,
)
from core.oauth.storage import ClientRegistration

SUPPORTED_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")


def application_type(redirect_uris: list[str]) -> str:
    return "native" if all(is_loopback_host(urlsplit(u).hostname) for u in redirect_uris) else "web"


def choose_auth_method(supported: tuple[str, ...] | None) -> str:
    if supported is None:  # unknown: ask for a public client; the AS answers with what it assigned
        return "none"
    for method in SUPPORTED_AUTH_METHODS:
        if method in supported:
            return method
    raise RegistrationError(
        f"the authorization server supports none of our token endpoint auth methods ({', '.join(supported)})",
        hint="register a client manually and configure its client_id and secret on the connector",
    )


def client_metadata(
    *, client_name: str, redirect_uris: list[str], token_endpoint_auth_method: str, scope: str | None = None
) -> dict:
    metadata = {
        "client_name": client_name,
        "redirect_uris": list(redirect_uris),
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": token_endpoint_auth_method,
        "application_type": application_type(redirect_uris),
    }
    if scope:
        metadata["scope"] = scope
    return metadata


async def register_client(
    http: OAuthHttp,
    *,
    issuer: str,
    registration_endpoint: str,
    metadata: dict,
    initial_access_token: str | None = None,
) -> ClientRegistration:
    require_secure_url(registration_endpoint, "registration_endpoint", error=RegistrationError)
    headers = {"Authorization": f"Bearer {initial_access_token}"} if initial_access_token else {}
    async with http.exchange(
        "register",
        "POST",
        registration_endpoint,
        error=RegistrationError,
        json_body=metadata,
        headers=headers,
    ) as answer:
        document = answer.json_object()
        if answer.status not in (200, 201):
            error = short_error_code(document.get("error")) if document else "unknown"
            description = safe_description(document.get("error_description")) if document else ""
            raise RegistrationError(
                f"the authorization server {issuer} refused the registration (HTTP {answer.status}, {error}"
                + (f": {description}" if description else "")
                + ")",
                hint="configure a pre-registered client_id (and secret) for this server on the connector",
            )
        if document is None or not isinstance(document.get("client_id"), str) or not document["client_id"]:
            raise RegistrationError(
                f"the registration answer of {issuer} is not a valid client information document"
            )
        secret = document.get("client_secret")
        method = document.get("token_endpoint_auth_method", metadata["token_endpoint_auth_method"])
        if method not in SUPPORTED_AUTH_METHODS:
            raise RegistrationError(
                f"the authorization server {issuer} assigned the unsupported "
                f"token endpoint auth method {short_error_code(method)}"
            )
        if method != "none" and not isinstance(secret, str):
            raise RegistrationError(
                f"the authorization server {issuer} assigned {method} but returned no secret"
            )
        redirect_uris = document.get("redirect_uris")
        if isinstance(redirect_uris, list) and not set(metadata["redirect_uris"]) <= set(redirect_uris):
            raise RegistrationError(
                f"the authorization server {issuer} did not register our redirect URI",
                hint="register a client manually with this redirect URI",
            )
        expires = document.get("client_secret_expires_at")
        answer.detail = f"client registered ({method})"
        return ClientRegistration(
            issuer=issuer,
            client_id=document["client_id"],
            client_secret=secret if isinstance(secret, str) and method != "none" else None,
            token_endpoint_auth_method=method,
            redirect_uris=tuple(redirect_uris)
            if isinstance(redirect_uris, list)
            else tuple(metadata["redirect_uris"]),
            method="dcr",
            client_secret_expires_at=expires if isinstance(expires, int) and expires > 0 else None,
            registration={
                k: v for k, v in document.items() if k not in ("client_secret", "registration_access_token")
            },
        )
