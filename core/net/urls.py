"""URLs as Switchboard accepts and shows them: one check for every http(s) URL it is given (an MCP
server, an OAuth endpoint, the dashboard's form) and one redaction for every URL it prints.

`parse_http_url` accepts an absolute `http`/`https` URL with a host and no userinfo (credentials
belong in a credential, never in a URL that ends up in logs and the store); a fragment is refused
unless the caller allows it. Each refusal is an `InvalidUrlError` whose `problem` names what is
wrong, so a face (the dashboard form) can word it its own way without checking again.

`redact_url` keeps scheme, host, port and path: a query or fragment can carry an API key, an
authorization code or a state, and userinfo a password. It works on text, so it never fails, even
on a URL too malformed to parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import InvalidUrlError

__all__ = ["HttpUrl", "parse_http_url", "redact_url"]

_QUERY_OR_FRAGMENT = re.compile(r"[?#]")


@dataclass(frozen=True, slots=True)
class HttpUrl:
    """An absolute http(s) URL that passed `parse_http_url`; `scheme` and `host` are lower-case,
    an IPv6 `host` has no brackets, `url` is the text as given."""

    url: str
    scheme: str
    host: str
    port: int | None
    path: str
    query: str

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    @property
    def shown(self) -> str:
        return redact_url(self.url)


def parse_http_url(url: object, what: str = "the URL", *, allow_fragment: bool = False) -> HttpUrl:
    """Check `url` (see the module docstring); `what` names it in the error ("the MCP server URL")."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidUrlError(f"{what} is empty", problem="empty", hint="write it as https://host/path")
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidUrlError(f"{what} is not a valid URL: {redact_url(text)}", problem="malformed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise InvalidUrlError(
            f"{what} is not an absolute http(s) URL: {redact_url(text)}",
            problem="not_http",
            hint="write it as https://host/path",
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidUrlError(
            f"{what} must not carry credentials: {redact_url(text)}",
            problem="credentials",
            hint="configure them as a credential instead",
        )
    if "#" in text and not allow_fragment:
        raise InvalidUrlError(f"{what} must not have a fragment: {redact_url(text)}", problem="fragment")
    return HttpUrl(text, scheme, parts.hostname.lower(), port, parts.path, parts.query)


def redact_url(url: object) -> str:
    """`url` without userinfo, query and fragment, for messages, logs and the auth trace."""
    head = _QUERY_OR_FRAGMENT.split(str(url), maxsplit=1)[0]
    scheme, separator, rest = head.partition("://")
    if not separator:
        return head.rpartition("@")[2]
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
