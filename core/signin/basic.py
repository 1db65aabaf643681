"""`--auth basic`: operators sign in with a name and password kept as Argon2id hashes
(`core/signin/passwords.py`) in an `OperatorDirectory` (the store's operators repository).

A session is bound to the account as it was at sign-in — its role and its password hash — so
removing an operator, changing their role or their password ends their sessions at their next
request (`still_signed_in`, asked by every page load and websocket). Hashing is CPU-bound (tens of
milliseconds by design) and the directory is the store: both run in a worker thread, never on the
event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac

from core.roles import Principal
from core.signin.accounts import OperatorDirectory, OperatorLogin
from core.signin.passwords import hash_password, needs_rehash, password_matches


class PasswordSignIn:
    def __init__(self, directory: OperatorDirectory) -> None:
        self._directory = directory

    async def sign_in(self, name: str, password: str) -> tuple[Principal, str] | None:
        """The operator and their session's binding when `password` is theirs; None otherwise (an
        unknown name costs the same as a wrong password)."""
        return await asyncio.to_thread(self._check, name, password)

    async def still_signed_in(self, principal: Principal, binding: str) -> bool:
        """Whether the account a session was bound to is still there, with that role and password."""
        login = await asyncio.to_thread(self._directory.login_of, principal.name)
        return (
            login is not None
            and login.role is principal.role
            and hmac.compare_digest(binding, _binding(login))
        )

    def _check(self, name: str, password: str) -> tuple[Principal, str] | None:
        login = self._directory.login_of(name) if name else None
        if not password_matches(login.password_hash if login else None, password) or login is None:
            return None
        if needs_rehash(login.password_hash):  # today's parameters, while the password is at hand
            new = hash_password(password)
            if self._directory.replace_hash(login.name, login.password_hash, new):
                login = OperatorLogin(login.name, login.role, new)
        return Principal(login.name, login.role), _binding(login)


def _binding(login: OperatorLogin) -> str:
    # Not the hash itself (the cookie is sealed, but it need not carry even that): a digest of what
    # a session depends on.
    return hashlib.sha256(f"{login.role.value}\n{login.password_hash}".encode()).hexdigest()[:32]
