"""The store's repositories, one per aggregate (see `core.store.db` for how they fit together).

The repositories load on first use (`Store` builds each when it is first read), so a command pays
only for those it touches."""

from core._lazy import lazy_exports

__all__ = [
    "AgentRepository",
    "AgentTokenRepository",
    "AuditRepository",
    "AuthTraceRepository",
    "ConnectorRepository",
    "CredentialRepository",
    "GatewayRepository",
    "KeyRepository",
    "MessageRepository",
    "OperatorRepository",
    "OverviewRepository",
    "PendingRepository",
    "PinningRepository",
    "PolicyRepository",
    "RegistrationRepository",
    "ToolRepository",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AgentTokenRepository": "access",
        "PolicyRepository": "access",
        "AgentRepository": "agents",
        "ConnectorRepository": "connectors",
        "CredentialRepository": "credentials",
        "GatewayRepository": "gateway",
        "AuditRepository": "history",
        "AuthTraceRepository": "history",
        "KeyRepository": "keys",
        "MessageRepository": "messages",
        "OperatorRepository": "operators",
        "OverviewRepository": "overview",
        "PendingRepository": "pending",
        "PinningRepository": "pinning",
        "RegistrationRepository": "registrations",
        "ToolRepository": "tools",
    },
)
