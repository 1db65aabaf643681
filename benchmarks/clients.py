"""The two clients behind one small interface, each used the way its own documentation intends.

* Switchboard: `core.mcp.client.McpClient` on the process-wide pooled client
  (`core.net.shared_http_client`, network policy allowing loopback).
* SDK: `mcp.Client(streamable_http_client(url, http_client=...))`, with one `httpx2.AsyncClient`
  from the SDK's own `create_mcp_http_client()` shared by every connection of a run (the SDK's
  documented way to reuse a connection pool).

Both are asked for the same protocol era: "legacy" is the initialize handshake (Mcp-Session-Id),
"auto" is each client's default negotiation (both probe `server/discover` first; Switchboard's
clients get no shared `EraCache` here, so every connection probes too).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

Era = Literal["legacy", "auto"]


class SwitchboardSide:
    name = "switchboard"

    def __init__(self) -> None:
        from benchmarks.common import loopback_policy
        from core.net import shared_http_client

        self.http = shared_http_client(loopback_policy())

    @contextlib.asynccontextmanager
    async def session(self, url: str, era: Era = "legacy", auth: Any = None) -> AsyncIterator[Any]:
        from core.mcp.client import McpClient

        client = McpClient(url, http=self.http, era=era, auth=auth)
        try:
            await client.connect()
            yield client
        finally:
            await client.close()

    @staticmethod
    async def list_tools(client: Any) -> list[str]:
        return [tool["name"] for tool in await client.list_tools()]

    @staticmethod
    async def call(client: Any, name: str, arguments: dict[str, Any]) -> Any:
        result = await client.call_tool(name, arguments)
        if result.is_error:
            raise RuntimeError(f"tool {name} failed: {result.content}")
        return result

    async def aclose(self) -> None:
        from core.net import aclose_shared_clients

        await aclose_shared_clients()


class SdkSide:
    name = "sdk"

    def __init__(self, http: Any = None) -> None:
        from mcp.shared._httpx_utils import create_mcp_http_client

        self.http = http if http is not None else create_mcp_http_client()

    @contextlib.asynccontextmanager
    async def session(self, url: str, era: Era = "legacy", http: Any = None) -> AsyncIterator[Any]:
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        transport = streamable_http_client(url, http_client=http if http is not None else self.http)
        async with Client(transport, mode=era) as client:
            yield client

    @staticmethod
    async def list_tools(client: Any) -> list[str]:
        tools: list[str] = []
        cursor = None
        while True:
            page = await client.list_tools(cursor=cursor)
            tools.extend(tool.name for tool in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                return tools

    @staticmethod
    async def call(client: Any, name: str, arguments: dict[str, Any]) -> Any:
        result = await client.call_tool(name, arguments)
        if result.is_error:
            raise RuntimeError(f"tool {name} failed: {result.content}")
        return result

    async def aclose(self) -> None:
        await self.http.aclose()
