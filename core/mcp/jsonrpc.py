"""JSON-RPC 2.0 framing for MCP: encode one message per POST body, classify what comes back.

Plain dicts and the stdlib `json` module on purpose: this is the hot path, and a validation layer
(pydantic) would cost more than the network round trip to a local server. Only the envelope is
checked here; the MCP client checks the result shapes it relies on.
"""

from __future__ import annotations

import json
from typing import Any, Final

from core.errors import McpError, ProtocolError

__all__ = [
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "MISSING_REQUIRED_CLIENT_CAPABILITY",
    "PARSE_ERROR",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "Message",
    "decode_message",
    "encode_error",
    "encode_notification",
    "encode_request",
    "encode_response",
    "error_from_object",
    "is_valid_id",
    "result_of",
]

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
HEADER_MISMATCH: Final = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY: Final = -32021
UNSUPPORTED_PROTOCOL_VERSION: Final = -32022

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_loads = json.loads


def encode_request(request_id: int | str, method: str, params: dict[str, Any] | None) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return _dump(body)


def encode_notification(method: str, params: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        body["params"] = params
    return _dump(body)


def encode_response(request_id: int | str, result: dict[str, Any]) -> bytes:
    return _dump({"jsonrpc": "2.0", "id": request_id, "result": result})


def encode_error(request_id: int | str | None, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return _dump({"jsonrpc": "2.0", "id": request_id, "error": error})


def _dump(body: dict[str, Any]) -> bytes:
    try:
        return _dumps(body).encode("utf-8")
    except (TypeError, ValueError) as exc:
        # A caller passed something JSON cannot carry (a set, NaN, an object): say which message.
        raise ProtocolError(
            f"cannot encode JSON-RPC message {body.get('method') or 'response'}: {exc}",
            hint="pass only JSON values (dict, list, str, int, float, bool, None)",
        ) from None


def is_valid_id(value: object) -> bool:
    # bool is an int subclass but never a valid JSON-RPC id
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


class Message:
    """A decoded JSON-RPC message: exactly one of request, notification, response or error."""

    __slots__ = ("id", "kind", "method", "raw")

    REQUEST: Final = "request"
    NOTIFICATION: Final = "notification"
    RESPONSE: Final = "response"
    ERROR: Final = "error"

    def __init__(self, raw: dict[str, Any], kind: str, msg_id: int | str | None, method: str | None) -> None:
        self.raw = raw
        self.kind = kind
        self.id = msg_id
        self.method = method

    @property
    def params(self) -> dict[str, Any]:
        params = self.raw.get("params")
        return params if isinstance(params, dict) else {}

    def __repr__(self) -> str:  # never the payload: it may hold tool output or secrets
        return f"<Message {self.kind} id={self.id!r} method={self.method!r}>"


def decode_message(data: str | bytes) -> Message:
    """Parse one JSON-RPC message; raise `ProtocolError` for anything that is not one.

    Hostile input (invalid UTF-8, 100k-deep nesting, a 10**6-digit integer, a JSON array batch)
    becomes a `ProtocolError` instead of escaping as `RecursionError`/`ValueError`.
    """
    try:
        obj = _loads(data)
    except UnicodeDecodeError:
        raise ProtocolError("JSON-RPC message is not valid UTF-8") from None
    except RecursionError:
        raise ProtocolError("JSON-RPC message is nested too deeply") from None
    except ValueError as exc:
        raise ProtocolError(f"JSON-RPC message is not valid JSON ({_short(exc)})") from None
    if not isinstance(obj, dict):
        raise ProtocolError(
            f"expected one JSON-RPC message object, got a JSON {type(obj).__name__}",
            hint="batches were removed in MCP 2025-06-18",
        )
    if obj.get("jsonrpc") != "2.0":
        raise ProtocolError('JSON-RPC message without "jsonrpc": "2.0"')
    method = obj.get("method")
    if method is not None:
        if not isinstance(method, str):
            raise ProtocolError("JSON-RPC method is not a string")
        if "id" in obj:
            if not is_valid_id(obj["id"]):
                raise ProtocolError("JSON-RPC request id must be a string or an integer")
            return Message(obj, Message.REQUEST, obj["id"], method)
        return Message(obj, Message.NOTIFICATION, None, method)
    msg_id = obj.get("id")
    if msg_id is not None and not is_valid_id(msg_id):
        raise ProtocolError("JSON-RPC response id must be a string or an integer")
    if "error" in obj:
        if not isinstance(obj["error"], dict):
            raise ProtocolError("JSON-RPC error member is not an object")
        return Message(obj, Message.ERROR, msg_id, None)
    if "result" in obj:
        if msg_id is None:
            raise ProtocolError("JSON-RPC response without an id")
        return Message(obj, Message.RESPONSE, msg_id, None)
    raise ProtocolError("JSON-RPC message is neither a request, a notification nor a response")


def result_of(message: Message, request_id: int | str, method: str) -> dict[str, Any]:
    """The `result` object of the response to our request `request_id`, or the error it carries."""
    if message.kind == Message.ERROR and message.id is None:
        # An error the server could not tie to our request (e.g. rejected before parsing the id).
        raise error_from_object(message.raw["error"], method=method)
    if message.id != request_id or type(message.id) is not type(request_id):
        raise ProtocolError(f"{method}: the response does not answer our request (wrong or missing id)")
    if message.kind == Message.ERROR:
        raise error_from_object(message.raw["error"], method=method)
    if message.kind != Message.RESPONSE:
        raise ProtocolError(f"{method}: expected a JSON-RPC response, got a {message.kind}")
    result = message.raw["result"]
    if not isinstance(result, dict):
        raise ProtocolError(f"{method}: the JSON-RPC result is not an object")
    return result


def error_from_object(error: dict[str, Any], *, method: str | None = None) -> McpError:
    """Turn a JSON-RPC error object into `McpError` (message and code from the server, bounded)."""
    code = error.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        code = INTERNAL_ERROR
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = "error without a message"
    message = _truncate(message, 500)
    where = f"{method}: " if method else ""
    hint = None
    if code == METHOD_NOT_FOUND:
        hint = "the server does not implement this method"
    elif code == INVALID_PARAMS:
        hint = "check the arguments against the tool's input schema"
    return McpError(f"{where}server error {code}: {message}", code=code, data=error.get("data"), hint=hint)


def _short(exc: Exception) -> str:
    return _truncate(str(exc), 120)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
