"""The services: the one API the dashboard, the notebooks and the CLI call — `Switchboard`.

    facade.py      Switchboard: a thin facade; each method hands its work to one part below
    parts.py       the parts, each built (and its module imported) on first use
    catalog.py     connectors and agents (canonical URL, network policy, auth scheme, header rule)
    authorizer.py  static keys, OAuth in one trip each way (enroll, begin, finish), disconnect
    offboarding.py revoke (RFC 7009) and delete an agent's or a connector's credentials, with a
                   per-server report; the agent's gateway tokens; removal revokes first
    credentials.py which credential a (connector, agent) uses; its provider via core/auth_schemes.py;
                   the issuer pin before a client secret is sent
    pool.py        per-event-loop MCP client pool with busy/retire reference counting
    sync.py        the sync engine: prepared in one store session, fetched concurrently, group commit
    calls.py       the call path: argument validation, the call, the audit row
    inventory.py   read-only views: tool pages, drift, credential health, audit, auth trace
    overview.py    the overview: counts, what needs attention and its fix, the charts' data
    operators.py   the dashboard's operators for --auth basic (password hashes only)
    context.py     what they share: store access off the event loop, HTTP, background writes

The result types are those of `core.models`, re-exported here.
"""

from core._lazy import lazy_exports
from core.models import (
    AgentInfo,
    AttentionItem,
    AuthorizationOutcome,
    CallOutcome,
    ConnectorInfo,
    ConnectOutcome,
    CredentialInfo,
    CredentialRemoval,
    CredentialScopes,
    DiscoveryInfo,
    OffboardingReport,
    OperatorInfo,
    Overview,
    SyncResult,
    ToolPage,
)
from core.services.facade import Switchboard

__all__ = [
    "AgentInfo",
    "AttentionItem",
    "AuthorizationOutcome",
    "CallOutcome",
    "CallTarget",
    "ConnectOutcome",
    "ConnectorInfo",
    "CredentialInfo",
    "CredentialRemoval",
    "CredentialScopes",
    "DiscoveryInfo",
    "OffboardingReport",
    "OperatorInfo",
    "Overview",
    "Switchboard",
    "SyncResult",
    "ToolPage",
]

# The call path (and with it the MCP client) loads when a caller asks for `CallTarget`.
__getattr__, __dir__ = lazy_exports(__name__, {"CallTarget": "calls"})
