"""Credentials: one row per (connector, agent) — a static secret (bearer, API key) or OAuth tokens —
with health (status, last refresh, last 401/403).

Secrets are bound by associated data to (connector, agent) and, for tokens, to the issuer, client
and resource they were obtained for: a ciphertext moved to another row, or a row rebound to another
resource, fails to decrypt, and the credential is marked needs_reauth (never another row tried).
Token writes are a compare-and-swap on `version` (see `save_tokens`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from core.auth_schemes import AUTH_SCHEMES
from core.errors import ConfigurationError, ConflictError, CredentialUnavailable, NotFoundError
from core.models import CredentialInfo
from core.oauth.storage import CredentialKey, TokenSet
from core.store.crypto import Secret, fingerprint
from core.store.engine import Tx
from core.store.repositories.base import Repository, owner_filter, require
from core.store.schema import CREDENTIAL_SECRETS

log = logging.getLogger(__name__)

CREDENTIAL_STATUSES = ("connected", "needs_reauth", "error")
# The credential kind of each auth type whose secret the operator types in (`core.auth_schemes`).
_STATIC_KIND = {s.name: s.credential_kind for s in AUTH_SCHEMES.values() if s.static_secret}
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
_INFO_SELECT = (
    "SELECT c.name AS connector, a.name AS agent, cr.kind, cr.status, cr.status_reason AS reason, "
    "cr.fingerprint, cr.expires_at, cr.scopes, cr.identity, cr.last_refresh_at, cr.last_401_at, cr.last_403_at "
    "FROM credentials cr LEFT JOIN connectors c ON c.id = cr.connector_id "
    "LEFT JOIN agents a ON a.id = cr.agent_id AND cr.agent_id <> ''"
)
_KEY = "connector_id = ? AND agent_id = ?"
# A credential's stamp (see `stamp`): what changes when it is replaced or removed, not on a refresh.
STAMP_COLUMNS = "kind, created_at, CASE WHEN kind IN ('bearer', 'api_key') THEN fingerprint END"


class CredentialRepository(Repository):
    # --- which credential -----------------------------------------------------------------------

    def resolve(self, connector_id: str, agent_id: str | None) -> CredentialKey:
        """Which credential a call to the connector as the agent uses. A shared connector always uses
        its shared credential; a per_agent one only the agent's own — never another agent's, never
        the shared one."""
        with self._store.tx() as tx:
            mode = self._store.connectors.credential_mode(tx, connector_id)
            if mode is None:
                raise NotFoundError(f"no connector {connector_id!r}")
            if mode == "shared":
                return CredentialKey(connector_id, "")
            if agent_id is None:
                raise ConfigurationError(
                    f"connector {connector_id!r} uses per-agent credentials: name an agent"
                )
            return CredentialKey(connector_id, agent_id)

    # --- static secrets -------------------------------------------------------------------------

    def save_secret(self, key: CredentialKey, secret: str, *, identity: str | None = None) -> CredentialInfo:
        """Store a bearer token or API key (by the connector's auth type), replacing what was there."""
        if not secret:
            raise ConfigurationError("the secret is empty")
        with self._store.tx() as tx:
            auth_type = self._store.connectors.auth_type(tx, key.connector_id)
            kind = _STATIC_KIND.get(auth_type or "")
            if kind is None:
                raise ConfigurationError(
                    f"connector {key.connector_id!r} uses {auth_type} authentication, "
                    "which takes no static secret"
                )
            now = time.time()
            row = {**_binding(key), "issuer": "", "client_id": "", "resource": ""}
            blob = self._store.seal(tx, secret, CREDENTIAL_SECRETS.secret_context("secret", row))
            tx.execute(
                "INSERT INTO credentials (connector_id, agent_id, kind, secret, identity, fingerprint, version, "
                "status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, 'connected', ?, ?) "
                "ON CONFLICT (connector_id, agent_id) DO UPDATE SET kind = excluded.kind, secret = excluded.secret, "
                "access_token = NULL, refresh_token = NULL, token_type = NULL, expires_at = NULL, issued_at = NULL, "
                "scopes = ?::VARCHAR[], issuer = '', client_id = '', resource = '', token_endpoint = '', "
                "identity = excluded.identity, fingerprint = excluded.fingerprint, "
                "version = credentials.version + 1, status = 'connected', status_reason = NULL, "
                "updated_at = excluded.updated_at",
                [key.connector_id, key.agent_id, kind, blob, identity, fingerprint(secret), now, now, []],
            )
            return self._info(tx, key)  # type: ignore[return-value]

    def load_secret(self, key: CredentialKey) -> Secret:
        """The bearer token or API key. `NotFoundError` when there is none; `CredentialUnavailable`
        (and the credential marked needs_reauth) when it cannot be decrypted."""
        try:
            with self._store.tx() as tx:
                row = tx.one(
                    f"SELECT * FROM credentials WHERE {_KEY} AND kind IN ('bearer', 'api_key')",
                    [key.connector_id, key.agent_id],
                )
                if row is None:
                    raise NotFoundError("no stored secret for this credential", hint="enter the secret")
                return self._store.unseal(CREDENTIAL_SECRETS, "secret", row)  # type: ignore[return-value]
        except CredentialUnavailable as exc:
            self.unreadable(key, exc)
            raise

    # --- OAuth tokens ---------------------------------------------------------------------------

    def load_tokens(self, key: CredentialKey) -> TokenSet | None:
        """The stored tokens, or None. `CredentialUnavailable` (and the credential marked
        needs_reauth) when they cannot be decrypted."""
        try:
            with self._store.tx() as tx:
                row = tx.one(
                    f"SELECT * FROM credentials WHERE {_KEY} AND kind IN ('oauth', 'client_credentials')",
                    [key.connector_id, key.agent_id],
                )
                if row is None:
                    return None
                access = self._store.unseal(CREDENTIAL_SECRETS, "access_token", row)
                refresh = self._store.unseal(CREDENTIAL_SECRETS, "refresh_token", row)
        except CredentialUnavailable as exc:
            self.unreadable(key, exc)
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
        marks = ", ".join("?" * len(_TOKEN_COLUMNS))
        with self._store.tx() as tx:
            values = self._token_values(tx, key, tokens)
            if expected_version is None:
                version = tx.scalar(
                    f"INSERT INTO credentials (connector_id, agent_id, {', '.join(_TOKEN_COLUMNS)}, secret, "
                    f"version, status, created_at, updated_at) VALUES (?, ?, {marks}, NULL, 1, 'connected', ?, ?) "
                    "ON CONFLICT (connector_id, agent_id) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in _TOKEN_COLUMNS)
                    + ", secret = NULL, version = credentials.version + 1, status = 'connected', "
                    "status_reason = NULL, updated_at = excluded.updated_at RETURNING version",
                    [key.connector_id, key.agent_id, *values, now, now],
                )
            elif expected_version == 0:
                if tx.scalar(f"SELECT 1 FROM credentials WHERE {_KEY}", [key.connector_id, key.agent_id]):
                    raise ConflictError("a credential was stored since it was read")
                version = tx.scalar(
                    f"INSERT INTO credentials (connector_id, agent_id, {', '.join(_TOKEN_COLUMNS)}, version, "
                    f"status, created_at, updated_at) VALUES (?, ?, {marks}, 1, 'connected', ?, ?) "
                    "RETURNING version",
                    [key.connector_id, key.agent_id, *values, now, now],
                )
            else:
                version = tx.scalar(
                    "UPDATE credentials SET "
                    + ", ".join(f"{c} = ?" for c in _TOKEN_COLUMNS)
                    + ", secret = NULL, version = version + 1, status = 'connected', status_reason = NULL, "
                    f"last_refresh_at = ?, updated_at = ? WHERE {_KEY} AND version = ? RETURNING version",
                    [*values, now, now, key.connector_id, key.agent_id, expected_version],
                )
                if version is None:
                    raise ConflictError("the credential changed since it was read")
        return replace(tokens, version=version)

    def mark_needs_reauth(self, key: CredentialKey, *, expected_version: int, reason: str) -> None:
        """Only if the credential is still the one that failed: a newer one (another worker's refresh,
        an interactive authorization) is left alone."""
        with self._store.tx() as tx:
            tx.execute(
                "UPDATE credentials SET status = 'needs_reauth', status_reason = ?, updated_at = ? "
                f"WHERE {_KEY} AND version = ?",
                [reason, time.time(), key.connector_id, key.agent_id, expected_version],
            )

    def needs_reauth(self, key: CredentialKey) -> str | None:
        with self._store.tx() as tx:
            row = tx.one(
                f"SELECT status, status_reason FROM credentials WHERE {_KEY}",
                [key.connector_id, key.agent_id],
            )
        if row is None or row["status"] != "needs_reauth":
            return None
        return row["status_reason"] or "the credential needs to be authorized again"

    # --- health and bookkeeping -----------------------------------------------------------------

    def stamp(self, key: CredentialKey) -> tuple | None:
        """Changes when the credential is replaced or removed (a new key, a new authorization after a
        disconnect) but not on a token refresh: lets a process notice another process's change."""
        with self._store.tx() as tx:
            row = tx.execute(
                f"SELECT {STAMP_COLUMNS} FROM credentials WHERE {_KEY}",
                [key.connector_id, key.agent_id],
            ).fetchone()
        return tuple(row) if row else None

    def info(self, key: CredentialKey) -> CredentialInfo | None:
        """Status, expiry and fingerprint of one credential (never its secret)."""
        with self._store.tx() as tx:
            return self._info(tx, key)

    def health(self, connector_id: str | None = None, agent_id: str | None = None) -> list[CredentialInfo]:
        """Every stored credential's health: status, expiry, last refresh, last 401/403."""
        condition, params = owner_filter("cr", connector_id, agent_id)
        sql = _INFO_SELECT + condition
        with self._store.tx() as tx:
            return [_info_from_row(r) for r in tx.rows(sql + " ORDER BY c.name, a.name NULLS FIRST", params)]

    def delete_all(self, connector_id: str) -> int:
        """Remove every credential of a connector (shared and per agent); returns how many."""
        with self._store.tx() as tx:
            return len(
                tx.execute(
                    "DELETE FROM credentials WHERE connector_id = ? RETURNING 1", [connector_id]
                ).fetchall()
            )

    def delete(self, key: CredentialKey) -> bool:
        with self._store.tx() as tx:
            return bool(
                tx.execute(
                    f"DELETE FROM credentials WHERE {_KEY} RETURNING 1", [key.connector_id, key.agent_id]
                ).fetchall()
            )

    def set_status(self, key: CredentialKey, status: str, reason: str | None = None) -> None:
        require(status, CREDENTIAL_STATUSES, "status")
        with self._store.tx() as tx:
            tx.execute(
                f"UPDATE credentials SET status = ?, status_reason = ?, updated_at = ? WHERE {_KEY}",
                [status, reason, time.time(), key.connector_id, key.agent_id],
            )

    def set_identity(self, key: CredentialKey, identity: str | None) -> None:
        """Who the credential authenticates as, when the server tells (shown in the dashboard)."""
        with self._store.tx() as tx:
            tx.execute(
                f"UPDATE credentials SET identity = ? WHERE {_KEY}",
                [identity, key.connector_id, key.agent_id],
            )

    def record_rejection(self, key: CredentialKey, http_status: int) -> None:
        """Remember when the server last answered 401 or 403 to this credential."""
        column = {401: "last_401_at", 403: "last_403_at"}.get(http_status)
        if column is None:
            raise ConfigurationError(f"only 401 and 403 are recorded, not {http_status}")
        with self._store.tx() as tx:
            tx.execute(
                f"UPDATE credentials SET {column} = ? WHERE {_KEY}",
                [time.time(), key.connector_id, key.agent_id],
            )

    def unreadable(self, key: CredentialKey, exc: CredentialUnavailable) -> None:
        # A security event: the row was tampered with, moved, or its key is gone. Fail closed and
        # make the operator re-authorize; never try other rows or keys.
        log.warning(
            "credential %s/%s is unreadable: %s", key.connector_id, key.agent_id or "(shared)", exc.message
        )
        self.set_status(key, "needs_reauth", exc.message)

    def _info(self, tx: Tx, key: CredentialKey) -> CredentialInfo | None:
        row = tx.one(
            _INFO_SELECT + " WHERE cr.connector_id = ? AND cr.agent_id = ?", [key.connector_id, key.agent_id]
        )
        return _info_from_row(row) if row else None

    def _token_values(self, tx: Tx, key: CredentialKey, tokens: TokenSet) -> list[Any]:
        auth_type = self._store.connectors.auth_type(tx, key.connector_id)
        row = {
            **_binding(key),
            "issuer": tokens.issuer,
            "client_id": tokens.client_id,
            "resource": tokens.resource,
        }
        seal = self._store.seal
        access = seal(tx, tokens.access_token, CREDENTIAL_SECRETS.secret_context("access_token", row))
        refresh = (
            seal(tx, tokens.refresh_token, CREDENTIAL_SECRETS.secret_context("refresh_token", row))
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


def _binding(key: CredentialKey) -> dict[str, str]:
    return {"connector_id": key.connector_id, "agent_id": key.agent_id}


def _info_from_row(row: dict[str, Any]) -> CredentialInfo:
    row["scopes"] = tuple(row["scopes"] or ())
    row["connector"] = row["connector"] or "<deleted connector>"
    return CredentialInfo(**row)
