"""What every dashboard model shares: access to the services and the result of a Connect."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import param

from core.models import ConnectOutcome
from core.services import Switchboard
from dashboard import runtime

# Auth types whose credential is a static secret (token, API key) the operator types in.


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

    def _read(self, what: str) -> Callable[[], bool]:
        """Start a read of `what`; the returned check is False once a newer read of it has started.

        Reads overlap (a page load and a click both refresh), and an older answer arriving last
        must not overwrite a newer one.
        """
        ticket = self._reads[what] = self._reads.get(what, 0) + 1
        return lambda: self._reads[what] == ticket


class WithChoices(ServiceModel):
    """A model whose view offers connectors and agents to choose from."""

    connector_names = param.List(default=[], doc="Choices for a connector.")
    agent_names = param.List(default=[], doc="Choices for an agent.")

    async def load_choices(self) -> None:
        latest = self._read("choices")
        connectors = await self.services.list_connectors()
        agents = await self.services.list_agents()
        if latest():
            self.param.update(
                connector_names=[c.name for c in connectors], agent_names=[a.name for a in agents]
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
    if auth_type == "oauth":
        url = await services.start_authorization(
            connector, agent, redirect_uri=runtime.redirect_uri(), return_to=return_to
        )
        return ConnectAction(authorization_url=url)
    return ConnectAction(outcome=await services.connect(connector, agent))
