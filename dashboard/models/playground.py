"""The tool playground: pick agent, connector and tool, fill in arguments, call, read the result."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import param

from core.errors import ConfigurationError
from core.models import CallOutcome
from dashboard.models.base import WithChoices
from dashboard.models.schema_form import FieldSpec, fields_from_schema

# Image types a browser renders without running code (SVG can carry scripts, so it is not one).
SAFE_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


@dataclass(frozen=True)
class ResultPart:
    """One piece of a tool result, ready to render: text, JSON, or image bytes."""

    kind: str  # text | json | image
    text: str = ""
    value: Any = None
    data: bytes = b""
    mime_type: str = ""


class Playground(WithChoices):
    """Call any tool as a given agent (or with the shared credential); every call is audited."""

    agent = param.String(default=None, allow_None=True, doc="Call as this agent; None = shared credential.")
    connector = param.String(default=None, allow_None=True)
    tool = param.String(default=None, allow_None=True)
    tool_names = param.List(default=[])
    definition = param.Dict(default=None, allow_None=True, doc="The chosen tool's wire definition.")
    fields = param.List(default=[], item_type=FieldSpec, doc="Form fields from the inputSchema.")
    raw_mode = param.Boolean(default=False, doc="Type the arguments as JSON instead of using the form.")
    raw_json = param.String(default="{}")
    arguments = param.Dict(default={}, doc="Arguments from the form.")
    outcome = param.ClassSelector(class_=CallOutcome, default=None, allow_None=True, doc="The last call.")

    async def choose(self, *, connector: str | None, agent: str | None) -> list[str]:
        """Pick where to call; loads that connector's tools as the agent sees them."""
        self.param.update(
            connector=connector,
            agent=agent,
            tool=None,
            definition=None,
            fields=[],
            outcome=None,
            tool_names=[],
        )
        self._read("tool")  # a definition still loading belongs to the previous choice

        async def tools() -> list[dict[str, Any]]:
            return await self.services.tool_list(connector=connector, agent=agent) if connector else []

        await self._load(
            "where", tools(), lambda found: self.param.update(tool_names=sorted({t["name"] for t in found}))
        )
        return self.tool_names

    async def choose_tool(self, tool: str | None) -> dict[str, Any] | None:
        """Pick a tool; loads its definition and the form fields of its inputSchema."""
        self.param.update(tool=tool, definition=None, fields=[], outcome=None, arguments={})

        async def definition() -> dict[str, Any] | None:
            if tool and self.connector:
                return await self.services.tool_definition(self.connector, tool, agent=self.agent)
            return None

        loaded = await self._load("tool", definition(), self._show_definition)
        # None when a newer choice superseded this one (its definition is not the one shown).
        return loaded if loaded is self.definition else None

    def _show_definition(self, definition: dict[str, Any] | None) -> None:
        if definition is not None:
            self.param.update(
                definition=definition,
                fields=list(fields_from_schema(definition.get("inputSchema"))),
                raw_json=json.dumps(_defaults(definition.get("inputSchema")), indent=2),
            )

    def arguments_to_send(self) -> dict[str, Any]:
        if not self.raw_mode:
            return dict(self.arguments)
        try:
            arguments = json.loads(self.raw_json or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"The arguments are not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from None
        if not isinstance(arguments, dict):
            raise ConfigurationError('The arguments must be a JSON object, e.g. {"message": "hi"}.')
        return arguments

    async def call(self) -> CallOutcome:
        if not (self.connector and self.tool):
            raise ConfigurationError("Choose a connector and a tool first.")
        arguments = self.arguments_to_send()
        self.outcome = None
        self.outcome = await self.services.call_tool(self.connector, self.tool, arguments, agent=self.agent)
        return self.outcome

    @param.depends("outcome")
    def result_parts(self) -> list[ResultPart]:
        return result_parts(self.outcome.result) if self.outcome is not None else []


def result_parts(result: dict[str, Any]) -> list[ResultPart]:
    """A CallToolResult's content items (and structured content) as renderable parts."""
    parts = [_content_part(item) for item in result.get("content") or [] if isinstance(item, dict)]
    if result.get("structuredContent") is not None:
        parts.append(ResultPart(kind="json", value=result["structuredContent"]))
    return parts


def _content_part(item: dict[str, Any]) -> ResultPart:
    kind = item.get("type")
    if kind == "text":
        return ResultPart(kind="text", text=str(item.get("text", "")))
    if kind == "image":
        mime_type = str(item.get("mimeType", ""))
        if mime_type in SAFE_IMAGE_TYPES:
            try:
                return ResultPart(
                    kind="image",
                    data=base64.b64decode(item.get("data", ""), validate=True),
                    mime_type=mime_type,
                )
            except (binascii.Error, ValueError):
                return ResultPart(kind="text", text=f"(an {mime_type} image that is not valid base64)")
        return ResultPart(kind="text", text=f"(an image of type {mime_type or 'unknown'}, not displayed)")
    if kind == "resource_link":
        return ResultPart(kind="text", text=f"Link: {item.get('uri', '')} {item.get('name', '')}".rstrip())
    if kind == "resource":
        resource = item.get("resource") or {}
        if "text" in resource:
            return ResultPart(kind="text", text=str(resource["text"]))
        return ResultPart(kind="text", text=f"(binary resource {resource.get('uri', '')})")
    return ResultPart(kind="json", value=item)


def _defaults(schema: dict[str, Any] | None) -> dict[str, Any]:
    """A starting point for raw-JSON mode: every property that declares a default."""
    properties = (schema or {}).get("properties") or {}
    return {k: v["default"] for k, v in properties.items() if isinstance(v, dict) and "default" in v}
