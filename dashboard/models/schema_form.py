"""A tool's `inputSchema` as a list of form fields, and the arguments object back from their values.

Pure data, no widgets: `dashboard.views.schema_form` renders the fields. Field keys are the tool's
argument names verbatim and are only ever used as dictionary keys — never as keyword arguments of
a param/Panel object, where an argument called `name` would clash with their own `name`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigurationError

STRING, ENUM, INTEGER, NUMBER, BOOLEAN, ARRAY, OBJECT, JSON = (
    "string",
    "enum",
    "integer",
    "number",
    "boolean",
    "array",
    "object",
    "json",
)
_MAX_DEPTH = 6  # deeper (or self-referencing) schemas fall back to a raw-JSON field


@dataclass(frozen=True)
class FieldSpec:
    key: str  # the argument's name; "" for an array's items
    kind: str  # one of STRING … JSON
    required: bool = False
    description: str = ""
    default: Any = None
    has_default: bool = False
    minimum: float | None = None
    maximum: float | None = None
    options: tuple[Any, ...] = ()  # enum values
    items: FieldSpec | None = None  # array items
    properties: tuple[FieldSpec, ...] = ()  # object members
    title: str = ""  # a label other than the key (array items: "tags #1")

    @property
    def label(self) -> str:
        if self.title:
            return self.title
        return f"{self.key} *" if self.required else self.key

    @property
    def bounded(self) -> bool:
        return self.minimum is not None and self.maximum is not None


def fields_from_schema(schema: Mapping[str, Any] | None) -> tuple[FieldSpec, ...]:
    """The fields of a tool's `inputSchema` (an object schema), in declaration order."""
    root = dict(schema or {})
    return _properties(root, root, depth=0)


def collect(fields: tuple[FieldSpec, ...], values: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """The arguments object from the fields' values: empty optional fields are left out, a missing
    required one is an error naming its path (e.g. `target.host`)."""
    arguments: dict[str, Any] = {}
    missing = []
    for field in fields:
        value = values.get(field.key)
        if is_empty(value):
            if field.required:
                missing.append(path + field.key)
            continue
        arguments[field.key] = value
    if missing:
        raise ConfigurationError("Fill in the required field(s): " + ", ".join(missing))
    return arguments


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _properties(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> tuple[FieldSpec, ...]:
    required = set(schema.get("required") or ())
    return tuple(
        _field(key, sub, root, key in required, depth)
        for key, sub in (schema.get("properties") or {}).items()
    )


def _field(key: str, schema: Any, root: Mapping[str, Any], required: bool, depth: int) -> FieldSpec:
    schema = _resolve(schema, root)
    common = {
        "key": key,
        "required": required,
        "description": str(schema.get("description") or ""),
        "default": schema.get("default"),
        "has_default": "default" in schema,
    }
    if depth > _MAX_DEPTH:
        return FieldSpec(kind=JSON, **common)
    schema = _without_null(schema, root)
    if schema is None:
        return FieldSpec(kind=JSON, **common)
    kind = schema.get("type")
    if "enum" in schema or "const" in schema:
        options = tuple(schema["enum"]) if "enum" in schema else (schema["const"],)
        if all(isinstance(o, (str, int, float, bool)) for o in options):
            return FieldSpec(kind=ENUM, options=options, **common)
        return FieldSpec(kind=JSON, **common)
    if kind == "boolean":
        return FieldSpec(kind=BOOLEAN, **common)
    if kind in ("integer", "number"):
        return FieldSpec(kind=kind, **common, **_bounds(schema, integer=kind == "integer"))
    if kind == "string":
        return FieldSpec(kind=STRING, **common)
    if kind == "array":
        return FieldSpec(
            kind=ARRAY, items=_field("", schema.get("items") or {}, root, True, depth + 1), **common
        )
    if kind == "object" or "properties" in schema:
        if not schema.get("properties"):
            return FieldSpec(kind=JSON, **common)  # free-form map: nothing to build a form from
        return FieldSpec(kind=OBJECT, properties=_properties(schema, root, depth + 1), **common)
    return FieldSpec(kind=JSON, **common)


def _resolve(schema: Any, root: Mapping[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` and merge a single-member `allOf` (as pydantic writes nested models)."""
    if not isinstance(schema, Mapping):
        return {}
    schema = dict(schema)
    for _ in range(_MAX_DEPTH):
        ref = schema.pop("$ref", None)
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = (
                    target.get(part.replace("~1", "/").replace("~0", "~"), {})
                    if isinstance(target, Mapping)
                    else {}
                )
            schema = {**(target if isinstance(target, Mapping) else {}), **schema}
            continue
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1:
            schema.pop("allOf")
            schema = {**_resolve(all_of[0], root), **schema}
            continue
        break
    return schema


def _without_null(schema: dict[str, Any], root: Mapping[str, Any]) -> dict[str, Any] | None:
    """`T | None` as just `T` (an empty field sends nothing); None when several real types remain."""
    variants = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(variants, list):
        real = [v for v in (_resolve(v, root) for v in variants) if v.get("type") != "null"]
        if len(real) != 1:
            return None
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        return {**real[0], **rest}
    kind = schema.get("type")
    if isinstance(kind, list):
        real_types = [t for t in kind if t != "null"]
        if len(real_types) != 1:
            return None
        return {**schema, "type": real_types[0]}
    return schema


def _bounds(schema: Mapping[str, Any], *, integer: bool) -> dict[str, float | None]:
    step = 1 if integer else 0
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(schema.get("exclusiveMinimum"), (int, float)):
        low = schema["exclusiveMinimum"] + step
    if isinstance(schema.get("exclusiveMaximum"), (int, float)):
        high = schema["exclusiveMaximum"] - step
    return {"minimum": low, "maximum": high}
