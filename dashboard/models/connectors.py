"""The connectors index (table, actions, Sync all) and the add/edit connector form."""

from __future__ import annotations

from typing import Any

import pandas as pd
import param

from core.auth_schemes import AUTH_TYPES, AuthScheme, auth_scheme, header_name_problem
from core.errors import ConfigurationError, InvalidUrlError
from core.models import CREDENTIAL_MODES, ConnectorInfo, CredentialInfo, OffboardingReport, SyncResult
from core.net.urls import parse_http_url
from dashboard.models.base import ConnectAction, ServiceModel, connect_or_authorize
from dashboard.models.formatting import NEVER, format_expiry, format_scopes, format_time
from dashboard.navigation import CONNECTORS_PATH

STATUS_LABELS = {
    "connected": "connected",
    "needs_auth": "needs auth",
    "error": "error",
    "never_synced": "never synced",
}


class ConnectorsIndex(ServiceModel):
    """Every connector with its status, and the actions on them."""

    connectors = param.List(default=[], item_type=ConnectorInfo, doc="As last loaded from the services.")
    shared_credentials = param.Dict(default={}, doc="Connector name → its shared credential's health.")
    selected = param.String(default=None, allow_None=True, doc="Connector whose details are shown.")
    syncing = param.Boolean(default=False, doc="A sync (Sync all, or one row's) is running.")
    sync_total = param.Integer(default=0, doc="Credentials the running sync covers.")
    sync_plan = param.List(default=[], doc="(connector, agent) of each of its syncs, as planned.")
    sync_results = param.List(default=[], item_type=SyncResult, doc="Its outcomes, in finishing order.")
    offboarding = param.ClassSelector(
        class_=OffboardingReport, default=None, allow_None=True, doc="The last removal's report."
    )

    async def refresh(self) -> list[ConnectorInfo]:
        async def fetch() -> tuple[list[ConnectorInfo], dict[str, CredentialInfo]]:
            connectors = await self.services.list_connectors()
            return connectors, {c.connector: c for c in await self.services.health() if c.agent is None}

        connectors, _ = await self._load(
            "connectors",
            fetch(),
            lambda found: self.param.update(shared_credentials=found[1], connectors=found[0]),
        )
        return connectors

    def get(self, name: str) -> ConnectorInfo:
        for connector in self.connectors:
            if connector.name == name:
                return connector
        raise ConfigurationError(f"no connector named {name!r}; reload the page")

    @param.depends("connectors")
    def frame(self) -> pd.DataFrame:
        """One row per connector, as the index table shows it."""
        rows = [
            {
                "name": c.name,
                "url": c.url,
                "auth": c.auth_type,
                "mode": c.credential_mode,
                "status": STATUS_LABELS.get(c.status, c.status),
                "tools": c.tool_count,
                "last sync": format_time(c.last_sync_at),
                "last error": c.last_error or "",
            }
            for c in self.connectors
        ]
        columns = ["name", "url", "auth", "mode", "status", "tools", "last sync", "last error"]
        return pd.DataFrame(rows, columns=columns)

    @param.depends("selected", "connectors")
    def details(self) -> dict[str, str] | None:
        """What the selected connector is, what discovery found for it and its shared credential."""
        if self.selected is None or not any(c.name == self.selected for c in self.connectors):
            return None
        c = self.get(self.selected)
        facts = {
            "name": c.name,
            "url": c.url,
            "auth type": c.auth_type,
            "credential mode": c.credential_mode,
            "header": c.header_name or NEVER,
            "authorization server": c.issuer or NEVER,
            "registration": c.registration_method or NEVER,
            "requested scopes": format_scopes(c.scopes),
            "client id": c.client_id or NEVER,
            "client secret": "stored" if c.has_client_secret else NEVER,
            "status": STATUS_LABELS.get(c.status, c.status),
            "last error": c.last_error or NEVER,
        }
        credential = self.shared_credentials.get(c.name)
        if c.credential_mode == "shared" and credential is not None:
            facts.update(
                {
                    "credential": credential.status,
                    "granted scopes": format_scopes(credential.scopes),
                    "expires": format_expiry(credential.expires_at),
                    "fingerprint": credential.fingerprint or NEVER,
                }
            )
        return facts

    async def connect(self, name: str, return_to: str = CONNECTORS_PATH) -> ConnectAction:
        connector = self.get(name)
        self.selected = name
        if connector.credential_mode == "per_agent":
            raise ConfigurationError(
                f"{name} gives every agent its own credential: connect it from the "
                "agent's page (Agents → the agent)"
            )
        action = await connect_or_authorize(self.services, name, connector.auth_type, None, return_to)
        if action.outcome is not None:
            await self.refresh()
        return action

    async def sync(self, name: str) -> list[SyncResult]:
        """Sync one connector: its shared credential, or every agent's own credential for it."""
        self.selected = name
        return await self._run_syncs({name})

    async def sync_all(self) -> list[SyncResult]:
        """Sync every shared connector and every agent's own credential for the per-agent ones."""
        return await self._run_syncs(None)

    async def _run_syncs(self, names: set[str] | None) -> list[SyncResult]:
        """`sync_results` grows as each sync finishes; `sync_total` says how many there are."""
        self.param.update(syncing=True, sync_results=[], sync_total=0, sync_plan=[])
        try:
            async for result in self.services.sync_many(
                None if names is None else sorted(names), on_plan=self._sync_planned
            ):
                self.sync_results = [*self.sync_results, result]
        finally:
            self.syncing = False
        await self.refresh()
        return self.sync_results

    def _sync_planned(self, plan: list[tuple[str, str | None]]) -> None:
        self.param.update(sync_plan=plan, sync_total=len(plan))

    @param.depends("sync_plan", "sync_results")
    def sync_progress(self) -> pd.DataFrame:
        """Every sync of the run, finished or still waiting, in the order they were planned."""
        done = {(r.connector, r.agent): r for r in self.sync_results}
        rows = []
        for connector, agent in self.sync_plan:
            result = done.get((connector, agent))
            rows.append(
                {
                    "connector": connector,
                    "agent": agent or "(shared)",
                    "state": "waiting" if result is None else ("synced" if result.ok else "failed"),
                    "tools": "" if result is None or not result.ok else result.tools,
                    "changed": "" if result is None or not result.ok else result.changed,
                    "time (ms)": "" if result is None else round(result.duration_ms),
                    "error": "" if result is None else result.error or "",
                }
            )
        return pd.DataFrame(
            rows, columns=["connector", "agent", "state", "tools", "changed", "time (ms)", "error"]
        )

    async def remove(self, name: str) -> OffboardingReport:
        """Revoke the connector's credentials at their servers, then delete it; the report says
        what each server did (`offboarding`)."""
        report = await self.services.remove_connector(name)
        self.offboarding = report
        if self.selected == name:
            self.selected = None
        await self.refresh()
        return report


class ConnectorForm(ServiceModel):
    """Add a connector or edit one. Secrets are write-only: cleared after every submit, never loaded."""

    editing = param.String(
        default=None, allow_None=True, doc="Name of the connector being edited; None adds."
    )
    connector_name = param.String(default="", label="Name")
    url = param.String(default="", label="Server URL")
    auth_type = param.Selector(default="oauth", objects=list(AUTH_TYPES), label="Auth type")
    credential_mode = param.Selector(default="shared", objects=list(CREDENTIAL_MODES), label="Credentials")
    header_name = param.String(default="", label="API key header")
    client_id = param.String(default="", label="Client ID (pre-registered, optional)")
    client_secret = param.String(default="", label="Client secret")
    scopes = param.String(default="", label="Scopes (optional, space-separated)")
    shared_secret = param.String(default="", label="Shared token / API key")
    errors = param.Dict(default={}, doc="Field name → what is wrong with it, from the last submit.")
    stored = param.ClassSelector(
        class_=ConnectorInfo,
        default=None,
        allow_None=True,
        doc="The connector as stored: loaded for editing or saved by a submit.",
    )
    credential = param.ClassSelector(
        class_=CredentialInfo,
        default=None,
        allow_None=True,
        doc="The shared credential's state after it was set by a submit.",
    )

    def __repr__(self) -> str:  # never print the secrets a submit has not consumed yet
        return f"ConnectorForm(editing={self.editing!r}, connector_name={self.connector_name!r})"

    @property
    def scheme(self) -> AuthScheme:
        return auth_scheme(self.auth_type)

    @property
    def takes_shared_secret(self) -> bool:
        return self.scheme.static_secret and self.credential_mode == "shared"

    def load(self, connector: ConnectorInfo) -> None:
        """Fill the form to edit `connector` (secrets stay empty: they are never shown back)."""
        self.param.update(
            editing=connector.name,
            connector_name=connector.name,
            url=connector.url,
            auth_type=connector.auth_type,
            credential_mode=connector.credential_mode,
            header_name=connector.header_name or "",
            client_id=connector.client_id or "",
            scopes=" ".join(connector.scopes),
            client_secret="",
            shared_secret="",
            errors={},
            stored=connector,
            credential=None,
        )

    def reset(self) -> None:
        self.param.update(
            {k: p.default for k, p in self.param.objects().items() if k not in ("name", "service")}
        )

    def validate(self) -> dict[str, str]:
        """Field name → message for every field an operator must fix before submitting."""
        problems: dict[str, str] = {}
        name = self.connector_name
        if not name.strip():
            problems["connector_name"] = "Give the connector a name."
        elif name != name.strip() or len(name) > 100:
            problems["connector_name"] = (
                "Names have no leading or trailing spaces and at most 100 characters."
            )
        url_problem = _url_problem(self.url.strip())
        if url_problem:
            problems["url"] = url_problem
        if self.scheme.header_name and header_name_problem(self.header_name):
            problems["header_name"] = "Name the header the API key goes in, e.g. X-API-Key."
        if self.client_secret and not self.client_id.strip():
            problems["client_id"] = "A client secret needs the client ID it belongs to."
        if self.scheme.requires_client:
            if not self.client_id.strip():
                problems["client_id"] = "Client credentials need a client ID."
            if not self.client_secret and not self._has_stored_client_secret():
                problems["client_secret"] = "Client credentials need a client secret."
        return problems

    async def submit(self) -> ConnectorInfo:
        """Add or update the connector, then store the shared secret if one was typed in."""
        self.errors = self.validate()
        try:
            if self.errors:
                raise ConfigurationError("Fix the highlighted fields: " + " ".join(self.errors.values()))
            if self.editing:
                connector = await self.services.update_connector(self.editing, **self._changes())
            else:
                connector = await self.services.add_connector(**self._spec())
            # From here on the connector exists: a refused secret leaves the form editing it.
            self.editing = connector.name
            if self.takes_shared_secret and self.shared_secret:
                self.credential = await self.services.set_secret(connector.name, self.shared_secret)
        finally:
            self.param.update(client_secret="", shared_secret="")
        self.stored = await self.services.get_connector(connector.name)
        return self.stored

    def _spec(self) -> dict[str, Any]:
        return {
            "name": self.connector_name,
            "url": self.url.strip(),
            "auth_type": self.auth_type,
            "credential_mode": self.credential_mode,
            "header_name": self.header_name.strip() if self.scheme.header_name else None,
            "client_id": self.client_id.strip() or None,
            "client_secret": self.client_secret or None,
            "scopes": self.scopes.strip() or None,
        }

    def _changes(self) -> dict[str, Any]:
        """Only what differs from the stored connector; a secret only when a new one was typed."""
        stored = self.stored if self.stored is not None and self.stored.name == self.editing else None
        spec = self._spec()
        spec.pop("name")
        if not spec["client_secret"]:
            spec.pop("client_secret")
        if stored is None:
            return spec
        current = {
            "url": stored.url,
            "auth_type": stored.auth_type,
            "credential_mode": stored.credential_mode,
            "header_name": stored.header_name,
            "client_id": stored.client_id,
            "scopes": " ".join(stored.scopes) or None,
        }
        return {k: v for k, v in spec.items() if k == "client_secret" or current.get(k) != v}

    def _has_stored_client_secret(self) -> bool:
        return bool(self.editing and self.stored is not None and self.stored.has_client_secret)


_URL_PROBLEMS = {
    "empty": "Enter the MCP server's URL, e.g. https://mcp.example.com/mcp.",
    "credentials": "Leave credentials out of the URL; use the auth type instead.",
    "fragment": "Leave the #fragment out of the URL.",
}


def _url_problem(url: str) -> str | None:
    try:
        parse_http_url(url, "the server URL")
    except InvalidUrlError as exc:
        return _URL_PROBLEMS.get(exc.problem or "", "The URL must start with https:// and name a host.")
    return None
