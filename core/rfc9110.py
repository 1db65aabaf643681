"""RFC 9110 §11.6.1 `WWW-Authenticate` parsing (owned by the transport work; see docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Challenge:
    """One challenge: scheme lower-cased, parameter names lower-cased, values unescaped."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    def get(self, name: str) -> str | None:
        return self.params.get(name.lower())


def parse_www_authenticate(values: list[str]) -> tuple[Challenge, ...]:
    """Parse every `WWW-Authenticate` field value (the header may repeat) into challenges."""
    raise NotImplementedError("implemented by the transport work")
