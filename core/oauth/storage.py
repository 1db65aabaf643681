"""What OAuth needs to remember, and the small interface through which it remembers it.

The OAuth code never touches DuckDB: it reads and writes registrations, pending authorizations and
tokens through `OAuthStorage`. `core.store` implements it over the encrypted store;
`MemoryOAuthStorage` implements it in memory for the conformance entry point and unit tests.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

from core.errors import ConflictError


@dataclass(frozen=True)
class CredentialKey:
    """Which credential: one per (connector, agent); agent "" is the connector's shared credential.

    Tokens are also bound to the canonical resource and the issuer they were obtained for: a token is
    never sent to another resource (A-29) and a registration never to another issuer (A-16).
    """

    connector_id: str
    agent_id: str = ""


@dataclass(frozen=True, repr=False)
class ClientRegistration:
    """A client registered at one authorization server (kept per issuer, never sent to another)."""

    issuer: str
    client_id: str
    client_secret: str | None = None
    token_endpoint_auth_method: str = "none"
    redirect_uris: tuple[str, ...] = ()
    method: str = "dcr"  # "pre_registered" | "cimd" | "dcr"
    client_secret_expires_at: int | None = None
    registration: dict = field(default_factory=dict)  # what the AS returned (no secret in it)

    def __repr__(self) -> str:
        return (
            f"ClientRegistration(issuer={self.issuer!r}, client_id={self.client_id!r}, "
            f"method={self.method!r}, secret={'<redacted>' if self.client_secret else None})"
        )


@dataclass(frozen=True, repr=False)
class PendingAuthorization:
    """One authorization in flight, named by its `state` handle. Single use; expires."""

    state: str
    key: CredentialKey
    code_verifier: str
    issuer: str
    client_id: str
    redirect_uri: str
    resource: str
    scopes: tuple[str, ...] = ()
    return_to: str = ""  # where the operator goes back to after the callback (a local path)
    created_at: float = field(default_factory=time.time)
    # Where the code is exchanged, and whether the AS promised `iss` (RFC 9207), as discovered when the
    # authorization started: the callback may reach another process, which must not rediscover them.
    token_endpoint: str = ""
    iss_parameter_supported: bool = False

    def __repr__(self) -> str:
        return (
            f"PendingAuthorization(key={self.key!r}, issuer={self.issuer!r}, <state and verifier redacted>)"
        )


@dataclass(frozen=True, repr=False)
class TokenSet:
    """Tokens for one credential. `version` increases on every write (compare-and-swap)."""

    access_token: str
    token_type: str = "Bearer"
    refresh_token: str | None = None
    expires_at: float | None = None  # absolute epoch seconds; None = no expiry given
    issued_at: float = field(default_factory=time.time)
    scopes: tuple[str, ...] = ()
    issuer: str = ""
    client_id: str = ""
    resource: str = ""
    version: int = 0
    token_endpoint: str = ""  # where this credential is refreshed (the issuing AS's token endpoint)

    def __repr__(self) -> str:
        return (
            f"TokenSet(issuer={self.issuer!r}, resource={self.resource!r}, expires_at={self.expires_at!r}, "
            f"scopes={self.scopes!r}, version={self.version}, <tokens redacted>)"
        )


class OAuthStorage(Protocol):
    def get_client(self, issuer: str, redirect_uri: str) -> ClientRegistration | None: ...

    def client_by_id(self, issuer: str, client_id: str) -> ClientRegistration | None:
        """The registration a credential's tokens were issued to, whichever redirect URI it was
        registered with (the CLI's loopback port differs from the dashboard's callback)."""
        ...

    def save_client(self, registration: ClientRegistration) -> None: ...

    def save_pending(self, pending: PendingAuthorization) -> None: ...

    def take_pending(self, state: str) -> PendingAuthorization | None:
        """Return and consume the pending authorization (atomically: a second take returns None)."""
        ...

    def load_tokens(self, key: CredentialKey) -> TokenSet | None: ...

    def save_tokens(self, key: CredentialKey, tokens: TokenSet, *, expected_version: int | None) -> TokenSet:
        """Store tokens if the stored version still equals `expected_version` (None: no row expected
        or overwrite unconditionally after an interactive authorization). Returns the stored set with
        its new version; raises `ConflictError` when another writer won."""
        ...

    def mark_needs_reauth(self, key: CredentialKey, *, expected_version: int, reason: str) -> None: ...

    def needs_reauth(self, key: CredentialKey) -> str | None:
        """The reason given to `mark_needs_reauth`, until the next `save_tokens` for this key."""
        ...

    def refresh_lock(self, key: CredentialKey) -> contextlib.AbstractContextManager[None]:
        """Exclusive across threads and processes sharing this storage, for read-refresh-write.

        The OAuth code enters and exits it on one worker thread (never on the event loop)."""
        ...


class MemoryOAuthStorage:
    """In-process `OAuthStorage` for the conformance entry point and unit tests."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], ClientRegistration] = {}
        self._pending: dict[str, PendingAuthorization] = {}
        self._tokens: dict[CredentialKey, TokenSet] = {}
        self._needs_reauth: dict[CredentialKey, str] = {}
        self._mutex = threading.Lock()
        self._locks: dict[CredentialKey, threading.Lock] = {}

    def get_client(self, issuer: str, redirect_uri: str) -> ClientRegistration | None:
        return self._clients.get((issuer, redirect_uri))

    def client_by_id(self, issuer: str, client_id: str) -> ClientRegistration | None:
        return next(
            (c for c in reversed(self._clients.values()) if c.issuer == issuer and c.client_id == client_id),
            None,
        )

    def save_client(self, registration: ClientRegistration) -> None:
        for uri in registration.redirect_uris or ("",):
            self._clients[(registration.issuer, uri)] = registration

    def save_pending(self, pending: PendingAuthorization) -> None:
        self._pending[pending.state] = pending

    def take_pending(self, state: str) -> PendingAuthorization | None:
        with self._mutex:
            return self._pending.pop(state, None)

    def load_tokens(self, key: CredentialKey) -> TokenSet | None:
        return self._tokens.get(key)

    def save_tokens(self, key: CredentialKey, tokens: TokenSet, *, expected_version: int | None) -> TokenSet:
        with self._mutex:
            current = self._tokens.get(key)
            if expected_version is not None and (current.version if current else 0) != expected_version:
                raise ConflictError("the credential changed since it was read")
            stored = replace(tokens, version=(current.version if current else 0) + 1)
            self._tokens[key] = stored
            self._needs_reauth.pop(key, None)
            return stored

    def mark_needs_reauth(self, key: CredentialKey, *, expected_version: int, reason: str) -> None:
        with self._mutex:
            current = self._tokens.get(key)
            if current is not None and current.version == expected_version:
                self._needs_reauth[key] = reason

    def needs_reauth(self, key: CredentialKey) -> str | None:
        return self._needs_reauth.get(key)

    @contextlib.contextmanager
    def refresh_lock(self, key: CredentialKey) -> Iterator[None]:
        with self._mutex:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield
