"""Plain result types the services API returns to the dashboard, notebooks and CLI.

They hold no secrets: credentials appear only as a status, an expiry and a fingerprint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CREDENTIAL_MODES = ("shared", "per_agent")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True)
class ConnectorInfo:
    id: str
    name: str
    url: str
    auth_type: str
    credential_mode: str
    header_name: str | None = None
    status: str = "never_synced"  # connected | needs_auth | error | never_synced
    tool_count: int = 0
    last_sync_at: float | None = None
    last_error: str | None = None
    issuer: str | None = None
    registration_method: str | None = None
    scopes: tuple[str, ...] = ()
    client_id: str | None = None
    has_client_secret: bool = False
    has_shared_credential: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = {k: _plain(v) for k, v in asdict(self).items()}
        # Short aliases used by the CLI's table and JSON contract.
        data.update(
            auth=self.auth_type, mode=self.credential_mode, tools=self.tool_count, last_sync=self.last_sync_at
        )
        return data


@dataclass(frozen=True)
class AgentInfo:
    id: str
    name: str
    description: str = ""
    created_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OperatorInfo:
    """Someone who may sign in to the dashboard with `--auth basic` (never their password's hash)."""

    name: str
    role: str  # viewer | operator | admin (core.roles)
    created_at: float
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CredentialInfo:
    """One credential's health: never the secret, only a fingerprint (8 hex of SHA-256)."""

    connector: str
    agent: str | None  # None for a connector's shared credential
    kind: str  # none | bearer | api_key | oauth | client_credentials
    status: str  # connected | needs_reauth | error | missing
    reason: str | None = None
    fingerprint: str | None = None
    expires_at: float | None = None
    scopes: tuple[str, ...] = ()
    identity: str | None = None
    last_refresh_at: float | None = None
    last_401_at: float | None = None
    last_403_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class DiscoveryInfo:
    """What OAuth discovery found, for the operator to see after Connect."""

    resource: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_method: str  # pre_registered | cimd | dcr
    scopes: tuple[str, ...] = ()
    revocation_endpoint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ConnectOutcome:
    connector: str
    agent: str | None
    status: str  # connected | needs_auth | error
    discovery: DiscoveryInfo | None = None
    tools: int | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["discovery"] = self.discovery.as_dict() if self.discovery else None
        return data

    def summary(self) -> str:
        who = f" as {self.agent}" if self.agent else ""
        tools = f", {self.tools} tools" if self.tools is not None else ""
        return f"{self.connector}{who}: {self.status}{tools}" + (f" — {self.message}" if self.message else "")


@dataclass(frozen=True)
class AuthorizationOutcome:
    """The end of a browser authorization: where to send the operator and what to tell them."""

    ok: bool
    message: str
    return_to: str = "/"
    connector: str | None = None
    agent: str | None = None
    tools: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SyncResult:
    connector: str
    agent: str | None
    ok: bool
    tools: int = 0
    changed: int = 0  # tools added, removed or changed since the previous snapshot
    error: str | None = None
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ToolPage:
    rows: list[dict[str, Any]]
    total: int
    total_is_exact: bool = True  # False: a text search matched at least `total` tools (counting stopped)


@dataclass(frozen=True)
class CallOutcome:
    connector: str
    agent: str | None
    tool: str
    result: dict[str, Any] = field(default_factory=dict)  # the MCP CallToolResult as on the wire
    is_error: bool = False
    latency_ms: float = 0.0

    def text(self) -> str:
        content = [c for c in self.result.get("content", []) or [] if isinstance(c, dict)]
        parts = [str(c.get("text", "")) for c in content if c.get("type") == "text"]
        if not parts and "structuredContent" in self.result:
            import json

            parts = [json.dumps(self.result["structuredContent"], indent=2)]
        return "\n".join(parts) if parts else f"({len(content)} content item(s))"


# --- the overview (core/services/overview.py) ---------------------------------------------------

ATTENTION_KINDS = (
    "needs_authorization",  # the connector or credential was refused: authorize again
    "not_connected",  # a shared connector that needs a credential has none yet
    "sync_failed",
    "never_synced",
    "expiring",  # the access token expires within a day and cannot renew itself
    "quarantined",  # tools changed since approval
    "pending",  # tools never approved
    "failed_calls",  # calls failed in the last 24 h
)
ATTENTION_FIXES = ("connect", "enter_key", "sync", "review", "audit")


@dataclass(frozen=True)
class AttentionItem:
    """Something an operator should act on: what (`kind`, one of ATTENTION_KINDS, and `problem` in
    words) and the fix that applies (one of ATTENTION_FIXES): `connect` (authorize: the browser for
    OAuth, else a new connection attempt), `enter_key` (a new bearer token or API key), `sync`,
    `review` (tool definitions awaiting approval), `audit` (failing calls)."""

    severity: str  # error | warning
    kind: str
    connector: str
    agent: str | None
    problem: str  # one line: what is wrong
    fix: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HourlyCalls:
    """Tool calls of one connector in one hour (`hour`: epoch seconds at its start)."""

    hour: float
    connector: str
    calls: int
    errors: int


@dataclass(frozen=True)
class CredentialExpiry:
    """When a credential's access token expires, and whether it renews by itself (a refresh token
    or the client credentials grant) or needs an operator by then."""

    connector: str
    agent: str | None
    kind: str
    expires_at: float
    renews: bool


@dataclass(frozen=True)
class ToolList:
    """One current tool list: a connector's shared list or an agent's own, with its pinning state."""

    connector: str
    agent: str | None
    tools: int
    drifted: int  # changed in the list's latest sync
    quarantined: int  # changed since an operator (or the first sync) approved them
    pending: int  # never approved (connectors whose approval is manual)


@dataclass(frozen=True)
class Overview:
    """What the overview page shows, read in one store session (`Switchboard.overview`)."""

    generated_at: float
    connectors: dict[str, int]  # status (connected | needs_auth | error | never_synced) -> count
    credentials_needing_reauth: int
    credentials_expiring: int  # within 24 h and unable to renew by themselves
    calls_24h: int
    failed_calls_24h: int
    attention: tuple[AttentionItem, ...]
    activity: tuple[HourlyCalls, ...]  # the last 24 hours
    expiries: tuple[CredentialExpiry, ...]  # every credential with an expiry, soonest first
    tool_lists: tuple[ToolList, ...]

    @property
    def tools(self) -> int:
        return sum(t.tools for t in self.tool_lists)

    @property
    def tools_drifted(self) -> int:
        return sum(t.drifted for t in self.tool_lists)

    @property
    def tools_quarantined(self) -> int:
        return sum(t.quarantined for t in self.tool_lists)

    @property
    def tools_pending(self) -> int:
        return sum(t.pending for t in self.tool_lists)

    def counts(self) -> dict[str, int]:
        """The headline numbers by name (the CLI's and notebooks' flat view)."""
        return {
            **{f"connectors_{status}": n for status, n in self.connectors.items()},
            "credentials_needing_reauth": self.credentials_needing_reauth,
            "credentials_expiring": self.credentials_expiring,
            "tools": self.tools,
            "tools_drifted": self.tools_drifted,
            "tools_quarantined": self.tools_quarantined,
            "tools_pending": self.tools_pending,
            "calls_24h": self.calls_24h,
            "failed_calls_24h": self.failed_calls_24h,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at,
            "counts": self.counts(),
            "attention": [a.as_dict() for a in self.attention],
            "activity": [asdict(a) for a in self.activity],
            "expiries": [asdict(e) for e in self.expiries],
            "tool_lists": [asdict(t) for t in self.tool_lists],
        }


REMOVAL_OUTCOMES = ("revoked", "deleted_locally", "failed")


@dataclass(frozen=True)
class CredentialRemoval:
    """What happened to one credential when it was removed: `revoked` at its authorization server
    (`server`), `deleted_locally` only (a static key, or a server that offers no revocation: `reason`
    says which), or revocation `failed` (`reason`: the error) — deleted locally in every case."""

    connector: str
    agent: str | None
    kind: str
    server: str  # the authorization server's issuer, or the MCP server for a static key
    outcome: str  # one of REMOVAL_OUTCOMES
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OffboardingReport:
    """Everything of an agent or a connector revoked and deleted: one entry per credential, and the
    agent's gateway tokens revoked (`Switchboard.offboard_agent` / `offboard_connector`)."""

    subject: str  # "agent NAME" | "connector NAME"
    credentials: tuple[CredentialRemoval, ...] = ()
    gateway_tokens_revoked: int = 0
    removed: bool = False  # the agent or connector itself was deleted too

    def by_server(self) -> dict[str, list[CredentialRemoval]]:
        servers: dict[str, list[CredentialRemoval]] = {}
        for removal in self.credentials:
            servers.setdefault(removal.server, []).append(removal)
        return servers

    def counts(self) -> dict[str, int]:
        return {o: sum(1 for c in self.credentials if c.outcome == o) for o in REMOVAL_OUTCOMES}

    def summary(self) -> str:
        counts = self.counts()
        parts = [
            f"{counts['revoked']} revoked",
            f"{counts['deleted_locally']} deleted locally only",
            f"{counts['failed']} failed to revoke (deleted locally)",
        ]
        if self.subject.startswith("agent "):
            parts.append(f"{self.gateway_tokens_revoked} gateway tokens revoked")
        return f"{self.subject}: " + ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "summary": self.summary(),
            "credentials": [c.as_dict() for c in self.credentials],
            "gateway_tokens_revoked": self.gateway_tokens_revoked,
            "removed": self.removed,
        }


@dataclass(frozen=True)
class CredentialScopes:
    """One OAuth credential's scopes: what it was granted, what the server's metadata lists
    (`scopes_supported`, RFC 9728 or else RFC 8414) and what its last 403 `insufficient_scope`
    challenge asked for; `step_up` is what a step-up authorization asks for (the granted and the
    challenged ones), empty when the credential already has every scope a challenge asked for."""

    connector: str
    agent: str | None
    granted: tuple[str, ...]
    supported: tuple[str, ...]
    challenged: tuple[str, ...]
    challenged_at: float | None = None

    @property
    def missing(self) -> tuple[str, ...]:
        """Scopes a challenge asked for that the credential lacks."""
        return tuple(s for s in self.challenged if s not in self.granted)

    @property
    def not_granted(self) -> tuple[str, ...]:
        """Scopes the server supports that the credential was not granted (least privilege: shown,
        not asked for by a step-up unless a challenge needs them)."""
        return tuple(s for s in self.supported if s not in self.granted)

    @property
    def step_up(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.granted, *self.missing))) if self.missing else ()

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: _plain(v) for k, v in asdict(self).items()},
            "missing": list(self.missing),
            "not_granted": list(self.not_granted),
            "step_up": list(self.step_up),
        }
