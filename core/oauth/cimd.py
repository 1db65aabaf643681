"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, MCP 2025-11-25).

The client_id is an https URL with a path that serves the client's metadata; the authorization server
fetches it, so no registration request is sent. We use it only when the AS advertises
`client_id_metadata_document_supported: true` and the operator configured the URL (it has to be
publicly reachable, which a localhost dashboard usually is not). `client_metadata_document` produces
the document to publish at that URL; its `client_id` equals the URL exactly (A-14).
"""

from __future__ import annotations

from core.errors import ConfigurationError
from core.net.urls import parse_http_url
from core.oauth.storage import ClientRegistration


def validate_client_id_url(url: str) -> str:
    what = "a client ID metadata document URL"
    parsed = parse_http_url(url, what)
    if parsed.scheme != "https" or parsed.path in ("", "/"):
        raise ConfigurationError(f"{what} must be https with a path: {parsed.shown}")
    return url


def client_metadata_document(
    client_id_url: str, *, client_name: str, redirect_uris: list[str], application_type: str = "native"
) -> dict:
    return {
        "client_id": validate_client_id_url(client_id_url),
        "client_name": client_name,
        "redirect_uris": list(redirect_uris),
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": application_type,
    }


def cimd_registration(issuer: str, client_id_url: str, redirect_uri: str) -> ClientRegistration:
    return ClientRegistration(
        issuer=issuer,
        client_id=validate_client_id_url(client_id_url),
        token_endpoint_auth_method="none",
        redirect_uris=(redirect_uri,),
        method="cimd",
    )
