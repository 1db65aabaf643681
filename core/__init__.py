"""Switchboard's library: everything the dashboard, the CLI, the gateway and the notebooks share.

    services/  Switchboard, the one API the faces call (core.services)
    mcp/       the MCP client over Streamable HTTP and the 2024-11-05 HTTP+SSE era
    oauth/     OAuth 2.1, one module per RFC (rfc8414, rfc9728, rfc7591, rfc7636, rfc8707, rfc7009)
    access/    the agent gateway's tokens, policy and tool pinning
    store/     the store: DuckDB embedded, PostgreSQL for a team
    net/       HTTP plumbing, URL handling, the outbound address policy
    errors.py  one exception hierarchy, rooted at SwitchboardError

The exports load on first use, so `import core` stays as light as the CLI needs.
"""

from core._lazy import lazy_exports

__all__ = ["Switchboard", "SwitchboardError"]

__getattr__, __dir__ = lazy_exports(__name__, {"Switchboard": "services", "SwitchboardError": "errors"})
