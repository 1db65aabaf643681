"""Shared pytest configuration. Keep fixtures in plugin modules under tests/fixtures/."""

import sys
from pathlib import Path

# `tests` has no __init__.py, so make the repo root importable for `tests.fixtures.*` however
# pytest is launched (`python -m pytest` adds the cwd, the `pytest` script does not).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.services",
    "tests.fixtures.postgres",
    "tests.fixtures.browser",
    "tests.fixtures.dashboard",
]
