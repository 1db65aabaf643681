"""The agent gateway: one MCP endpoint per agent (`/agents/<agent>/mcp`) in front of every
connector, with the agent's own credentials, policy and pinned tool definitions. A face beside
`dashboard/`; `core` never imports it."""

from gateway.app import GatewayApp, GatewayConfig
from gateway.naming import gateway_name
from gateway.serve import serve

__all__ = ["GatewayApp", "GatewayConfig", "gateway_name", "serve"]
