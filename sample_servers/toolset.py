"""The common tool set every Python sample server exposes, and runtime drift (a changed description,
or a changed definition: another input schema and annotations).

Tools are plain functions so the official SDK's `MCPServer` and FastMCP can both register them.
Only `whoami` depends on the framework (how it reaches the HTTP request), so each server builder
passes its own `whoami` in. Deliberately no `from __future__ import annotations`: both frameworks
build JSON schemas from the live annotations.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from mcp_types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

# A valid 1x1 PNG, enough for clients to prove they pass image content through untouched.
TINY_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

# Tools whose call needs an OAuth scope beyond the transport-wide one; enforced over HTTP (403
# insufficient_scope) by `control.ControlPlane`, because the SDK only checks scopes per endpoint.
TOOL_REQUIRED_SCOPES: dict[str, str] = {"admin_action": "admin"}


class WhoAmI(BaseModel):
    """Who the server believes is calling. `fingerprint` is a short hash, never the credential."""

    auth: str = Field(description="oauth, bearer, api_key or none")
    subject: str = Field(description="OAuth subject, or the identity a bearer/API key maps to")
    client_id: str | None = Field(default=None, description="OAuth client_id, if any")
    scopes: list[str] = Field(default_factory=list)
    fingerprint: str | None = Field(default=None, description="sha256 prefix of the presented credential")


class SumResult(BaseModel):
    sum: float


class TargetOptions(BaseModel):
    retries: Annotated[int, Field(ge=0, le=5, description="Retry count, 0-5")] = 0
    verbose: bool = False


class Target(BaseModel):
    host: str = Field(description="Host name")
    port: Annotated[int, Field(ge=1, le=65535, description="TCP port")]
    options: TargetOptions | None = None


class ConfigureResult(BaseModel):
    mode: str
    level: int
    enabled: bool
    tags: list[str]
    target: Target
    note: str | None = None


def echo(message: str) -> str:
    """Echo the message back unchanged."""
    return message


def add(a: float, b: float) -> SumResult:
    """Add two numbers; the result is also returned as structuredContent."""
    return SumResult(sum=a + b)


def tiny_image() -> ImageContent:
    """Return a 1x1 PNG image."""
    return ImageContent(type="image", data=TINY_PNG_BASE64, mime_type="image/png")


def always_fails(reason: str = "this tool always fails") -> CallToolResult:
    """Return a tool-level error (isError: true), not a protocol error."""
    return CallToolResult(content=[TextContent(type="text", text=reason)], is_error=True)


def greet(name: str, greeting: str = "Hello") -> str:
    """Greet someone. The argument is literally called `name` to catch clients that clash with it."""
    return f"{greeting}, {name}!"


def configure(
    mode: Literal["fast", "safe", "thorough"],
    level: Annotated[int, Field(ge=1, le=10, description="Intensity, 1-10")],
    target: Target,
    enabled: bool = True,
    tags: list[str] | None = None,
    note: str | None = None,
) -> ConfigureResult:
    """Exercise form generation: enum, bounded number, boolean, array, nested object, required fields."""
    return ConfigureResult(mode=mode, level=level, enabled=enabled, tags=tags or [], target=target, note=note)


def list_items() -> list[str]:
    """List the items (read-only)."""
    return ["alpha", "beta", "gamma"]


def delete_item(item_id: str) -> str:
    """Pretend to delete an item (destructive)."""
    return f"deleted {item_id}"


def admin_action(action: str) -> str:
    """An operation that needs the `admin` OAuth scope on OAuth servers."""
    return f"admin action {action!r} done"


async def sleep(seconds: Annotated[float, Field(ge=0, le=30)] = 1.0) -> str:
    """Sleep, then answer; for cancellation and concurrency tests."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}s"


@dataclass(frozen=True)
class ToolSpec:
    name: str
    fn: Callable[..., Any]
    description: str
    annotations: ToolAnnotations | None = None


def common_tools(whoami: Callable[..., Any]) -> list[ToolSpec]:
    """The shared tool set, in listing order; `whoami` is the framework-specific implementation."""
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
    destructive = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True)
    plain = [echo, add, tiny_image, always_fails, greet, configure]
    specs = [ToolSpec("whoami", whoami, "Describe the caller's identity as the server sees it.")]
    specs += [ToolSpec(fn.__name__, fn, _doc(fn)) for fn in plain]
    specs += [
        ToolSpec("list_items", list_items, _doc(list_items), read_only),
        ToolSpec("delete_item", delete_item, _doc(delete_item), destructive),
        ToolSpec("admin_action", admin_action, _doc(admin_action)),
        ToolSpec("sleep", sleep, _doc(sleep)),
    ]
    return specs


def changed_tools() -> dict[str, ToolSpec]:
    """Changed definitions a server can switch a tool to at runtime (`ToolRegistry.set_changed`):
    what a server that silently alters a tool ("rug pull") looks like to its clients."""

    def echo(message: str, repeat: Annotated[int, Field(ge=1, le=5)] = 1) -> str:
        """Echo the message back, repeated."""
        return " ".join([message] * repeat)

    # Same function name as the original, so the frameworks' schema titles stay the same and only
    # what really changed shows in a diff.
    destructive = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True)
    return {"echo": ToolSpec("echo", echo, _doc(echo), destructive)}


def filler_tools(count: int) -> list[ToolSpec]:
    """Numbered trivial tools, to make a server's listing long enough to paginate."""
    return [_filler(index) for index in range(1, count + 1)]


def _filler(index: int) -> ToolSpec:
    def filler() -> str:
        return f"filler {index}"

    return ToolSpec(f"filler_{index:02d}", filler, f"Filler tool number {index}.")


def _doc(fn: Callable[..., Any]) -> str:
    return (fn.__doc__ or fn.__name__).strip()


class ToolHost(Protocol):
    """What `ToolRegistry` needs from a server framework."""

    def add(self, spec: ToolSpec, description: str) -> None: ...

    def remove(self, name: str) -> None: ...


class ToolRegistry:
    """Owns a server's tools so their definitions can drift at runtime without reordering them.

    Changing one description or definition re-registers every tool in the original order through
    the frameworks' public add/remove API (neither offers an in-place update).
    """

    def __init__(self, host: ToolHost, specs: list[ToolSpec]) -> None:
        self._host = host
        self._specs = specs
        self._overrides: dict[str, str] = {}
        self._changed: dict[str, ToolSpec] = {}
        for spec in specs:
            host.add(spec, spec.description)

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self._specs]

    def set_description(self, name: str, description: str | None) -> None:
        """Replace a tool's description; `None` restores the original."""
        if name not in self.names:
            raise KeyError(f"unknown tool {name!r}")
        if description is None:
            self._overrides.pop(name, None)
        else:
            self._overrides[name] = description
        self._reregister_all()

    def set_changed(self, name: str, changed: bool) -> None:
        """Serve the changed definition of a tool (see `changed_tools`), or the original again."""
        variants = changed_tools()
        if name not in variants:
            raise KeyError(f"no changed definition of {name!r}; known: {', '.join(variants)}")
        if changed:
            self._changed[name] = variants[name]
        else:
            self._changed.pop(name, None)
        self._reregister_all()

    def restore(self) -> None:
        if self._overrides or self._changed:
            self._overrides.clear()
            self._changed.clear()
            self._reregister_all()

    def _reregister_all(self) -> None:
        for spec in self._specs:
            self._host.remove(spec.name)
        for original in self._specs:
            spec = self._changed.get(original.name, original)
            self._host.add(spec, self._overrides.get(spec.name, spec.description))
