"""RFC 9207 authorization-response `iss` check (mix-up defence, A-25), applied for every revision.

| AS advertises iss | iss in response | action                   |
|-------------------|-----------------|--------------------------|
| yes               | present         | compare                  |
| yes               | absent          | reject                   |
| no                | present         | compare (MCP's policy)   |
| no                | absent          | proceed                  |

Comparison is simple string equality with the issuer recorded when the authorization started: no case
folding, no default-port or trailing-slash normalization.
"""

from __future__ import annotations

from core.errors import AuthorizationError


def check_iss(iss: str | None, *, expected_issuer: str, advertised: bool) -> bool:
    """Raise `AuthorizationError` when the response must be discarded; return whether `iss` was verified."""
    if iss is None:
        if advertised:
            raise AuthorizationError(
                "the authorization response carries no iss although the authorization server promises it",
                hint="discarded as a possible mix-up attack; start the authorization again",
            )
        return False
    if iss != expected_issuer:
        raise AuthorizationError(
            "the authorization response came from a different authorization server than the one asked",
            hint="discarded as a possible mix-up attack; start the authorization again",
        )
    return True
