"""The layer diagram of docs/architecture.md holds with no exception: `core` imports none of the
faces (the CLI, the dashboard) and nothing of Panel's stack. Read from the source, so an import
inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACES_AND_UI = {"cli", "dashboard", "panel", "bokeh", "param", "hvplot"}


def _imported_top_levels(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_no_face():
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_top_levels(path) & FACES_AND_UI)
        for path in sorted((ROOT / "core").rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}
    assert len(offenders) > 30  # the walk really read core/


def test_lazily_exported_packages_resolve_every_public_name():
    """`core`, `core.oauth`, `core.net`, `core.services`, `core.store`, its repositories and
    `dashboard.views` load their exports on first use (so the CLI's read commands skip the OAuth
    flows, httpx2 and the repositories they do not read, and a page loads only its view): every name
    in `__all__` must still resolve."""
    import core
    import core.net
    import core.oauth
    import core.services
    import core.store
    import core.store.repositories
    import dashboard.views

    packages = (
        core,
        core.oauth,
        core.net,
        core.services,
        core.store,
        core.store.repositories,
        dashboard.views,
    )
    for package in packages:
        missing = [name for name in package.__all__ if not hasattr(package, name)]
        assert missing == [], (package.__name__, missing)
    assert set(core.oauth._EXPORTS) == set(core.oauth.__all__)


def test_every_package_declares_its_public_names():
    packages = [
        init
        for face in ("core", "dashboard", "cli", "gateway")
        for init in sorted((ROOT / face).rglob("__init__.py"))
    ]
    undeclared = [str(init.relative_to(ROOT)) for init in packages if "__all__" not in init.read_text()]
    assert undeclared == []
    assert len(packages) > 10  # the walk really found the packages
