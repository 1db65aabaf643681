"""What every repository shares: the store kernel it works through, and small validation helpers."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.errors import ConfigurationError

if TYPE_CHECKING:
    from core.store.db import Store


class Repository:
    """One aggregate's reads and writes. Every method is one transaction (joining the caller's when
    it runs inside `store.transaction()`); none waits on the network."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store!r})"


def require(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ConfigurationError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


def new_id() -> str:
    return secrets.token_hex(8)
