"""`OAuthStorage` (core/oauth/storage.py) over the store's repositories.

Tokens, client secrets and PKCE verifiers are encrypted; a pending authorization is found by the
SHA-256 of its state, which is never stored. `save_tokens` is a compare-and-swap on the credential's
`version`; `take_pending` deletes and returns in one statement, so a state works once, in whichever
process the browser's callback reaches; `refresh_lock` is the store's per-credential lock (flock
on DuckDB, an advisory lock on PostgreSQL).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from core.oauth.storage import ClientRegistration, CredentialKey, PendingAuthorization, TokenSet
from core.store.repositories.pending import PENDING_TTL_SECONDS

if TYPE_CHECKING:
    from core.store.db import Store

__all__ = ["PENDING_TTL_SECONDS", "StoreOAuthStorage"]


class StoreOAuthStorage:
    """The store's `OAuthStorage`. Obtain it with `Store.oauth_storage()`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"StoreOAuthStorage({self._store!r})"

    def get_client(self, issuer: str, redirect_uri: str) -> ClientRegistration | None:
        return self._store.registrations.get(issuer, redirect_uri)

    def client_by_id(self, issuer: str, client_id: str) -> ClientRegistration | None:
        return self._store.registrations.by_client_id(issuer, client_id)

    def save_client(self, registration: ClientRegistration) -> None:
        self._store.registrations.save(registration)

    def save_pending(self, pending: PendingAuthorization) -> None:
        self._store.pending.save(pending)

    def take_pending(self, state: str) -> PendingAuthorization | None:
        return self._store.pending.take(state)

    def load_tokens(self, key: CredentialKey) -> TokenSet | None:
        return self._store.credentials.load_tokens(key)

    def save_tokens(self, key: CredentialKey, tokens: TokenSet, *, expected_version: int | None) -> TokenSet:
        return self._store.credentials.save_tokens(key, tokens, expected_version=expected_version)

    def mark_needs_reauth(self, key: CredentialKey, *, expected_version: int, reason: str) -> None:
        self._store.credentials.mark_needs_reauth(key, expected_version=expected_version, reason=reason)

    def needs_reauth(self, key: CredentialKey) -> str | None:
        return self._store.credentials.needs_reauth(key)

    def refresh_lock(self, key: CredentialKey) -> contextlib.AbstractContextManager[None]:
        return self._store.refresh_lock(key)
