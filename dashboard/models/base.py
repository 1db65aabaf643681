"""What every dashboard model shares: access to the services, loads that a newer load supersedes,
and the result of a Connect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import param

from core.auth_schemes import auth_scheme
from core.models import ConnectOutcome
from core.public_url import dashboard_redirect_uri
from core.roles import allows
from core.services import Switchboard
from dashboard import runtime

T = TypeVar("T")


class ServiceModel(param.Parameterized):
    """A model that talks to the services; `service=None` means the process-wide instance."""

    service = param.ClassSelector(
        class_=Switchboard,
        default=None,
        allow_None=True,
        precedence=-1,
        doc="The services to call; the dashboard process's shared instance when None.",
    )

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._reads: dict[str, int] = {}

    @property
    def services(self) -> Switchboard:
        return self.service if self.service is not None else runtime.service()

    def may(self, action: str) -> bool:
        """Whether the operator these services act for may run `action` (`core.roles.ACTIONS`): views
        hide what they may not do; the services refuse it anyway."""
        return allows(self.services.principal.role, action)

    def _read(self, what: str) -> Callable[[], bool]:
        """Start a read of `what`; the returned check is False once a newer read of it has started.

        Reads overlap (a page load and a click both refresh), and an older answer arriving last
        must not overwrite a newer one.
        """
        ticket = self._reads[what] = self._reads.get(what, 0) + 1
        return lambda: self._reads[what] == ticket

    async def _load(self, what: str, fetch: Awaitable[T], apply: Callable[[T], Any]) -> T:
        """Await `fetch` and hand its result to `apply`, unless a newer load of `what` started
        meanwhile (see `_read`); returns the result either way."""
        latest = self._read(what)
        value = await fetch
        if latest():
            apply(value)
        return value


class WithChoices(ServiceModel):
    """A model whose view offers connectors and agents to choose from."""

    connector_names = param.List(default=[], doc="Choices for a connector.")
    agent_names = param.List(default=[], doc="Choices for an agent.")

    async def load_choices(self) -> None:
        async def names() -> tuple[list[str], list[str]]:
            connectors = await self.services.list_connectors()
            agents = await self.services.list_agents()
            return [c.name for c in connectors], [a.name for a in agents]

        await self._load(
            "choices",
            names(),
            lambda found: self.param.update(connector_names=found[0], agent_names=found[1]),
        )


@dataclass(frozen=True)
class ConnectAction:
    """What a Connect click leads to: a browser navigation (OAuth) or an immediate outcome."""

    authorization_url: str | None = None
    outcome: ConnectOutcome | None = None


async def connect_or_authorize(
    services: Switchboard, connector: str, auth_type: str, agent: str | None, return_to: str
) -> ConnectAction:
    """OAuth connectors need the browser at the authorization server; the others connect right away."""
    if auth_scheme(auth_type).browser:
        url = await services.start_authorization(
            connector, agent, redirect_uri=dashboard_redirect_uri(), return_to=return_to
        )
        return ConnectAction(authorization_url=url)
    return ConnectAction(outcome=await services.connect(connector, agent))
