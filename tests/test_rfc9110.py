"""WWW-Authenticate parsing (RFC 9110 §11.6.1), requirement A-02: table tests and properties."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.rfc9110 import Challenge, parse_www_authenticate

# --- A-02 table -----------------------------------------------------------------------------------


def bearer(challenges: tuple[Challenge, ...]) -> Challenge:
    found = [c for c in challenges if c.scheme == "bearer"]
    assert len(found) == 1, challenges
    return found[0]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # scheme and parameter names are case-insensitive
        (['bearer RESOURCE_METADATA="u"'], {"resource_metadata": "u"}),
        (['BEARER Resource_Metadata="u"'], {"resource_metadata": "u"}),
        # several challenges in one field
        (
            ['DPoP algs="ES256", Bearer resource_metadata="u", scope="a b"'],
            {"resource_metadata": "u", "scope": "a b"},
        ),
        # two separate header lines
        (
            ['DPoP algs="ES256"', 'Bearer resource_metadata="u", scope="a b"'],
            {"resource_metadata": "u", "scope": "a b"},
        ),
        # unquoted token value
        (["Bearer resource_metadata=u, scope=read"], {"resource_metadata": "u", "scope": "read"}),
        # parameter-looking text inside a quoted string placed before the real parameters
        (
            [
                r'Bearer error_description="bad scope=\"x\", resource_metadata=\"evil\"", resource_metadata="u", scope="a b"'
            ],
            {
                "error_description": 'bad scope="x", resource_metadata="evil"',
                "resource_metadata": "u",
                "scope": "a b",
            },
        ),
        # BWS around "=" and extra list separators
        (['Bearer  realm = "x" ,, scope="a"'], {"realm": "x", "scope": "a"}),
        # a duplicate parameter: the first wins, the second cannot override it
        (['Bearer resource_metadata="u", resource_metadata="evil"'], {"resource_metadata": "u"}),
        # escaped backslash and quote
        ([r'Bearer realm="a\\b\"c"'], {"realm": 'a\\b"c'}),
        # commas inside quoted values do not split
        (['Bearer scope="a,b", error="insufficient_scope"'], {"scope": "a,b", "error": "insufficient_scope"}),
    ],
)
def test_a02_table(values: list[str], expected: dict[str, str]) -> None:
    challenge = bearer(parse_www_authenticate(values))
    assert challenge.params == expected


def test_get_is_case_insensitive() -> None:
    challenge = bearer(parse_www_authenticate(['Bearer Resource_Metadata="u"']))
    assert challenge.get("RESOURCE_METADATA") == "u"
    assert challenge.get("scope") is None


def test_token68_and_params_challenges() -> None:
    parsed = parse_www_authenticate(
        ['Basic abc==, Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"']
    )
    assert parsed == (
        Challenge("basic", {}, "abc=="),
        Challenge("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        Challenge("basic", {"realm": "simple"}),
    )


def test_scheme_only_and_empty_values() -> None:
    assert parse_www_authenticate(["Bearer"]) == (Challenge("bearer"),)
    assert parse_www_authenticate(["", " , ", "Negotiate"]) == (Challenge("negotiate"),)
    assert parse_www_authenticate([]) == ()


def test_single_string_is_accepted() -> None:
    assert parse_www_authenticate('Bearer scope="x"') == (Challenge("bearer", {"scope": "x"}),)


@pytest.mark.parametrize(
    "value",
    [
        'Bearer realm="unterminated',
        "=== , ,,,",
        '"quoted" Bearer x=y',
        "Bearer a=b c d=e",
        "Bearer a=,b=c",
        "\x00\x01 Bearer",
        'Bearer error_description="x\\',
    ],
)
def test_malformed_input_never_raises(value: str) -> None:
    result = parse_www_authenticate([value])
    for challenge in result:
        # nothing is ever read out of a quoted value as a parameter
        assert "evil" not in challenge.params


def test_unterminated_quote_does_not_leak_parameters() -> None:
    parsed = parse_www_authenticate(['Bearer scope="a, resource_metadata=evil'])
    assert all(c.get("resource_metadata") is None for c in parsed)


# --- properties ---------------------------------------------------------------------------------

TCHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
tokens = st.text(alphabet=TCHARS, min_size=1, max_size=12)
schemes = st.text(alphabet=string.ascii_letters, min_size=1, max_size=10)
values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("\t€ü"), max_size=30
)


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def challenge_lists(draw: st.DrawFn) -> tuple[list[Challenge], list[str]]:
    """Random challenges and one of many valid serializations of them (case, quoting, spacing,
    split across header lines)."""
    challenges: list[Challenge] = []
    rendered: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        scheme = draw(schemes)
        names = draw(st.lists(tokens, max_size=4, unique_by=str.lower))
        params: dict[str, str] = {}
        parts: list[str] = []
        for name in names:
            value = draw(values)
            as_token = bool(value) and all(c in TCHARS for c in value) and draw(st.booleans())
            rendered_value = value if as_token else quote(value)
            cased = "".join(draw(st.sampled_from([c.lower(), c.upper()])) for c in name)
            space = draw(st.sampled_from(["", " "]))
            parts.append(f"{cased}{space}={space}{rendered_value}")
            params[name.lower()] = value
        challenges.append(Challenge(scheme.lower(), params))
        cased_scheme = draw(st.sampled_from([scheme, scheme.upper(), scheme.lower()]))
        rendered.append(
            cased_scheme + (" " + draw(st.sampled_from([", ", ",", " , "])).join(parts) if parts else "")
        )
    # group the challenges into one or more header lines
    lines: list[str] = []
    current: list[str] = []
    for text in rendered:
        current.append(text)
        if draw(st.booleans()):
            lines.append(", ".join(current))
            current = []
    if current:
        lines.append(", ".join(current))
    return challenges, lines


@given(challenge_lists())
@settings(max_examples=300, deadline=None)
def test_roundtrip(case: tuple[list[Challenge], list[str]]) -> None:
    challenges, lines = case
    assert list(parse_www_authenticate(lines)) == challenges


@given(st.text(max_size=200))
@settings(max_examples=500, deadline=None)
def test_arbitrary_text_never_raises(text: str) -> None:
    for challenge in parse_www_authenticate([text]):
        assert challenge.scheme == challenge.scheme.lower()
        assert all(name == name.lower() for name in challenge.params)


@given(values, values)
@settings(max_examples=300, deadline=None)
def test_quoted_content_never_becomes_a_parameter(noise: str, inner: str) -> None:
    """Whatever a quoted value contains, the real parameter after it wins and nothing inside it is
    read as a parameter."""
    hostile = f'{noise} resource_metadata="{inner}", scope={inner}'
    line = f'Bearer error_description={quote(hostile)}, resource_metadata="u"'
    challenge = bearer(parse_www_authenticate([line]))
    assert challenge.params == {"error_description": hostile, "resource_metadata": "u"}
