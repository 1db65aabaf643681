"""Which keys encrypt the stored secrets, and rotation: a new active key, every secret re-encrypted
under it in short batches, old keys retired once nothing uses them."""

from __future__ import annotations

from typing import Any

from core.errors import CredentialUnavailable
from core.oauth.storage import CredentialKey
from core.store.crypto import key_id_of
from core.store.records import RotationReport
from core.store.repositories.base import Repository
from core.store.schema import CREDENTIAL_SECRETS, SECRET_TABLES, SecretTable


class KeyRepository(Repository):
    def usage(self) -> dict[str, int]:
        """How many stored secrets each key id encrypts (ids not in the keyring included)."""
        counts: dict[str, int] = {}
        with self._store.tx() as tx:
            for spec in SECRET_TABLES:
                for row in tx.execute(f"SELECT {', '.join(spec.columns)} FROM {spec.table}").fetchall():
                    for blob in row:
                        if blob is not None:
                            key_id = key_id_of(bytes(blob)) or "<malformed>"
                            counts[key_id] = counts.get(key_id, 0) + 1
        return counts

    def rotate(self, *, batch_size: int = 100) -> RotationReport:
        """New active key, every secret re-encrypted under it, old keys retired once unused. The store
        stays usable throughout (short batches); safe to re-run after an interruption."""
        with self._store.session():
            self._store.keyring.rotate()
        return self.reencrypt(batch_size=batch_size)

    def reencrypt(self, *, batch_size: int = 100) -> RotationReport:
        """Re-encrypt secrets not under the active key, then retire keys nothing uses any more.

        Each batch is one short transaction, so other processes keep working between batches. A row
        is rewritten only if its version (credentials) and ciphertexts are still those just read, and
        the version is not bumped: a re-encryption changes no token, so a refresh that read the row
        before it still commits its compare-and-swap (no lost update, C-11)."""
        reencrypted = unreadable = 0
        for spec in SECRET_TABLES:
            pending = self._rows_to_reencrypt(spec)
            for start in range(0, len(pending), batch_size):
                done, failed = self._reencrypt_batch(spec, pending[start : start + batch_size])
                reencrypted += done
                unreadable += failed
        retired, still_used = self.retire_unused()
        return RotationReport(self._store.keyring.active_id, reencrypted, unreadable, retired, still_used)

    def retire_unused(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Drop non-active keys that no stored secret uses; returns (retired, still used).

        On DuckDB this runs inside one session, which excludes every writer; writers re-read the key
        file at the start of their session, so nothing starts using a key between this count and its
        removal. On PostgreSQL, processes on other hosts have their own keyring (SWITCHBOARD_KEY):
        rotate there by deploying the new keyring everywhere first."""
        keyring = self._store.keyring
        with self._store.session():
            used = self.usage()
            active = keyring.active_id
            old = [k for k in keyring.key_ids if k != active]
            retired = keyring.retire(k for k in old if k not in used) if keyring.editable else ()
            return retired, tuple(k for k in old if k in used)

    def _rows_to_reencrypt(self, spec: SecretTable) -> list[tuple[Any, ...]]:
        active = self._store.keyring.active_id
        with self._store.tx() as tx:
            rows = tx.rows(f"SELECT {', '.join(spec.key + spec.columns)} FROM {spec.table}")
        return [
            tuple(r[k] for k in spec.key)
            for r in rows
            if any(r[c] is not None and key_id_of(bytes(r[c])) != active for c in spec.columns)
        ]

    def _reencrypt_batch(self, spec: SecretTable, keys: list[tuple[Any, ...]]) -> tuple[int, int]:
        done = failed = 0
        unreadable: list[tuple[CredentialKey, CredentialUnavailable]] = []
        match = " AND ".join(f"{k} = ?" for k in spec.key)
        store = self._store
        with store.tx() as tx:
            active = store.keyring.active_id
            for key in keys:
                row = tx.one(f"SELECT * FROM {spec.table} WHERE {match}", list(key))
                if row is None:
                    continue  # deleted meanwhile
                stale = [c for c in spec.columns if row[c] is not None and key_id_of(bytes(row[c])) != active]
                if not stale:
                    continue  # rewritten meanwhile, under the active key
                try:
                    blobs = {
                        c: store.seal(tx, store.unseal(spec, c, row).reveal(), spec.secret_context(c, row))  # type: ignore[union-attr]
                        for c in stale
                    }
                except CredentialUnavailable as exc:
                    failed += 1
                    if spec is CREDENTIAL_SECRETS:
                        unreadable.append((CredentialKey(row["connector_id"], row["agent_id"]), exc))
                    continue
                guard = " AND ".join(f"{c} = ?" for c in stale)
                if spec.versioned:
                    guard += " AND version = ?"
                updated = tx.execute(
                    f"UPDATE {spec.table} SET {', '.join(f'{c} = ?' for c in stale)} WHERE {match} AND {guard} "
                    "RETURNING 1",
                    [
                        *blobs.values(),
                        *key,
                        *(row[c] for c in stale),
                        *([row["version"]] if spec.versioned else []),
                    ],
                ).fetchall()
                done += len(stale) if updated else 0
        for credential, exc in unreadable:
            store.credentials.unreadable(credential, exc)
        return done, failed
