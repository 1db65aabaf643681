"""Dashboard pieces that need neither services nor a browser: schema → form, result rendering,
redirect safety, flash messages (in a store, on each engine), the callback's parameter handling."""

from __future__ import annotations

import asyncio
import base64

import pytest

from core.errors import ConfigurationError
from core.models import AuthorizationOutcome
from dashboard import flash, navigation, plugins
from dashboard.models.connectors import ConnectorForm
from dashboard.models.playground import result_parts
from dashboard.models.schema_form import (
    ARRAY,
    BOOLEAN,
    ENUM,
    INTEGER,
    JSON,
    OBJECT,
    STRING,
    collect,
    fields_from_schema,
)
from dashboard.views.schema_form import ArrayEditor, ObjectEditor, form_for

# The inputSchema the SDK sample servers publish for `configure` (pydantic: $defs, anyOf-null).
CONFIGURE_SCHEMA = {
    "type": "object",
    "required": ["mode", "level", "target"],
    "properties": {
        "mode": {"enum": ["fast", "safe", "thorough"], "type": "string"},
        "level": {"description": "Intensity, 1-10", "maximum": 10, "minimum": 1, "type": "integer"},
        "target": {"$ref": "#/$defs/Target"},
        "enabled": {"default": True, "type": "boolean"},
        "tags": {
            "anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}],
            "default": None,
        },
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
    },
    "$defs": {
        "Target": {
            "type": "object",
            "required": ["host", "port"],
            "properties": {
                "host": {"type": "string", "description": "Host name"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "options": {"anyOf": [{"$ref": "#/$defs/TargetOptions"}, {"type": "null"}], "default": None},
            },
        },
        "TargetOptions": {
            "type": "object",
            "properties": {
                "retries": {"default": 0, "maximum": 5, "minimum": 0, "type": "integer"},
                "verbose": {"default": False, "type": "boolean"},
            },
        },
    },
}
GREET_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "greeting": {"type": "string", "default": "Hello"}},
}


def by_key(fields):
    return {f.key: f for f in fields}


def test_schema_fields_resolve_refs_unions_bounds_and_required():
    fields = by_key(fields_from_schema(CONFIGURE_SCHEMA))
    assert [f.key for f in fields.values()] == ["mode", "level", "target", "enabled", "tags", "note"]
    assert fields["mode"].kind == ENUM and fields["mode"].options == ("fast", "safe", "thorough")
    assert (fields["level"].kind, fields["level"].minimum, fields["level"].maximum) == (INTEGER, 1, 10)
    assert fields["level"].required and fields["level"].label == "level *"
    target = by_key(fields["target"].properties)
    assert (
        fields["target"].kind == OBJECT
        and target["port"].required
        and target["host"].description == "Host name"
    )
    assert target["options"].kind == OBJECT and not target["options"].required
    assert fields["enabled"].kind == BOOLEAN and fields["enabled"].default is True
    assert fields["tags"].kind == ARRAY and fields["tags"].items.kind == STRING
    assert fields["note"].kind == STRING and not fields["note"].required


def test_schema_fields_fall_back_to_json_for_what_a_form_cannot_express():
    schema = {
        "type": "object",
        "properties": {
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "free": {"type": "object"},
            "loop": {"$ref": "#"},
        },
    }
    fields = by_key(fields_from_schema(schema))
    assert fields["either"].kind == JSON and fields["free"].kind == JSON
    assert fields["loop"].kind in (OBJECT, JSON)  # a self-reference stops at the depth limit


def test_exclusive_bounds_become_inclusive_ones():
    fields = by_key(
        fields_from_schema(
            {
                "type": "object",
                "properties": {"n": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}},
            }
        )
    )
    assert (fields["n"].minimum, fields["n"].maximum) == (1, 9)


def test_collect_leaves_out_empty_optional_fields_and_names_missing_required_ones():
    fields = fields_from_schema(GREET_SCHEMA)
    assert collect(fields, {"name": "Ada", "greeting": ""}) == {"name": "Ada"}
    with pytest.raises(ConfigurationError, match="name"):
        collect(fields, {"name": "", "greeting": "Hi"})


def test_a_tool_argument_called_name_is_an_ordinary_form_field():
    form = form_for(fields_from_schema(GREET_SCHEMA))
    name_editor = form.children["name"]
    name_editor.widget.value = "Ada"
    assert name_editor.widget.label == "name *"  # the argument name is only label text
    assert form.value() == {"name": "Ada", "greeting": "Hello"}


def test_generated_widgets_keep_bounds_and_nested_paths():
    form = form_for(fields_from_schema(CONFIGURE_SCHEMA))
    level = form.children["level"].widget
    assert (level.start, level.end) == (1, 10)  # a required, small bounded range is a slider
    target = form.children["target"]
    assert isinstance(target, ObjectEditor)
    port = target.children["port"].widget
    assert (port.start, port.end) == (1, 65535)  # a large range gets a spinner with the same bounds
    with pytest.raises(ConfigurationError, match=r"target\.host, target\.port"):
        form.value()
    target.children["host"].widget.value = "db.local"
    port.value = 5432
    tags = form.children["tags"]
    assert isinstance(tags, ArrayEditor)
    tags.add_item().widget.value = "blue"
    tags.add_item()  # left empty: dropped
    assert form.value() == {
        "mode": "fast",
        "level": 1,
        "target": {"host": "db.local", "port": 5432},
        "enabled": True,
        "tags": ["blue"],
    }
    target.children["options"].include.value = True
    assert form.value()["target"]["options"] == {"retries": 0, "verbose": False}


def test_result_parts_render_text_json_images_and_refuse_unsafe_images():
    png = base64.b64encode(b"\x89PNG fake").decode()
    parts = result_parts(
        {
            "content": [
                {"type": "text", "text": "<b>hi</b>"},
                {"type": "image", "data": png, "mimeType": "image/png"},
                {"type": "image", "data": png, "mimeType": "image/svg+xml"},
                {"type": "image", "data": "not base64!", "mimeType": "image/png"},
            ],
            "structuredContent": {"sum": 3},
        }
    )
    assert [p.kind for p in parts] == ["text", "image", "text", "text", "json"]
    assert parts[0].text == "<b>hi</b>"  # kept verbatim; the view escapes it
    assert parts[1].data == b"\x89PNG fake" and parts[1].mime_type == "image/png"
    assert "not displayed" in parts[2].text and "not valid base64" in parts[3].text
    assert parts[4].value == {"sum": 3}


@pytest.mark.parametrize(
    "candidate",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "",
        None,
        "connectors",
        "/\x00x",
        "/ok path",
    ],
)
def test_only_local_paths_are_redirect_targets(candidate):
    assert navigation.local_path(candidate) == navigation.CONNECTORS_PATH


def test_local_paths_keep_their_query_and_gain_the_flash_key():
    target = navigation.local_path(navigation.agent_path("bob & co"))
    assert target == "/agent?name=bob%20%26%20co"
    assert navigation.with_query(target, flash="k1") == "/agent?name=bob+%26+co&flash=k1"


@pytest.fixture
def store(store_factory):
    return store_factory()


def test_flash_messages_are_taken_once(store):
    key = asyncio.run(flash.put(store, flash.Flash(ok=False, message="denied", connector="linear")))
    assert asyncio.run(flash.take(store, key)) == flash.Flash(ok=False, message="denied", connector="linear")
    assert asyncio.run(flash.take(store, key)) is None
    assert asyncio.run(flash.take(store, "unknown")) is None


class RecordingService:
    """Only what the callback route calls, over a real store; records what it was given."""

    def __init__(self, outcome: AuthorizationOutcome, store) -> None:
        self.outcome = outcome
        self.store = store
        self.received: list[dict[str, str]] = []

    async def complete_authorization(self, params):
        self.received.append(dict(params))
        return self.outcome


def test_callback_redirects_to_a_local_return_path_with_a_flash_key(store):
    service = RecordingService(
        AuthorizationOutcome(ok=True, message="Connected.", return_to="/agent?name=bob"), store
    )
    location = asyncio.run(plugins.finish_authorization(service, {"code": [b"c"], "state": [b"s"]}))
    assert service.received == [{"code": "c", "state": "s"}]
    assert location.startswith("/agent?name=bob&flash=")
    assert asyncio.run(flash.take(store, location.rsplit("=", 1)[1])).ok


def test_callback_never_redirects_off_site_nor_puts_the_message_in_the_url(store):
    service = RecordingService(
        AuthorizationOutcome(ok=False, message="<script>", return_to="https://evil.example"), store
    )
    location = asyncio.run(
        plugins.finish_authorization(service, {"state": [b"s"], "error": [b"access_denied"]})
    )
    assert location.startswith("/connectors?flash=") and "script" not in location


def test_callback_refuses_repeated_parameters_without_asking_the_services(store):
    service = RecordingService(AuthorizationOutcome(ok=True, message="Connected."), store)
    location = asyncio.run(plugins.finish_authorization(service, {"state": [b"a", b"b"], "code": [b"c"]}))
    assert service.received == []
    assert not asyncio.run(flash.take(store, location.rsplit("=", 1)[1])).ok


def test_connector_form_validation_messages():
    form = ConnectorForm(connector_name=" ", url="ftp://x", auth_type="api_key_header")
    problems = form.validate()
    assert set(problems) == {"connector_name", "url", "header_name"}
    form = ConnectorForm(
        connector_name="cc", url="https://u:p@mcp.example/mcp", auth_type="client_credentials"
    )
    assert set(form.validate()) == {"url", "client_id", "client_secret"}
    assert ConnectorForm(connector_name="ok", url="https://mcp.example/mcp").validate() == {}


def test_connector_form_repr_never_shows_secrets():
    form = ConnectorForm(connector_name="x", client_secret="s3cret-value", shared_secret="tok-value")
    assert "s3cret" not in repr(form) and "tok-value" not in repr(form)
