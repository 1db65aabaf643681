"""`pn.viewable.Viewer` classes rendering the models in `dashboard.models`, one per page or panel.

They load on first use: a page script imports only the view it shows.
"""

from core._lazy import lazy_exports

__all__ = [
    "AgentGatewayView",
    "AgentPage",
    "AgentsPage",
    "AuditPage",
    "AuthTraceView",
    "ConnectorFormView",
    "ConnectorsPage",
    "HealthPage",
    "OffboardingReportView",
    "OverviewPage",
    "PlaygroundPage",
    "ReviewPage",
    "ScopesView",
    "ToolsPage",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AgentGatewayView": "access",
        "AgentPage": "agents",
        "AgentsPage": "agents",
        "AuditPage": "observability",
        "AuthTraceView": "observability",
        "ConnectorFormView": "connectors",
        "ConnectorsPage": "connectors",
        "HealthPage": "observability",
        "OffboardingReportView": "offboarding",
        "OverviewPage": "overview",
        "PlaygroundPage": "playground",
        "ReviewPage": "review",
        "ScopesView": "scopes",
        "ToolsPage": "tools",
    },
)
