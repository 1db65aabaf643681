"""The store's repositories, one per aggregate (see `core.store.db` for how they fit together)."""

from core.store.repositories.access import AgentTokenRepository, PolicyRepository
from core.store.repositories.agents import AgentRepository
from core.store.repositories.connectors import ConnectorRepository
from core.store.repositories.credentials import CredentialRepository
from core.store.repositories.gateway import GatewayRepository
from core.store.repositories.history import AuditRepository, AuthTraceRepository
from core.store.repositories.keys import KeyRepository
from core.store.repositories.messages import MessageRepository
from core.store.repositories.overview import OverviewRepository
from core.store.repositories.pending import PendingRepository
from core.store.repositories.pinning import PinningRepository
from core.store.repositories.registrations import RegistrationRepository
from core.store.repositories.tools import ToolRepository

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
    "OverviewRepository",
    "PendingRepository",
    "PinningRepository",
    "PolicyRepository",
    "RegistrationRepository",
    "ToolRepository",
]
