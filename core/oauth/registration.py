"""Which client Switchboard is at an authorization server: the registration ladder (A-13), per issuer.

The operator's pre-registered client → a Client ID Metadata Document when the AS supports it and a
CIMD URL is configured → RFC 7591 DCR (one registration in flight per issuer and redirect URI: an
asyncio lock in the event loop, and the storage's per-key lock (`refresh_lock` under a key no
credential has) for threads and processes sharing the storage) → a `RegistrationError` asking the
operator for a pre-registered client. A registration is stored under its issuer and never presented
to another one; a pre-registered client pinned to an issuer (`ConnectorSettings.client_issuer`) is
refused for any other.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import TYPE_CHECKING

from core.errors import RegistrationError
from core.oauth._http import OAuthHttp
from core.oauth.cimd import cimd_registration
from core.oauth.rfc7591 import choose_auth_method, client_metadata, register_client
from core.oauth.rfc8414 import AuthorizationServerMetadata
from core.oauth.storage import ClientRegistration, CredentialKey, OAuthStorage
from core.oauth.tokens import storage_lock

if TYPE_CHECKING:  # flow.py imports this module; the types are only annotations here
    from core.oauth.flow import ConnectorSettings, Discovery

_registration_locks: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[int, str, str], asyncio.Lock]
] = weakref.WeakKeyDictionary()


async def ensure_client(
    discovery: Discovery, settings: ConnectorSettings, storage: OAuthStorage, *, http: OAuthHttp | None = None
) -> ClientRegistration:
    """The client registration to use with this discovery's issuer (the ladder in the module docstring)."""
    http = http or OAuthHttp()
    metadata = discovery.metadata
    issuer = metadata.issuer
    if settings.client_id:
        registration = _pre_registered(settings, metadata)
        if registration is not None:
            await asyncio.to_thread(storage.save_client, registration)
            http.note("register", issuer, "using the pre-registered client")
            return registration
    stored = await _stored_client(storage, issuer, settings.redirect_uri)
    if stored is not None:
        return stored
    if metadata.client_id_metadata_document_supported and settings.client_metadata_url:
        registration = cimd_registration(issuer, settings.client_metadata_url, settings.redirect_uri)
        await asyncio.to_thread(storage.save_client, registration)
        http.note("register", issuer, "using our client ID metadata document")
        return registration
    if metadata.registration_endpoint:
        locks = _registration_locks.setdefault(asyncio.get_running_loop(), {})
        async with locks.setdefault((id(storage), issuer, settings.redirect_uri), asyncio.Lock()):
            stored = await _stored_client(
                storage, issuer, settings.redirect_uri
            )  # registered while we waited
            if stored is not None:
                return stored
            # Other processes sharing the storage: the storage's lock, taken off the event loop.
            async with storage_lock(storage, _registration_key(issuer, settings.redirect_uri)):
                stored = await _stored_client(storage, issuer, settings.redirect_uri)  # another process did
                if stored is not None:
                    return stored
                request = client_metadata(
                    client_name=settings.client_name,
                    redirect_uris=[settings.redirect_uri],
                    token_endpoint_auth_method=choose_auth_method(
                        metadata.token_endpoint_auth_methods_supported
                    ),
                )
                registration = await register_client(
                    http,
                    issuer=issuer,
                    registration_endpoint=metadata.registration_endpoint,
                    metadata=request,
                )
                await asyncio.to_thread(storage.save_client, registration)
                return registration
    raise RegistrationError(
        f"the authorization server {issuer} offers no way to register Switchboard automatically "
        "(no dynamic client registration"
        + (
            ", and no client ID metadata document is configured)"
            if metadata.client_id_metadata_document_supported
            else ")"
        ),
        hint=f"register a client at {issuer} with redirect URI {settings.redirect_uri} and enter its "
        "client_id (and secret) in the connector's settings",
    )


def _registration_key(issuer: str, redirect_uri: str) -> CredentialKey:
    """The key of the storage lock under which (issuer, redirect URI) is registered: no credential
    has it (connector ids are hex)."""
    return CredentialKey(f"dcr:{issuer}", redirect_uri)


def _pre_registered(
    settings: ConnectorSettings, metadata: AuthorizationServerMetadata
) -> ClientRegistration | None:
    if settings.client_issuer and settings.client_issuer != metadata.issuer:
        raise RegistrationError(
            f"the pre-registered client is for {settings.client_issuer}, but the server now names the "
            f"authorization server {metadata.issuer}",
            hint="its credentials are not sent to another authorization server; register a client there and "
            "update the connector",
        )
    method = settings.client_auth_method
    if method is None:
        supported = metadata.token_endpoint_auth_methods_supported
        if not settings.client_secret:
            method = "none"
        elif (
            supported is not None
            and "client_secret_basic" not in supported
            and "client_secret_post" in supported
        ):
            method = "client_secret_post"
        else:
            method = "client_secret_basic"
    return ClientRegistration(
        issuer=metadata.issuer,
        client_id=settings.client_id or "",
        client_secret=settings.client_secret,
        token_endpoint_auth_method=method,
        redirect_uris=(settings.redirect_uri,),
        method="pre_registered",
    )


async def _stored_client(storage: OAuthStorage, issuer: str, redirect_uri: str) -> ClientRegistration | None:
    stored = await asyncio.to_thread(storage.get_client, issuer, redirect_uri)
    if stored is None or stored.issuer != issuer or stored.method == "pre_registered":
        return None  # pre-registered clients come from the settings, which may have changed
    if stored.client_secret_expires_at and stored.client_secret_expires_at <= time.time():
        return None
    return stored
