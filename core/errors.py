"""One exception hierarchy for everything `core` raises.

Every error carries a message a person can act on; where there is a known fix, `hint` names it.
Messages never contain secrets (tokens, keys, verifiers, session ids, client secrets): build them
from URLs, status codes and field names only. Every field an error carries is declared on its class
here; nothing is attached to an exception after it was raised.

    SwitchboardError (message, hint)
    ├── ConfigurationError
    │   ├── InvalidUrlError (problem)
    │   ├── NotFoundError
    │   ├── InvalidArguments (problems)
    │   └── InvalidConfigFile (problems)
    ├── NetworkPolicyError
    ├── TransportError
    │   ├── ConnectError
    │   ├── ConnectionLost
    │   ├── RequestTimeout
    │   ├── ResponseTooLarge
    │   ├── ProtocolError
    │   │   └── PaginationError (method, pages)
    │   ├── ListingLimitExceeded (setting, limit)
    │   ├── HttpStatusError (status)
    │   ├── SessionExpired
    │   └── UnsupportedProtocolVersion
    ├── McpError (code, data)
    ├── AuthError
    │   ├── AuthRequired (challenges)
    │   ├── InsufficientScope (scopes, challenges)
    │   ├── DiscoveryError
    │   ├── RegistrationError
    │   ├── AuthorizationError
    │   ├── TokenError (error)
    │   └── NeedsReauthorization
    ├── StoreError
    │   ├── StoreBusy
    │   ├── ConflictError
    │   └── CredentialUnavailable
    ├── AccessDenied (action, role)
    └── SignInError
"""

from __future__ import annotations


class SwitchboardError(Exception):
    """Base class of every error raised by `core`."""

    message: str
    hint: str | None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


# --- input and configuration -------------------------------------------------------------------


class ConfigurationError(SwitchboardError):
    """Invalid input from an operator or a caller (bad URL, unknown connector, wrong mode)."""


class InvalidUrlError(ConfigurationError):
    """A URL that cannot be used as an MCP server or OAuth endpoint. `problem` says what is wrong
    when `core.net.urls.parse_http_url` refused it: "empty", "malformed", "not_http", "credentials"
    or "fragment" (None for other refusals)."""

    def __init__(self, message: str, *, problem: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problem = problem


class NotFoundError(ConfigurationError):
    """A named connector, agent, credential or tool does not exist."""


class InvalidArguments(ConfigurationError):
    """Tool arguments that do not satisfy the tool's inputSchema."""

    problems: tuple[str, ...]  # one line per violation, "path: what is wrong"

    def __init__(self, message: str, *, problems: tuple[str, ...]) -> None:
        super().__init__(message, hint="fix the arguments and call again")
        self.problems = problems


class InvalidConfigFile(ConfigurationError):
    """A configuration file (`switchboard import`) that cannot be applied; nothing was changed."""

    problems: tuple[str, ...]  # one line per problem, "FILE:LINE: what is wrong"

    def __init__(self, source: str, problems: tuple[str, ...]) -> None:
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        super().__init__(
            f"{source} was not applied ({count}):\n  " + "\n  ".join(problems),
            hint="fix the file and import it again; nothing was changed",
        )
        self.problems = problems


class NetworkPolicyError(SwitchboardError):
    """A request was refused by the outbound network policy (SSRF guard) before it was sent."""


# --- transport ----------------------------------------------------------------------------------


class TransportError(SwitchboardError):
    """The MCP server could not be reached or spoke something other than MCP over HTTP."""


class ConnectError(TransportError):
    """TCP/TLS connection failed."""


class ConnectionLost(TransportError):
    """The connection broke after it was made: reset, or closed in the middle of a response."""


class RequestTimeout(TransportError):
    """No (complete) answer within the configured time."""


class ResponseTooLarge(TransportError):
    """A line, event or response exceeded the configured size cap."""


class ProtocolError(TransportError):
    """Malformed or unexpected data: bad JSON, bad SSE, wrong content type, invalid UTF-8."""


class PaginationError(ProtocolError):
    """A list method's pagination did not terminate: a repeated cursor, or more pages than allowed."""

    def __init__(self, message: str, *, method: str, pages: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.method = method  # e.g. "tools/list"
        self.pages = pages  # pages received before giving up


class ListingLimitExceeded(TransportError):
    """A listing (a list method with all its pages) went past a cap: total bytes, items or time.
    `setting` is the environment variable that raises the cap, `limit` its value in effect."""

    def __init__(self, message: str, *, setting: str, limit: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or f"if the server really lists that much, raise {setting}")
        self.setting = setting
        self.limit = limit


class HttpStatusError(TransportError):
    """An unexpected HTTP status from the MCP server."""

    status: int

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class SessionExpired(TransportError):
    """The server forgot our session (404 on a request carrying Mcp-Session-Id)."""


class UnsupportedProtocolVersion(TransportError):
    """The server answered with a protocol version this client does not speak."""


class McpError(SwitchboardError):
    """A JSON-RPC error object returned by the server."""

    code: int  # the JSON-RPC error code
    data: object  # the error object's `data`, as sent

    def __init__(self, message: str, *, code: int, data: object = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.data = data


# --- authorization ------------------------------------------------------------------------------


class AuthError(SwitchboardError):
    """Base of authentication and authorization failures."""


class AuthRequired(AuthError):
    """The server wants credentials we do not have or that it rejected (401)."""

    challenges: tuple  # the server's `WWW-Authenticate` challenges (`core.rfc9110.Challenge`)

    def __init__(self, message: str, *, challenges: tuple = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.challenges = challenges


class InsufficientScope(AuthError):
    """The server answered 403 insufficient_scope; re-authorize with the scopes it names."""

    scopes: tuple[str, ...]  # granted plus challenged: what a re-authorization should ask for
    challenges: tuple

    def __init__(
        self, message: str, *, scopes: tuple[str, ...] = (), challenges: tuple = (), hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.scopes = scopes
        self.challenges = challenges


class DiscoveryError(AuthError):
    """Protected-resource or authorization-server metadata missing, invalid or inconsistent."""


class RegistrationError(AuthError):
    """No client registration could be obtained from the authorization server."""


class AuthorizationError(AuthError):
    """The authorization callback was invalid, replayed, expired or carried an error."""


class TokenError(AuthError):
    """The token endpoint refused, or answered something that is not a valid token response."""

    error: str | None  # the OAuth `error` code, when the endpoint sent one

    def __init__(self, message: str, *, error: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.error = error


class NeedsReauthorization(AuthError):
    """The credential can no longer be used or refreshed; an operator must reconnect."""


# --- store --------------------------------------------------------------------------------------


class StoreError(SwitchboardError):
    """The DuckDB store failed."""


class StoreBusy(StoreError):
    """Another process held the store for longer than we were willing to wait."""


class ConflictError(StoreError):
    """A compare-and-swap lost: the row changed since it was read."""


class CredentialUnavailable(StoreError):
    """A stored secret cannot be decrypted (unknown key, tampered or moved ciphertext)."""


# --- who may do what (core/roles.py, core/signin/) -----------------------------------------------


class AccessDenied(SwitchboardError):
    """The signed-in operator's role does not allow this action (refused by the services, whatever
    the face that asked)."""

    action: str
    role: str

    def __init__(self, action: str, role: str, *, needed: str) -> None:
        article = "an" if role[:1] in ("a", "e", "i", "o", "u") else "a"
        super().__init__(
            f"{article} {role} may not {action.replace('_', ' ')}",
            hint=f"ask an admin; it needs the {needed} role",
        )
        self.action = action
        self.role = role


class SignInError(SwitchboardError):
    """A dashboard sign-in failed (bad password, an identity provider's refusal, an ID token that does
    not validate, a sign-in that is not configured)."""
