"""The gateway's pure pieces: tool names, policy decisions, limits, session ids, token hashing."""

from __future__ import annotations

import re

import pytest

from core.access import IssuedToken, Policy, PolicyRule, annotation_hint, hash_token
from core.access.tokens import new_token
from core.errors import ConfigurationError
from gateway import protocol
from gateway.limits import Limiter, retry_after
from gateway.naming import gateway_name

_MCP_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def test_plain_names_when_unambiguous():
    assert gateway_name("render", "list_services") == "render__list_services"
    assert gateway_name("linear", "issue.create") == "linear__issue.create"


@pytest.mark.parametrize(
    ("connector", "tool"),
    [
        ("my server", "echo"),  # a disallowed character
        ("a__b", "c"),  # would read back as connector "a"
        ("a_", "_b"),  # ditto
        ("x" * 100, "y" * 100),  # too long
        ("ünïcode", "tool"),
    ],
)
def test_ambiguous_or_invalid_names_are_mangled_stably_within_mcp_rules(connector, tool):
    name = gateway_name(connector, tool)
    assert _MCP_NAME.fullmatch(name)
    assert name == gateway_name(connector, tool)  # stable
    assert re.search(r"__h[0-9a-f]{8}$", name)


def test_pairs_that_would_collide_get_different_names():
    assert gateway_name("a__b", "c") != gateway_name("a", "b__c")
    assert gateway_name("my server", "x") != gateway_name("my_server", "x")


def test_deny_wins_and_allow_rules_make_an_allow_list():
    policy = Policy("alice", (PolicyRule("allow", "render"), PolicyRule("deny", "render", "delete_*")))
    assert policy.denial("render", "list", {}) is None
    assert "delete_*" in policy.denial("render", "delete_service", {})
    assert policy.denial("linear", "list", {}) == "not allowed by any allow rule"
    assert Policy("bob").denial("anything", "at_all", None) is None


def test_annotation_rules_follow_mcp_defaults():
    assert annotation_hint({}, "destructiveHint")  # may be destructive unless it says otherwise
    assert not annotation_hint({"readOnlyHint": True}, "destructiveHint")
    assert not annotation_hint({"readOnlyHint": False, "destructiveHint": False}, "destructiveHint")
    assert annotation_hint(None, "openWorldHint") and not annotation_hint(None, "readOnlyHint")
    deny = Policy("alice", (PolicyRule("deny", annotation="destructiveHint"),))
    assert deny.denial("c", "t", {"readOnlyHint": True}) is None
    assert deny.denial("c", "t", {}) is not None


def test_rules_are_checked_when_made():
    with pytest.raises(ConfigurationError):
        PolicyRule("maybe")
    with pytest.raises(ConfigurationError, match="unknown annotation"):
        PolicyRule("deny", annotation="scaryHint")
    assert PolicyRule.from_dict(PolicyRule("deny", "c", "t", "openWorldHint").as_dict()).tool == "t"


def test_rate_limit_shares_the_limit_among_gateway_processes():
    limiter = Limiter()
    admitted = [limiter.admit("a", 60, instances=2, now=0.0) is None for _ in range(40)]
    assert admitted.count(True) == 30  # half of 60 per process
    wait = limiter.admit("a", 60, instances=2, now=0.0)
    assert wait == pytest.approx(2.0) and retry_after(wait) == "2"
    assert limiter.admit("a", 60, instances=2, now=2.0) is None  # refilled at 30/min
    assert limiter.admit("b", 60, instances=2, now=0.0) is None  # per agent


def test_concurrent_calls_are_counted_per_agent():
    limiter = Limiter()
    assert limiter.start_call("a", 4, 2) and limiter.start_call("a", 4, 2)
    assert not limiter.start_call("a", 4, 2)
    limiter.end_call("a")
    assert limiter.start_call("a", 4, 2)


def test_session_ids_belong_to_the_token_that_opened_them():
    alice, bob = hash_token(new_token()), hash_token(new_token())
    session = protocol.new_session_id(alice)
    assert protocol.session_belongs(session, alice)
    assert not protocol.session_belongs(session, bob)
    assert not protocol.session_belongs(session[:-1] + ("0" if session[-1] != "0" else "1"), alice)
    assert not protocol.session_belongs("short", alice)


def test_tokens_are_random_and_hashed():
    first, second = new_token(), new_token()
    assert first != second and first.startswith("swb_") and len(first) > 40
    assert hash_token(first) == hash_token(first) and len(hash_token(first)) == 64
    assert first not in repr(IssuedToken("i", "a", "", None, first))


def test_the_cli_offers_exactly_the_annotations_a_policy_knows():
    from cli.access import ANNOTATIONS as offered
    from core.access import ANNOTATIONS

    assert offered == ANNOTATIONS
