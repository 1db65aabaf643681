"""Thin page scripts, one per route, that `panel serve` runs (not imported as modules)."""

__all__: list[str] = []
