"""Scopes per OAuth credential: granted, listed by the server's metadata, asked for by its last 403
insufficient_scope challenge — and the step-up authorization where they differ."""

from __future__ import annotations

import pandas as pd
import param

from core.models import CredentialScopes
from core.public_url import dashboard_redirect_uri
from dashboard.models.base import ServiceModel
from dashboard.models.formatting import NEVER, format_scopes, format_time

HEALTH_PATH = "/health"
COLUMNS = [
    "connector",
    "agent",
    "granted",
    "server lists",
    "last challenge asked for",
    "challenged",
    "missing",
]


class ScopesModel(ServiceModel):
    scopes = param.List(default=[], item_type=CredentialScopes)

    async def refresh(self) -> list[CredentialScopes]:
        return await self._load(
            "scopes", self.services.credential_scopes(), lambda found: self.param.update(scopes=found)
        )

    @param.depends("scopes")
    def frame(self) -> pd.DataFrame:
        rows = [
            {
                "connector": s.connector,
                "agent": s.agent or "(shared)",
                "granted": format_scopes(s.granted),
                "server lists": format_scopes(s.supported),
                "last challenge asked for": format_scopes(s.challenged),
                "challenged": format_time(s.challenged_at),
                "missing": format_scopes(s.missing) if s.missing else NEVER,
            }
            for s in self.scopes
        ]
        return pd.DataFrame(rows, columns=COLUMNS)

    def needing_step_up(self) -> list[CredentialScopes]:
        return [s for s in self.scopes if s.step_up]

    async def step_up(self, scopes: CredentialScopes) -> str:
        """The authorization URL of a step-up to `scopes.step_up`; the callback returns to /health."""
        return await self.services.step_up(
            scopes.connector,
            scopes.agent,
            scopes=scopes.step_up,
            redirect_uri=dashboard_redirect_uri(),
            return_to=HEALTH_PATH,
        )
