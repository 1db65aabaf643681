"""The auth-scheme registry is what every layer reads, and the header-name rule is one rule."""

from __future__ import annotations

import pytest

from core.auth_schemes import AUTH_SCHEMES, AUTH_TYPES, auth_scheme, header_name_problem, scheme_of_kind
from core.errors import ConfigurationError
from core.mcp.auth import StaticHeader
from core.net import NetworkPolicy
from core.roles import Principal, Role
from core.services import Switchboard
from dashboard.models import ConnectorForm
from dashboard.views.connectors import ConnectorFormView

LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost", "mcp.example")
GOOD_HEADERS = ["X-API-Key", "x_key", "Api.Key~1", "!#$%&'*+-.^_`|~"]
BAD_HEADERS = ["", " ", "X API Key", "X:Key", "X(Key)", "X@Key", "X-Kéy", "X\r\nKey", "X/Key"]


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "store.key"))
    monkeypatch.delenv("SWITCHBOARD_KEY", raising=False)
    return Switchboard.open(str(tmp_path / "switchboard.duckdb"), policy=LOOPBACK)


async def test_the_registry_and_the_store_agree(service, bearer_server, api_key_server):
    for name in AUTH_TYPES:  # the store's schema accepts every registered auth type
        await service.add_connector(name, "https://mcp.example/mcp", name, header_name="X-Key")
    with pytest.raises(ConfigurationError, match="use one of"):
        auth_scheme("basic")
    for scheme in AUTH_SCHEMES.values():
        assert scheme_of_kind(scheme.credential_kind) is scheme
        assert scheme.label and (scheme.secret_label or not scheme.static_secret)
    # The kind the store keeps for a static secret is the scheme's.
    await service.add_connector("b", bearer_server.url, "bearer")
    await service.add_connector("k", api_key_server.url, "api_key_header", header_name=api_key_server.header)
    await service.set_secret("b", bearer_server.keys["alice"])
    await service.set_secret("k", api_key_server.keys["alice"])
    kinds = {c.connector: c.kind for c in await service.health()}
    assert kinds == {
        "b": auth_scheme("bearer").credential_kind,
        "k": auth_scheme("api_key_header").credential_kind,
    }
    await service.aclose()


@pytest.mark.parametrize("header", GOOD_HEADERS + BAD_HEADERS)
def test_one_header_name_rule_for_the_form_the_services_and_the_real_header(header):
    allowed = header in GOOD_HEADERS
    assert (header_name_problem(header) is None) is allowed
    form = ConnectorForm(connector_name="k", url="https://mcp.example/mcp", auth_type="api_key_header")
    form.header_name = header
    assert ("header_name" not in form.validate()) is allowed
    if allowed:
        assert StaticHeader.api_key(header, "key").header == header
    else:
        with pytest.raises(ConfigurationError):
            StaticHeader.api_key(header, "key")


async def test_the_services_apply_the_header_rule_on_add_and_update(service, api_key_server):
    for bad in ("X(Key)", "X Key", ""):
        with pytest.raises(ConfigurationError, match="header name"):
            await service.add_connector("k", api_key_server.url, "api_key_header", header_name=bad)
    await service.add_connector("k", api_key_server.url, "api_key_header", header_name=api_key_server.header)
    with pytest.raises(ConfigurationError, match="not a valid header name"):
        await service.update_connector("k", header_name="X@Key")
    await service.add_connector("b", api_key_server.url, "bearer")
    with pytest.raises(ConfigurationError, match="needs a header name"):
        await service.update_connector("b", auth_type="api_key_header")
    assert (await service.get_connector("k")).header_name == api_key_server.header
    await service.aclose()


def test_the_form_shows_the_fields_each_scheme_needs():
    form = ConnectorForm()
    view = ConnectorFormView(form=form)
    widgets = view._widgets
    labels = set(widgets["auth_type"].options)
    assert labels == {scheme.label for scheme in AUTH_SCHEMES.values()}
    for name, scheme in AUTH_SCHEMES.items():
        form.auth_type = name
        assert widgets["header_name"].visible == scheme.header_name
        for field in ("client_id", "client_secret", "scopes"):
            assert widgets[field].visible == scheme.authorization_server, (name, field)


async def test_acting_as_names_the_operator_and_shares_the_services(service, plain_server):
    await service.add_connector("plain", plain_server.url, "none")
    alice = service.acting_as(Principal("alice@example.com", Role.OPERATOR))
    assert alice.store is service.store and alice._pool is service._pool
    await alice.call_tool("plain", "whoami", {})
    await service.call_tool("plain", "whoami", {})
    # The parts are built on first use, here by the view: the original uses the same ones.
    assert alice._calls is service._calls and alice._syncs is service._syncs
    assert [row["operator"] for row in await service.audit()] == ["operator", "alice@example.com"]
    assert service.operator == "operator"
    await service.aclose()
