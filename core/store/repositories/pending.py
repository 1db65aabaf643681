"""Authorizations in flight, found by the SHA-256 of their `state` (never stored); single use.

`take` deletes and returns in one statement, so a state works once, on whichever process or host
the browser's callback reaches; the PKCE verifier is encrypted and bound to the state's hash.
"""

from __future__ import annotations

import hashlib
import time

from core.errors import ConflictError
from core.oauth.storage import CredentialKey, PendingAuthorization
from core.store.repositories.base import Repository
from core.store.schema import PENDING_SECRETS

PENDING_TTL_SECONDS = 600.0


class PendingRepository(Repository):
    def save(self, pending: PendingAuthorization) -> None:
        state_hash = _hash(pending.state)
        with self._store.tx() as tx:
            tx.execute("DELETE FROM pending_authorizations WHERE expires_at < ?", [time.time()])
            verifier = self._store.seal(
                tx,
                pending.code_verifier,
                PENDING_SECRETS.secret_context("code_verifier", {"state_hash": state_hash}),
            )
            if tx.scalar("SELECT 1 FROM pending_authorizations WHERE state_hash = ?", [state_hash]):
                raise ConflictError("an authorization with this state is already pending")
            tx.execute(
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

    def take(self, state: str) -> PendingAuthorization | None:
        """Consume the pending authorization for `state`: one caller, in any process, gets it."""
        with self._store.tx() as tx:
            row = tx.one(
                "DELETE FROM pending_authorizations WHERE state_hash = ? RETURNING *", [_hash(state)]
            )
        # Decrypt after the delete committed: an unreadable verifier must not leave a replayable row.
        if row is None or row["expires_at"] < time.time():
            return None
        verifier = self._store.unseal(PENDING_SECRETS, "code_verifier", row)
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

    def discard(self, *, connector_id: str | None = None, agent_id: str | None = None) -> int:
        """Cancel the authorizations in flight for a connector, an agent or one credential (both
        given; `agent_id` '' is the shared one): their callbacks then find nothing to complete.
        Returns how many were cancelled."""
        where = [(c, v) for c, v in (("connector_id", connector_id), ("agent_id", agent_id)) if v is not None]
        if not where:
            raise ValueError("discard needs a connector, an agent or both")
        with self._store.tx() as tx:
            cancelled = tx.column(
                "DELETE FROM pending_authorizations WHERE "
                + " AND ".join(f"{column} = ?" for column, _ in where)
                + " RETURNING state_hash",
                [value for _, value in where],
            )
        return len(cancelled)


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()
