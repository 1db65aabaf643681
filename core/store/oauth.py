"""`OAuthStorage` (core/oauth/storage.py) over the encrypted store.

Tokens, client secrets and PKCE verifiers are encrypted; a pending authorization is found by the
SHA-256 of its state, which is never stored. `save_tokens` is a compare-and-swap on the credential's
`version`; `take_pending` deletes and returns in one transaction, so a state works once, in whichever
process the browser's callback reaches. This module is part of the store package and uses the
`Store`'s package-internal helpers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core.errors import ConflictError, CredentialUnavailable
from core.oauth.storage import ClientRegistration, CredentialKey, PendingAuthorization, TokenSet
from core.store.crypto import fingerprint
from core.store.schema import CLIENT_SECRETS, CREDENTIAL_SECRETS, PENDING_SECRETS
from core.store.sql import rows as _rows

if TYPE_CHECKING:
    from core.store.db import Store

PENDING_TTL_SECONDS = 600.0
# Fields of a registration response that are secrets themselves (RFC 7591 §3.2.1, RFC 7592 §3).
_REGISTRATION_SECRETS = frozenset({"client_secret", "registration_access_token"})
_TOKEN_COLUMNS = (
    "kind",
    "access_token",
    "refresh_token",
    "token_type",
    "expires_at",
    "issued_at",
    "scopes",
    "issuer",
    "client_id",
    "resource",
    "token_endpoint",
    "fingerprint",
)


class StoreOAuthStorage:
    """The store's `OAuthStorage`. Obtain it with `Store.oauth_storage()`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"StoreOAuthStorage({self._store!r})"

    # --- client registrations -------------------------------------------------------------------

    def get_client(self, issuer: str, redirect_uri: str) -> ClientRegistration | None:
        return self._client_where("issuer = ? AND redirect_uri = ?", [issuer, redirect_uri])

    def client_by_id(self, issuer: str, client_id: str) -> ClientRegistration | None:
        return self._client_where(
            "issuer = ? AND client_id = ? ORDER BY updated_at DESC LIMIT 1", [issuer, client_id]
        )

    def _client_where(self, condition: str, params: list[str]) -> ClientRegistration | None:
        with self._store._transaction() as con:
            rows = _rows(con, f"SELECT * FROM oauth_clients WHERE {condition}", params)
            if not rows:
                return None
            row = rows[0]
            secret = self._store._open(CLIENT_SECRETS, "client_secret", row)
        return ClientRegistration(
            issuer=row["issuer"],
            client_id=row["client_id"],
            client_secret=secret.reveal() if secret else None,
            token_endpoint_auth_method=row["token_endpoint_auth_method"],
            redirect_uris=tuple(row["redirect_uris"]),
            method=row["method"],
            client_secret_expires_at=row["client_secret_expires_at"],
            registration=json.loads(row["registration"]),
        )

    def save_client(self, registration: ClientRegistration) -> None:
        document = {k: v for k, v in registration.registration.items() if k not in _REGISTRATION_SECRETS}
        now = time.time()
        with self._store._transaction() as con:
            for uri in registration.redirect_uris or ("",):
                row = {
                    "issuer": registration.issuer,
                    "redirect_uri": uri,
                    "client_id": registration.client_id,
                }
                blob = (
                    self._store._seal(
                        con, registration.client_secret, CLIENT_SECRETS.secret_context("client_secret", row)
                    )
                    if registration.client_secret
                    else None
                )
                con.execute(
                    "INSERT INTO oauth_clients VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (issuer, redirect_uri) DO UPDATE SET client_id = excluded.client_id, "
                    "client_secret = excluded.client_secret, method = excluded.method, "
                    "token_endpoint_auth_method = excluded.token_endpoint_auth_method, "
                    "redirect_uris = excluded.redirect_uris, client_secret_expires_at = excluded.client_secret_expires_at, "
                    "registration = excluded.registration, updated_at = excluded.updated_at",
                    [
                        registration.issuer,
                        uri,
                        registration.client_id,
                        blob,
                        registration.method,
                        registration.token_endpoint_auth_method,
                        list(registration.redirect_uris),
                        registration.client_secret_expires_at,
                        json.dumps(document, sort_keys=True, default=str),
                        now,
                        now,
                    ],
                )

    # --- pending authorizations -----------------------------------------------------------------

    def save_pending(self, pending: PendingAuthorization) -> None:
        state_hash = _state_hash(pending.state)
        with self._store._transaction() as con:
            con.execute("DELETE FROM pending_authorizations WHERE expires_at < ?", [time.time()])
            verifier = self._store._seal(
                con,
                pending.code_verifier,
                PENDING_SECRETS.secret_context("code_verifier", {"state_hash": state_hash}),
            )
            if con.execute(
                "SELECT 1 FROM pending_authorizations WHERE state_hash = ?", [state_hash]
            ).fetchone():
                raise ConflictError("an authorization with this state is already pending")
            con.execute(
                "INSERT INTO pending_authorizations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    state_hash,
                    pending.key.connector_id,
                    pending.key.agent_id,
                    verifier,
                    pending.issuer,
                    pending.client_id,
                    pending.redirect_uri,
                    pending.resource,
                    list(pending.scopes),
                    pending.return_to,
                    pending.token_endpoint,
                    pending.iss_parameter_supported,
                    pending.created_at,
                    pending.created_at + PENDING_TTL_SECONDS,
                ],
            )

    def take_pending(self, state: str) -> PendingAuthorization | None:
        """Consume the pending authorization for `state`: one caller, in any process, gets it."""
        with self._store._transaction() as con:
            rows = _rows(
                con,
                "DELETE FROM pending_authorizations WHERE state_hash = ? RETURNING *",
                [_state_hash(state)],
            )
        # Decrypt after the delete committed: an unreadable verifier must not leave a replayable row.
        if not rows or rows[0]["expires_at"] < time.time():
            return None
        row = rows[0]
        verifier = self._store._open(PENDING_SECRETS, "code_verifier", row)
        assert verifier is not None  # the column is NOT NULL
        return PendingAuthorization(
            state=state,
            key=CredentialKey(row["connector_id"], row["agent_id"]),
            code_verifier=verifier.reveal(),
            issuer=row["issuer"],
            client_id=row["client_id"],
            redirect_uri=row["redirect_uri"],
            resource=row["resource"],
            scopes=tuple(row["scopes"]),
            return_to=row["return_to"],
            created_at=row["created_at"],
            token_endpoint=row["token_endpoint"],
            iss_parameter_supported=row["iss_parameter_supported"],
        )

    # --- tokens ---------------------------------------------------------------------------------

    def load_tokens(self, key: CredentialKey) -> TokenSet | None:
        """The stored tokens, or None. `CredentialUnavailable` (and the credential marked
        needs_reauth) when they cannot be decrypted."""
        try:
            with self._store._transaction() as con:
                rows = _rows(
                    con,
                    "SELECT * FROM credentials WHERE connector_id = ? AND agent_id = ? "
                    "AND kind IN ('oauth', 'client_credentials')",
                    [key.connector_id, key.agent_id],
                )
                if not rows:
                    return None
                row = rows[0]
                access = self._store._open(CREDENTIAL_SECRETS, "access_token", row)
                refresh = self._store._open(CREDENTIAL_SECRETS, "refresh_token", row)
        except CredentialUnavailable as exc:
            self._store._credential_unreadable(key, exc)
            raise
        assert access is not None  # a CHECK constraint ties access_token to the oauth kinds
        return TokenSet(
            access_token=access.reveal(),
            token_type=row["token_type"] or "Bearer",
            refresh_token=refresh.reveal() if refresh else None,
            expires_at=row["expires_at"],
            issued_at=row["issued_at"] or row["updated_at"],
            scopes=tuple(row["scopes"]),
            issuer=row["issuer"],
            client_id=row["client_id"],
            resource=row["resource"],
            version=row["version"],
            token_endpoint=row["token_endpoint"],
        )

    def save_tokens(self, key: CredentialKey, tokens: TokenSet, *, expected_version: int | None) -> TokenSet:
        """Compare-and-swap on `version`: None overwrites (interactive authorization), 0 expects no
        row, n expects version n. Raises `ConflictError` when another writer won."""
        now = time.time()
        with self._store._transaction() as con:
            values = self._token_values(con, key, tokens)
            if expected_version is None:
                version = con.execute(
                    f"INSERT INTO credentials (connector_id, agent_id, {', '.join(_TOKEN_COLUMNS)}, secret, version, "
                    f"status, created_at, updated_at) VALUES (?, ?, {', '.join('?' * len(_TOKEN_COLUMNS))}, NULL, 1, "
                    "'connected', ?, ?) ON CONFLICT (connector_id, agent_id) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in _TOKEN_COLUMNS)
                    + ", secret = NULL, version = credentials.version + 1, status = 'connected', "
                    "status_reason = NULL, updated_at = excluded.updated_at RETURNING version",
                    [key.connector_id, key.agent_id, *values, now, now],
                ).fetchone()[0]
            elif expected_version == 0:
                if con.execute(
                    "SELECT 1 FROM credentials WHERE connector_id = ? AND agent_id = ?",
                    [key.connector_id, key.agent_id],
                ).fetchone():
                    raise ConflictError("a credential was stored since it was read")
                version = con.execute(
                    f"INSERT INTO credentials (connector_id, agent_id, {', '.join(_TOKEN_COLUMNS)}, version, status, "
                    f"created_at, updated_at) VALUES (?, ?, {', '.join('?' * len(_TOKEN_COLUMNS))}, 1, 'connected', "
                    "?, ?) RETURNING version",
                    [key.connector_id, key.agent_id, *values, now, now],
                ).fetchone()[0]
            else:
                updated = con.execute(
                    "UPDATE credentials SET "
                    + ", ".join(f"{c} = ?" for c in _TOKEN_COLUMNS)
                    + ", secret = NULL, version = version + 1, status = 'connected', status_reason = NULL, "
                    "last_refresh_at = ?, updated_at = ? WHERE connector_id = ? AND agent_id = ? AND version = ? "
                    "RETURNING version",
                    [*values, now, now, key.connector_id, key.agent_id, expected_version],
                ).fetchone()
                if updated is None:
                    raise ConflictError("the credential changed since it was read")
                version = updated[0]
        return replace(tokens, version=version)

    def mark_needs_reauth(self, key: CredentialKey, *, expected_version: int, reason: str) -> None:
        """Only if the credential is still the one that failed: a newer one (another worker's refresh,
        an interactive authorization) is left alone."""
        with self._store._transaction() as con:
            con.execute(
                "UPDATE credentials SET status = 'needs_reauth', status_reason = ?, updated_at = ? "
                "WHERE connector_id = ? AND agent_id = ? AND version = ?",
                [reason, time.time(), key.connector_id, key.agent_id, expected_version],
            )

    def needs_reauth(self, key: CredentialKey) -> str | None:
        with self._store._transaction() as con:
            row = con.execute(
                "SELECT status, status_reason FROM credentials WHERE connector_id = ? AND agent_id = ?",
                [key.connector_id, key.agent_id],
            ).fetchone()
        if row is None or row[0] != "needs_reauth":
            return None
        return row[1] or "the credential needs to be authorized again"

    def refresh_lock(self, key: CredentialKey) -> contextlib.AbstractContextManager[None]:
        return self._store.refresh_lock(key)

    def _token_values(self, con: Any, key: CredentialKey, tokens: TokenSet) -> list[Any]:
        auth_type = self._store._auth_type(con, key.connector_id)
        row = {
            "connector_id": key.connector_id,
            "agent_id": key.agent_id,
            "issuer": tokens.issuer,
            "client_id": tokens.client_id,
            "resource": tokens.resource,
        }
        access = self._store._seal(
            con, tokens.access_token, CREDENTIAL_SECRETS.secret_context("access_token", row)
        )
        refresh = (
            self._store._seal(
                con, tokens.refresh_token, CREDENTIAL_SECRETS.secret_context("refresh_token", row)
            )
            if tokens.refresh_token
            else None
        )
        return [
            "client_credentials" if auth_type == "client_credentials" else "oauth",
            access,
            refresh,
            tokens.token_type,
            tokens.expires_at,
            tokens.issued_at,
            list(tokens.scopes),
            tokens.issuer,
            tokens.client_id,
            tokens.resource,
            tokens.token_endpoint,
            fingerprint(tokens.access_token),
        ]


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()
