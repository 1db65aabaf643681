"""What the audit log keeps of tool arguments, and when a name counts as a secret."""

import pytest

from core.redaction import REDACTED, fingerprint, is_secret_name, redact_arguments


@pytest.mark.parametrize(
    "name",
    [
        "access_token",
        "apiKey",
        "X-Session-Id",
        "password",
        "client_secret",
        "private_key",
        "code_verifier",
        "Authorization",
        "jwt",
        "bearer",
    ],
)
def test_secret_looking_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["max_tokens", "keyword", "author", "query", "name", "monkey", "description"]
)
def test_ordinary_names(name):
    assert not is_secret_name(name)


def test_arguments_are_redacted_truncated_and_bounded():
    deep: dict = {}
    node = deep
    for _ in range(20):
        node["next"] = {}
        node = node["next"]
    redacted = redact_arguments(
        {
            "query": "x" * 500,
            "apiKey": "sk-live",
            "nested": {"password": "p"},
            "items": list(range(100)),
            "deep": deep,
        }
    )
    assert redacted["apiKey"] == REDACTED and redacted["nested"]["password"] == REDACTED
    assert redacted["query"].startswith("x" * 200) and "(500 chars)" in redacted["query"]
    assert len(redacted["items"]) == 50
    assert "<nested>" in str(redacted["deep"])
    assert "sk-live" not in str(redacted)


def test_fingerprint_is_short_and_stable():
    assert fingerprint("secret") == fingerprint("secret") and len(fingerprint("secret")) == 8
    assert fingerprint("") is None


def test_http_library_logs_lose_session_ids_codes_and_queries():
    import logging

    from core.redaction import HttpLogRedactor

    lines = [
        (
            "receive_response_headers.complete return_value=(b'HTTP/1.1', 200, b'OK', "
            "[(b'mcp-session-id', b\"it's-SECRET1\"), (b'location', b'http://x/cb?code=SECRET2&state=s')])"
        ),
        'HTTP Request: GET https://as.example/authorize?state=SECRET3 "HTTP/1.1 302 Found"',
    ]
    for line in lines:
        record = logging.LogRecord("httpx2", logging.INFO, "", 0, line, None, None)
        HttpLogRedactor().filter(record)
        assert "SECRET" not in record.getMessage()
