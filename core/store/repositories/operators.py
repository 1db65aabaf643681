"""Dashboard operators for `--auth basic`: a name, a role and the Argon2id hash of their password
(`core/signin/passwords.py` makes it; no password reaches the store). The hash is encrypted like
every secret (`OPERATOR_SECRETS`): a copy of the database without the key file gives nothing to
guess passwords against. Sign-in reads it through `login_of` (`core.signin.accounts.OperatorDirectory`).

Sessions ended by sign-out are kept here too (`end_session`, `session_ended`), by the SHA-256 of
their random id, until their cookie would have expired: a sealed cookie is otherwise valid wherever
it is presented, on any replica, until it expires.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from core.errors import NotFoundError
from core.models import OperatorInfo
from core.roles import Role
from core.signin.accounts import OperatorLogin
from core.store.engine import Tx
from core.store.repositories.base import Repository
from core.store.schema import OPERATOR_SECRETS


class OperatorRepository(Repository):
    def save(self, name: str, role: Role, password_hash: str) -> OperatorInfo:
        """Add `name`, or give an existing operator this role and password."""
        now = time.time()
        with self._store.tx() as tx:
            created = tx.scalar("SELECT created_at FROM operators WHERE name = ?", [name])
            sealed = self._seal(tx, name, password_hash)
            if created is None:
                tx.execute(
                    "INSERT INTO operators VALUES (?, ?, ?, ?, ?)", [name, role.value, sealed, now, now]
                )
            else:
                tx.execute(
                    "UPDATE operators SET role = ?, password_hash = ?, updated_at = ? WHERE name = ?",
                    [role.value, sealed, now, name],
                )
        return OperatorInfo(name, role.value, created if created is not None else now, now)

    def list(self) -> list[OperatorInfo]:
        with self._store.tx() as tx:
            rows = tx.rows("SELECT name, role, created_at, updated_at FROM operators ORDER BY name")
        return [OperatorInfo(**row) for row in rows]

    def delete(self, name: str) -> None:
        with self._store.tx() as tx:
            if tx.one("DELETE FROM operators WHERE name = ? RETURNING name", [name]) is None:
                raise NotFoundError(f"no operator {name!r}", hint="`switchboard operator list` shows them")

    def login_of(self, name: str) -> OperatorLogin | None:
        with self._store.tx() as tx:
            row = tx.one("SELECT name, role, password_hash FROM operators WHERE name = ?", [name])
        return None if row is None else self._login(row)

    def replace_hash(self, name: str, old: str, new: str) -> bool:
        """Store `new` as `name`'s hash if it is still `old` (a rehash racing a password change loses)."""
        with self._store.tx() as tx:
            row = tx.one("SELECT name, role, password_hash FROM operators WHERE name = ?", [name])
            if row is None or self._login(row).password_hash != old:
                return False
            tx.execute(
                "UPDATE operators SET password_hash = ? WHERE name = ?", [self._seal(tx, name, new), name]
            )
            return True

    def end_session(self, session_id: str, until: float) -> None:
        """Refuse the session `session_id` from now on (until `until`, when its cookie expires)."""
        with self._store.tx() as tx:
            tx.execute("DELETE FROM ended_sessions WHERE expires_at < ?", [time.time()])
            tx.execute(
                "INSERT INTO ended_sessions VALUES (?, ?) ON CONFLICT (session_hash) DO NOTHING",
                [_session_hash(session_id), until],
            )

    def ended_sessions(self, session_ids: list[str]) -> set[str]:
        """Which of `session_ids` were ended (one query, however many pages are open)."""
        if not session_ids:
            return set()
        by_hash = {_session_hash(s): s for s in session_ids}
        with self._store.tx() as tx:
            found = tx.column(
                "SELECT session_hash FROM ended_sessions WHERE " + tx.engine.among("session_hash", "VARCHAR"),
                [list(by_hash)],
            )
        return {by_hash[h] for h in found}

    def _seal(self, tx: Tx, name: str, password_hash: str) -> bytes:
        context = OPERATOR_SECRETS.secret_context("password_hash", {"name": name})
        return self._store.seal(tx, password_hash, context)

    def _login(self, row: dict[str, Any]) -> OperatorLogin:
        secret = self._store.unseal(OPERATOR_SECRETS, "password_hash", row)
        return OperatorLogin(row["name"], Role(row["role"]), secret.reveal() if secret else "")


def _session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
