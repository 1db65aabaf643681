"""The parts of the services behind the facade, each built — and its module imported — on first use.

Ops scripts call the CLI in loops, and a command uses one or two parts: `connector list` needs the
catalog, `tools` the inventory; neither should pay for importing OAuth, the MCP client or the sync
engine. Parts depend on each other (the authorizer on the credentials, the sync engine and
offboarding), so each is built once, under a lock, and shared by every view of the services
(`Switchboard.acting_as` copies the facade, not its parts).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.services.authorizer import Authorizer
    from core.services.calls import ToolCalls
    from core.services.catalog import Catalog
    from core.services.context import ServiceContext
    from core.services.credentials import Credentials
    from core.services.inventory import Inventory
    from core.services.offboarding import Offboarding
    from core.services.operators import Operators
    from core.services.overview import OverviewReader
    from core.services.pool import ClientPool
    from core.services.sync import SyncEngine


class _Part[P]:
    """A part built by `build(parts)` the first time it is read, then kept on the instance."""

    def __init__(self, build: Callable[[Parts], P]) -> None:
        self._build = build
        self._name = build.__name__

    def __get__(self, parts: Parts, owner: type | None = None) -> P:
        built = parts.__dict__.get(self._name)
        if built is None:
            with parts.lock:  # re-entrant: building one part may build those it needs
                built = parts.__dict__.get(self._name)
                if built is None:
                    built = parts.__dict__[self._name] = self._build(parts)
        return built


class Parts:
    def __init__(self, context: ServiceContext, pool: ClientPool) -> None:
        self.context = context
        self.pool = pool
        self.lock = threading.RLock()

    @_Part
    def credentials(self) -> Credentials:
        from core.services.credentials import Credentials

        return Credentials(self.context, self.pool)

    @_Part
    def catalog(self) -> Catalog:
        from core.services.catalog import Catalog

        return Catalog(self.context, self.pool)

    @_Part
    def syncs(self) -> SyncEngine:
        from core.services.sync import SyncEngine

        return SyncEngine(self.context, self.credentials)

    @_Part
    def offboarding(self) -> Offboarding:
        from core.services.offboarding import Offboarding

        return Offboarding(self.context, self.credentials)

    @_Part
    def authorizer(self) -> Authorizer:
        from core.services.authorizer import Authorizer

        return Authorizer(self.context, self.credentials, self.syncs, self.offboarding)

    @_Part
    def calls(self) -> ToolCalls:
        from core.services.calls import ToolCalls

        return ToolCalls(self.context, self.credentials, self.syncs)

    @_Part
    def inventory(self) -> Inventory:
        from core.services.inventory import Inventory

        return Inventory(self.context, self.credentials)

    @_Part
    def overview(self) -> OverviewReader:
        from core.services.overview import OverviewReader

        return OverviewReader(self.context)

    @_Part
    def operators(self) -> Operators:
        from core.services.operators import Operators

        return Operators(self.context)
