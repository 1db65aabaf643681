"""Package exports loaded on first use (PEP 562), for packages whose light modules must stay light.

    __getattr__, __dir__ = lazy_exports(__name__, {"McpClient": "client", ...})

`from core.mcp import McpClient` imports `core.mcp.client` then; `import core.mcp.auth` alone does not.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, home: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose name `n` lives in module `package.home[n]`."""

    def __getattr__(name: str) -> Any:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(home)

    return __getattr__, __dir__
