"""Connectors: one MCP server each, with its discovery results and an optional pre-registered client
secret (encrypted, bound to the connector's id)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from core.auth_schemes import AUTH_TYPES
from core.errors import ConfigurationError, NotFoundError
from core.models import CREDENTIAL_MODES
from core.store.crypto import Secret
from core.store.engine import Tx
from core.store.records import Connector
from core.store.repositories.base import Repository, delete_owned, new_id, require
from core.store.schema import CONNECTOR_SECRETS

CONNECTOR_STATUSES = ("never_synced", "connected", "needs_auth", "error")
REGISTRATION_METHODS = ("pre_registered", "cimd", "dcr")
FIELDS = frozenset(
    {
        "name",
        "url",
        "auth_type",
        "header_name",
        "credential_mode",
        "scopes",
        "allow_plain_pkce",
        "prm",
        "as_metadata",
        "issuer",
        "client_id",
        "client_secret",
        "registration_method",
        "status",
        "last_sync_at",
        "last_error",
    }
)
_JSON_FIELDS = frozenset({"prm", "as_metadata"})
_COLUMNS = (
    "id, name, url, auth_type, header_name, credential_mode, scopes, allow_plain_pkce, prm, as_metadata, "
    "issuer, client_id, registration_method, status, last_sync_at, last_error, created_at, updated_at"
)
_SELECT = (
    # Joins with pre-aggregated subqueries: planned far faster than correlated subqueries.
    f"SELECT {', '.join('c.' + c for c in _COLUMNS.split(', '))}, "
    "c.client_secret IS NOT NULL AS has_client_secret, "
    "coalesce(t.tool_count, 0)::INTEGER AS tool_count, cr.connector_id IS NOT NULL AS has_shared_credential "
    "FROM connectors c "
    "LEFT JOIN (SELECT connector_id, max(tool_count) AS tool_count FROM tool_snapshots WHERE is_current "
    "GROUP BY connector_id) t ON t.connector_id = c.id "
    "LEFT JOIN (SELECT connector_id FROM credentials WHERE agent_id = '') cr ON cr.connector_id = c.id"
)


class ConnectorRepository(Repository):
    def create(
        self,
        name: str,
        url: str,
        auth_type: str,
        *,
        credential_mode: str = "shared",
        header_name: str | None = None,
        scopes: Sequence[str] | None = None,
        allow_plain_pkce: bool = False,
        client_id: str | None = None,
        client_secret: str | None = None,
        registration_method: str | None = None,
    ) -> Connector:
        require(auth_type, AUTH_TYPES, "auth_type")
        require(credential_mode, CREDENTIAL_MODES, "credential_mode")
        if registration_method is not None:
            require(registration_method, REGISTRATION_METHODS, "registration_method")
        connector_id = new_id()
        now = time.time()
        with self._store.tx() as tx:
            if tx.scalar("SELECT 1 FROM connectors WHERE name = ?", [name]):
                raise ConfigurationError(f"a connector named {name!r} already exists")
            tx.execute(
                "INSERT INTO connectors (id, name, url, auth_type, header_name, credential_mode, scopes, "
                "allow_plain_pkce, client_id, registration_method, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    connector_id,
                    name,
                    url,
                    auth_type,
                    header_name,
                    credential_mode,
                    list(scopes) if scopes is not None else None,
                    allow_plain_pkce,
                    client_id,
                    registration_method,
                    now,
                    now,
                ],
            )
            if client_secret is not None:
                self._set_secret(tx, connector_id, client_secret)
            return self._get(tx, connector_id)

    def get(self, connector_id: str) -> Connector:
        with self._store.tx() as tx:
            return self._get(tx, connector_id)

    def named(self, name: str) -> Connector:
        with self._store.tx() as tx:
            found = tx.scalar("SELECT id FROM connectors WHERE name = ?", [name])
            if found is None:
                raise _missing(name)
            return self._get(tx, found)

    def list(self) -> list[Connector]:
        with self._store.tx() as tx:
            return [_from_row(r) for r in tx.rows(_SELECT + " ORDER BY c.name")]

    def update(self, connector_id: str, **changes: Any) -> Connector:
        """Change columns by name; `client_secret` takes the plaintext (None removes it)."""
        unknown = set(changes) - FIELDS
        if unknown:
            raise ConfigurationError(f"unknown connector field(s): {', '.join(sorted(unknown))}")
        for field, allowed in (
            ("auth_type", AUTH_TYPES),
            ("credential_mode", CREDENTIAL_MODES),
            ("status", CONNECTOR_STATUSES),
            ("registration_method", REGISTRATION_METHODS),
        ):
            if changes.get(field) is not None:
                require(changes[field], allowed, field)
        with self._store.tx() as tx:
            self._get(tx, connector_id)
            if "name" in changes and tx.scalar(
                "SELECT 1 FROM connectors WHERE name = ? AND id <> ?", [changes["name"], connector_id]
            ):
                raise ConfigurationError(f"a connector named {changes['name']!r} already exists")
            if "client_secret" in changes:
                secret = changes.pop("client_secret")
                if secret is None:
                    tx.execute("UPDATE connectors SET client_secret = NULL WHERE id = ?", [connector_id])
                else:
                    self._set_secret(tx, connector_id, secret)
            values = {k: _column_value(k, v) for k, v in changes.items()}
            values["updated_at"] = time.time()
            assignments = ", ".join(f"{column} = ?" for column in values)  # names checked against FIELDS
            tx.execute(f"UPDATE connectors SET {assignments} WHERE id = ?", [*values.values(), connector_id])
            if "name" in changes:
                tx.execute(
                    "UPDATE current_tools SET connector_name = ? WHERE connector_id = ?",
                    [changes["name"], connector_id],
                )
            return self._get(tx, connector_id)

    def mark_synced(self, tx: Tx, connector_ids: Sequence[str], synced_at: float) -> None:
        tx.execute(
            "UPDATE connectors SET last_sync_at = ?, status = 'connected', last_error = NULL, "
            "updated_at = ? WHERE id IN (SELECT unnest(?::VARCHAR[]))",
            [synced_at, time.time(), sorted(set(connector_ids))],
        )

    def delete(self, connector_id: str) -> None:
        """Remove the connector with its credentials, pending authorizations and tool snapshots.
        The audit log and auth trace keep their rows (they are history)."""
        with self._store.tx() as tx:
            delete_owned(tx, "connector_id", connector_id)
            tx.execute("DELETE FROM connectors WHERE id = ?", [connector_id])

    def client_secret(self, connector_id: str) -> Secret | None:
        """The pre-registered client secret; `CredentialUnavailable` when it cannot be decrypted."""
        with self._store.tx() as tx:
            row = tx.one("SELECT id, client_secret FROM connectors WHERE id = ?", [connector_id])
            if row is None:
                raise _missing(connector_id)
            return self._store.unseal(CONNECTOR_SECRETS, "client_secret", row)

    def auth_type(self, tx: Tx, connector_id: str) -> str | None:
        return tx.scalar("SELECT auth_type FROM connectors WHERE id = ?", [connector_id])

    def credential_mode(self, tx: Tx, connector_id: str) -> str:
        return tx.scalar("SELECT credential_mode FROM connectors WHERE id = ?", [connector_id])

    def _set_secret(self, tx: Tx, connector_id: str, secret: str) -> None:
        context = CONNECTOR_SECRETS.secret_context("client_secret", {"id": connector_id})
        tx.execute(
            "UPDATE connectors SET client_secret = ? WHERE id = ?",
            [self._store.seal(tx, secret, context), connector_id],
        )

    @staticmethod
    def _get(tx: Tx, connector_id: str) -> Connector:
        row = tx.one(_SELECT + " WHERE c.id = ?", [connector_id])
        if row is None:
            raise _missing(connector_id)
        return _from_row(row)


def _missing(ref: str) -> NotFoundError:
    return NotFoundError(f"no connector {ref!r}", hint="list connectors to see their names")


def _from_row(row: dict[str, Any]) -> Connector:
    for name in _JSON_FIELDS:
        row[name] = json.loads(row[name]) if row[name] is not None else None
    row["scopes"] = tuple(row["scopes"]) if row["scopes"] is not None else None
    return Connector(**row)


def _column_value(name: str, value: Any) -> Any:
    if name in _JSON_FIELDS:
        return None if value is None else json.dumps(value, sort_keys=True)
    if name == "scopes":
        return None if value is None else list(value)
    return value
