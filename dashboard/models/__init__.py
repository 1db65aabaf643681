"""State and logic of the dashboard pages as `param.Parameterized` models.

They call the services API only, hold no widgets and work without a browser — from tests and
notebooks as well as from the views in `dashboard.views`.
"""

from dashboard.models.agents import AgentCredentials, AgentDirectory, CredentialRow
from dashboard.models.base import ConnectAction
from dashboard.models.connectors import ConnectorForm, ConnectorsIndex
from dashboard.models.observability import AuditLog, AuthTrace, CredentialHealth
from dashboard.models.playground import Playground, ResultPart
from dashboard.models.scopes import ScopesModel
from dashboard.models.tools import ToolInventory

__all__ = [
    "AgentCredentials",
    "AgentDirectory",
    "AuditLog",
    "AuthTrace",
    "ConnectAction",
    "ConnectorForm",
    "ConnectorsIndex",
    "CredentialHealth",
    "CredentialRow",
    "Playground",
    "ResultPart",
    "ScopesModel",
    "ToolInventory",
]
