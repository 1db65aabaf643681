"""The agent page's gateway section: tokens (create — shown once —, list, revoke) and policy (rules,
limits). A role that may not change them (`core/roles.py`: admins manage gateway access) sees
them without the controls. The page holding it loads its model (`AgentPage`: after what is above it)."""

from __future__ import annotations

import html

import panel as pn
import param

from core.access import ANNOTATIONS, IssuedToken
from dashboard.models.access import AgentGateway
from dashboard.views.components import CARD, facts_table, heading, html_pane, text_block
from dashboard.views.feedback import attempt
from dashboard.views.tables import data_table

ANY = "(any tool)"


class AgentGatewayView(pn.viewable.Viewer):
    gateway = param.ClassSelector(class_=AgentGateway)

    def __init__(self, **params):
        super().__init__(**params)
        g = self.gateway
        revoke = {"revoke": "<span class='sb-action'>Revoke</span>"} if g.may("revoke_token") else {}
        self._tokens = data_table(
            g.token_frame(),
            badges=["status"],
            buttons=revoke,
            titles={k: "" for k in revoke},
            sortable={k: False for k in revoke},
        )
        self._tokens.on_click(self._on_token_click)
        g.param.watch(lambda _e: setattr(self._tokens, "value", g.token_frame()), "tokens")
        self._label = pn.widgets.TextInput(label="Token label", placeholder="laptop", width=220)
        self._days = pn.widgets.IntInput(
            label="Expires in (days, empty: never)", value=None, start=1, end=3650, width=220
        )
        self._create = pn.widgets.Button(label="Create token", button_type="primary", align="end")
        self._create.on_click(self._create_token)
        self._issued = pn.Column(sizing_mode="stretch_width")

        remove = {"remove": "<span class='sb-action'>Remove</span>"} if g.may("remove_rule") else {}
        self._rules = data_table(
            g.rule_frame(),
            buttons=remove,
            titles={k: "" for k in remove},
            sortable=False,
            widths={"n": 50, "effect": 80},
        )
        self._rules.on_click(self._on_rule_click)
        self._limits = pn.Column(sizing_mode="stretch_width")
        g.param.watch(self._show_policy, "policy")
        self._effect = pn.widgets.Select(label="Rule", options=["deny", "allow"], width=100)
        self._connector = pn.widgets.TextInput(label="Connector (glob)", value="*", width=180)
        self._tool = pn.widgets.TextInput(label="Tool (glob)", value="*", width=180)
        self._annotation = pn.widgets.Select(
            label="Only tools with the hint", options={ANY: "", **{a: a for a in ANNOTATIONS}}, width=200
        )
        self._add_rule = pn.widgets.Button(label="Add rule", button_type="primary", align="end")
        self._add_rule.on_click(self._add)
        self._rpm = pn.widgets.IntInput(
            label="Requests per minute (empty: default)", value=None, start=1, width=240
        )
        self._concurrent = pn.widgets.IntInput(
            label="Concurrent calls (empty: default)", value=None, start=1, width=240
        )
        self._save_limits = pn.widgets.Button(label="Save limits", align="end")
        self._save_limits.on_click(self._limits_saved)

    # --- tokens ---------------------------------------------------------------------------------

    async def _create_token(self, _event) -> None:
        self._create.disabled = True
        try:
            issued = await attempt(
                self.gateway.create_token(self._label.value.strip(), self._days.value),
                success=lambda t: f"Created token {t.id}; copy it now.",
            )
        finally:
            self._create.disabled = False
        if issued is not None:
            self._label.value = ""
            self._show_once(issued)

    def _show_once(self, issued: IssuedToken) -> None:
        """The token's text, once: to select or copy, gone when dismissed or the page is left."""
        copy = pn.widgets.Button(label="Copy the token")
        copy.js_on_click(args={"text": issued.token}, code="navigator.clipboard.writeText(text)")
        done = pn.widgets.Button(label="I have stored it — hide the token")
        done.on_click(lambda _event: setattr(self._issued, "objects", []))
        self._issued.objects = [
            pn.Column(
                html_pane(
                    f"<b>Token {html.escape(issued.id)} for {html.escape(issued.agent)}</b>: shown this once "
                    "and never stored; copy it into the agent's MCP client configuration now."
                ),
                text_block(issued.token),
                pn.Row(copy, done),
                styles={**CARD, "background": "#fff8e1"},
                sizing_mode="stretch_width",
            )
        ]

    async def _on_token_click(self, event) -> None:
        if event.column != "revoke":
            return
        token = self._tokens.value.iloc[event.row]
        if token["status"] == "revoked":
            return
        await attempt(
            self.gateway.revoke_token(token["id"]),
            success=f"Revoked token {token['id']}; the gateway refuses it within a second.",
        )

    # --- policy ---------------------------------------------------------------------------------

    def _show_policy(self, _event=None) -> None:
        self._rules.value = self.gateway.rule_frame()
        self._limits.objects = [facts_table(self.gateway.limits())]

    async def _add(self, _event) -> None:
        await attempt(
            self.gateway.add_rule(
                self._effect.value, self._connector.value, self._tool.value, self._annotation.value
            ),
            success="Added the rule; agents' tool lists follow within a second.",
        )

    async def _on_rule_click(self, event) -> None:
        if event.column == "remove":
            number = int(self._rules.value.iloc[event.row]["n"])
            await attempt(self.gateway.remove_rule(number), success=f"Removed rule {number}.")

    async def _limits_saved(self, _event) -> None:
        await attempt(
            self.gateway.set_limits(self._rpm.value, self._concurrent.value), success="Saved the limits."
        )

    def __panel__(self):
        agent = html.escape(self.gateway.agent)
        return pn.Column(
            heading("Gateway tokens"),
            html_pane(
                f"<p class='sb-muted'>An MCP client reaches {agent}'s tools at <code>/agents/{agent}/mcp</code> "
                "on the gateway with <code>Authorization: Bearer &lt;token&gt;</code>. Only a hash of each token "
                "is stored.</p>"
            ),
            self._tokens,
            pn.Row(self._label, self._days, self._create, visible=self.gateway.may("create_token")),
            self._issued,
            heading("Policy"),
            html_pane(
                "<p class='sb-muted'>A tool is refused when a deny rule matches it; when there are allow rules, "
                "it must match one of them. Globs match the connector's and the tool's own names.</p>"
            ),
            self._rules,
            pn.Row(
                self._effect,
                self._connector,
                self._tool,
                self._annotation,
                self._add_rule,
                visible=self.gateway.may("add_rule"),
            ),
            self._limits,
            pn.Row(self._rpm, self._concurrent, self._save_limits, visible=self.gateway.may("set_limits")),
            sizing_mode="stretch_width",
        )
