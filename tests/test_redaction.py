"""What the audit log keeps of tool arguments, and when a name counts as a secret."""

import pytest

from core.redaction import REDACTED, fingerprint, is_secret_name, redact_arguments


@pytest.mark.parametrize("name", ["access_token", "apiKey", "X-Session-Id", "password", "client_secret",
                                  "private_key", "code_verifier", "Authorization", "jwt", "bearer"])
def test_secret_looking_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["max_tokens", "keyword", "author", "query", "name", "monkey", "description"])
def test_ordinary_names(name):
    assert not is_secret_name(name)


def test_arguments_are_redacted_truncated_and_bounded():
    deep: dict = {}
    node = deep
    for _ in range(20):
        node["next"] = {}
        node = node["next"]
    redacted = redact_arguments({"query": "x" * 500, "apiKey": "sk-live", "nested": {"password": "p"},
                                 "items": list(range(100)), "deep": deep})
    assert redacted["apiKey"] == REDACTED and redacted["nested"]["password"] == REDACTED
    assert redacted["query"].startswith("x" * 200) and "(500 chars)" in redacted["query"]
    assert len(redacted["items"]) == 50
    assert "<nested>" in str(redacted["deep"])
    assert "sk-live" not in str(redacted)


def test_fingerprint_is_short_and_stable():
    assert fingerprint("secret") == fingerprint("secret") and len(fingerprint("secret")) == 8
    assert fingerprint("") is None
