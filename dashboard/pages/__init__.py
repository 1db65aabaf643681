"""Thin page scripts, one per route, that `panel serve` runs (not imported as modules)."""
