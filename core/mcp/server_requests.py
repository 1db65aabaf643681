"""Requests the server sends us: ping, elicitation, sampling, roots (T-19).

Legacy servers send them on a stream and get our answer by POST; modern servers return
`input_required` with the requests embedded, and we re-send the original request with the answers
(multi round-trip requests). Either way the caller's `ServerRequestHandler` decides, except `ping`,
which is always answered at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from core.errors import McpError, ProtocolError
from core.mcp import jsonrpc
from core.mcp.jsonrpc import Message
from core.mcp.types import ServerRequestHandler

__all__ = ["ServerRequests"]

logger = logging.getLogger(__name__)


class ServerRequests:
    """Answers the server's requests with the caller's handler (None: only `ping`)."""

    def __init__(self, handler: ServerRequestHandler | None) -> None:
        self.handler = handler

    async def serve(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The result for one request; `McpError` when it cannot be served."""
        if method == "ping":
            return {}
        result = None
        if self.handler is not None:
            result = await self.handler(method, params)
        if result is None:
            raise McpError(f"method not found: {method}", code=jsonrpc.METHOD_NOT_FOUND)
        if not isinstance(result, dict):
            raise McpError("client handler returned a non-object result", code=jsonrpc.INTERNAL_ERROR)
        return result

    async def answer(self, message: Message) -> bytes:
        """The JSON-RPC response (or error) body to a request that came on a stream."""
        method = message.method or ""
        assert message.id is not None
        try:
            return jsonrpc.encode_response(message.id, await self.serve(method, message.params))
        except McpError as exc:
            return jsonrpc.encode_error(message.id, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - the caller's hook may raise anything; the server gets -32603
            logger.warning("the server-request handler failed on %s: %s", method, type(exc).__name__)
            return jsonrpc.encode_error(
                message.id, jsonrpc.INTERNAL_ERROR, "client failed to handle the request"
            )

    async def fulfil(self, params: dict[str, Any] | None, result: dict[str, Any]) -> dict[str, Any]:
        """Modern era `input_required`: answer the embedded requests; return the params to re-send."""
        requests = result.get("inputRequests")
        responses: dict[str, Any] = {}
        if isinstance(requests, dict):
            for key, request in requests.items():
                if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                    raise ProtocolError("input_required result with a malformed input request")
                params_of = request.get("params")
                responses[key] = await self.serve(
                    request["method"], params_of if isinstance(params_of, dict) else {}
                )
        else:
            await asyncio.sleep(0.05)
        new_params = dict(params) if params else {}
        new_params["inputResponses"] = responses
        state = result.get("requestState")
        if isinstance(state, str):
            new_params["requestState"] = state
        else:
            new_params.pop("requestState", None)
        return new_params
