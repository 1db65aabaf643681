"""Tool arguments checked against the tool's `inputSchema` before anything is sent."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.errors import InvalidArguments


def validate_arguments(tool: str, schema: Mapping[str, Any] | None, arguments: Mapping[str, Any]) -> None:
    if not schema or not isinstance(schema, Mapping):
        return
    # jsonschema loads on the first call with a schema, not with `core.services` (~60 ms of imports).
    import jsonschema
    from jsonschema.exceptions import SchemaError, UnknownType
    from referencing.exceptions import Unresolvable

    try:
        validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        validator_class.check_schema(schema)
        validator = validator_class(schema)
        problems = tuple(
            f"{'/'.join(str(p) for p in error.absolute_path) or '(arguments)'}: {error.message}"
            for error in sorted(validator.iter_errors(dict(arguments)), key=lambda e: list(e.absolute_path))
        )
    except (SchemaError, UnknownType, Unresolvable, re.error, TypeError, ValueError, RecursionError):
        # A server's broken schema (bad $ref, unknown type, invalid pattern) must not block the
        # operator, nor leak a validator exception out of core; the server will judge the call.
        return
    if problems:
        raise InvalidArguments(f"invalid arguments for {tool}: " + "; ".join(problems[:5]), problems=problems)
