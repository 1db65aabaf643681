"""RFC 9110 §11.6.1 `WWW-Authenticate` parsing (owned by the transport work; see docs/architecture.md).

Grammar (RFC 9110 §11.6.1, §11.2, §5.6):

    WWW-Authenticate = #challenge
    challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    auth-param       = token BWS "=" BWS ( token / quoted-string )
    token68          = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="

Commas separate both challenges and the parameters of one challenge, so the parser decides at each
list element whether it starts a parameter (`name =`) or a new challenge (`scheme ...`). It walks the
text once, character by character, so nothing inside a quoted string can ever be read as a
parameter (the regex extractors in several SDKs get this wrong). Malformed input never raises: the
parser skips what it cannot read and keeps every challenge it could.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Challenge", "is_token", "parse_www_authenticate"]

# RFC 9110 §5.6.2 tchar
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TOKEN68_CHAR = frozenset("-._~+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_WS = frozenset(" \t")


def is_token(text: str) -> bool:
    """RFC 9110 §5.6.2 `token` (1*tchar): what an HTTP field name, such as an API key's header, must be."""
    return bool(text) and all(c in _TCHAR for c in text)


@dataclass(frozen=True)
class Challenge:
    """One challenge: scheme lower-cased, parameter names lower-cased, values unescaped."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    def get(self, name: str) -> str | None:
        return self.params.get(name.lower())


def parse_www_authenticate(values: Iterable[str] | str) -> tuple[Challenge, ...]:
    """Parse every `WWW-Authenticate` field value (the header may repeat) into challenges.

    `values` is the list of field values as received (one entry per header line); a single string
    is accepted too. Scheme and parameter names are case-insensitive and returned lower-cased; when
    a parameter repeats within one challenge the first occurrence wins.
    """
    if isinstance(values, str):
        values = (values,)
    challenges: list[Challenge] = []
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        challenges.extend(_Parser(value).challenges())
    return tuple(challenges)


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.n = len(text)

    # --- lexical helpers ------------------------------------------------------------------------

    def _skip_ws(self) -> None:
        s, n = self.s, self.n
        while self.i < n and s[self.i] in _WS:
            self.i += 1

    def _skip_list_separators(self) -> None:
        s, n = self.s, self.n
        while self.i < n and (s[self.i] in _WS or s[self.i] == ","):
            self.i += 1

    def _token(self) -> str:
        start = self.i
        s, n = self.s, self.n
        while self.i < n and s[self.i] in _TCHAR:
            self.i += 1
        return s[start : self.i]

    def _quoted(self) -> str | None:
        """Read a quoted-string starting at the opening quote; None if it never closes."""
        s, n = self.s, self.n
        assert s[self.i] == '"'
        i = self.i + 1
        out: list[str] = []
        while i < n:
            c = s[i]
            if c == "\\" and i + 1 < n:
                out.append(s[i + 1])
                i += 2
                continue
            if c == '"':
                self.i = i + 1
                return "".join(out)
            out.append(c)
            i += 1
        self.i = n
        return None

    def _skip_element(self) -> None:
        """Skip to the next top-level comma, stepping over quoted strings."""
        s, n = self.s, self.n
        while self.i < n and s[self.i] != ",":
            if s[self.i] == '"':
                self._quoted()
            else:
                self.i += 1

    def _looks_like_param(self) -> bool:
        """At a list element: is this `token BWS "="` followed by a value (not a token68 tail)?"""
        j = self.i
        s, n = self.s, self.n
        while j < n and s[j] in _TCHAR:
            j += 1
        if j == self.i:
            return False
        while j < n and s[j] in _WS:
            j += 1
        if j >= n or s[j] != "=":
            return False
        j += 1
        while j < n and s[j] in _WS:
            j += 1
        # `name=` followed by a token or quoted-string is a parameter; `abc==` / `abc=` at the end
        # of the element is a token68.
        return j < n and (s[j] == '"' or s[j] in _TCHAR) and s[j] != "="

    def _try_token68(self) -> str | None:
        j = self.i
        s, n = self.s, self.n
        while j < n and s[j] in _TOKEN68_CHAR:
            j += 1
        if j == self.i:
            return None
        while j < n and s[j] == "=":
            j += 1
        k = j
        while k < n and s[k] in _WS:
            k += 1
        if k < n and s[k] != ",":
            return None
        value = s[self.i : j]
        self.i = k
        return value

    # --- grammar ---------------------------------------------------------------------------------

    def challenges(self) -> list[Challenge]:
        out: list[Challenge] = []
        while True:
            self._skip_list_separators()
            if self.i >= self.n:
                return out
            scheme = self._token()
            if not scheme:
                # Not a token where a challenge must start: skip this list element.
                self.i += 1
                self._skip_element()
                continue
            if self.i < self.n and self.s[self.i] not in _WS and self.s[self.i] != ",":
                # e.g. `Bearer"x"` or `realm="x"` with no scheme before it: not a challenge.
                self._skip_element()
                continue
            self._skip_ws()
            params: dict[str, str] = {}
            token68: str | None = None
            if self.i < self.n and self.s[self.i] != "," and not self._looks_like_param():
                token68 = self._try_token68()
                if token68 is None:
                    self._skip_element()
            else:
                self._params(params)
            out.append(Challenge(scheme=scheme.lower(), params=params, token68=token68))

    def _params(self, params: dict[str, str]) -> None:
        """Read `#auth-param` for the current challenge; stop before the next challenge's scheme."""
        while True:
            self._skip_list_separators()
            if self.i >= self.n or not self._looks_like_param():
                return
            name = self._token().lower()
            self._skip_ws()
            self.i += 1  # "="
            self._skip_ws()
            if self.s[self.i] == '"':
                value = self._quoted()
                if value is None:
                    return  # unterminated quoted string: drop the parameter and stop
            else:
                value = self._token()
            params.setdefault(name, value)
            self._skip_ws()
            if self.i < self.n and self.s[self.i] != ",":
                # Garbage after a value (`a=b c`): skip the rest of this element.
                self._skip_element()
