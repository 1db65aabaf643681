"""What `--auth basic` needs of wherever operators are kept: an account's role and password hash by
name, and a way to replace a hash made with older parameters. The store's operators repository
provides it (`Store.operators`); this module only names the shape, so the store need not load
argon2 to provide it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from core.roles import Role


@dataclass(frozen=True)
class OperatorLogin:
    """One operator as sign-in sees them: `password_hash` is an encoded Argon2id hash (never shown)."""

    name: str
    role: Role
    password_hash: str = field(repr=False)


class OperatorDirectory(Protocol):
    def login_of(self, name: str) -> OperatorLogin | None:
        """The operator named `name`, or None."""
        ...

    def replace_hash(self, name: str, old: str, new: str) -> bool:
        """Store `new` as `name`'s hash if it is still `old` (compare and swap); whether it did."""
        ...
