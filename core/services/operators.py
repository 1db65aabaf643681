"""The dashboard's operators for `--auth basic` (`switchboard operator add|list|remove`): a name, a
role and a password, of which only the Argon2id hash is kept (`core/signin/passwords.py`).

Hashing is CPU-bound (tens of milliseconds by design): it runs in a worker thread, and argon2 loads
with the first password, not with the services.
"""

from __future__ import annotations

import asyncio
import re

from core.errors import ConfigurationError
from core.models import OperatorInfo
from core.roles import ROLES, Role
from core.services.context import ServiceContext

# Shown in the header and named in every audit row: letters, digits and . _ @ + - (an email fits).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")


class Operators:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context

    async def add(self, name: str, role: str, password: str) -> OperatorInfo:
        """Add `name` with `role`, or give an existing operator this role and password (their open
        sessions end: sign-in binds a session to both)."""
        if not NAME.fullmatch(name or ""):
            raise ConfigurationError(
                f"{name!r} is not an operator name", hint="use letters, digits and . _ @ + - (up to 100)"
            )
        if role not in {r.value for r in ROLES}:
            raise ConfigurationError(f"{role!r} is not a role", hint=f"use one of {', '.join(ROLES)}")
        from core.signin.passwords import hash_password

        encoded = await asyncio.to_thread(hash_password, password)
        return await self._context.db(self._context.store.operators.save, name, Role(role), encoded)

    async def list(self) -> list[OperatorInfo]:
        return await self._context.db(self._context.store.operators.list)

    async def remove(self, name: str) -> None:
        """Remove `name`; their open sessions end at their next request."""
        await self._context.db(self._context.store.operators.delete, name)
