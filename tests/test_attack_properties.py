"""Property-based attacks on the two parsers that read raw server bytes first (S-08, A-02).

tests/test_sse.py and tests/test_rfc9110.py already check well-formed streams and challenges
(round trips, chunking of valid streams, arbitrary text never raising). These add what a hostile
server controls completely: arbitrary bytes with SSE structure mixed in, split anywhere, under tiny
caps; and arbitrary header text, whose parse must be a fixed point of render-then-parse.
"""

from __future__ import annotations

import itertools
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ResponseTooLarge
from core.mcp.sse import MAX_RETRY_MS, MIN_RETRY_MS, SseDecoder
from core.rfc9110 import Challenge, parse_www_authenticate

# --- SSE -----------------------------------------------------------------------------------------------

PIECES = [
    b"data:",
    b"data: ",
    b"id:",
    b"id: ",
    b"retry:",
    b"event:",
    b"event: message",
    b":",
    b" ",
    b"\r",
    b"\n",
    b"\r\n",
    b"\n\n",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xc3",
    b"\xa9",
    b"\x00",
    b"0",
    b"99999999999",
    b"{}",
    b"x" * 40,
]
sse_bytes = st.lists(st.sampled_from(PIECES) | st.binary(max_size=8), max_size=60).map(b"".join)
LINE_CAP, EVENT_CAP = 64, 200


def _run(data: bytes, cuts: list[int]) -> tuple[list, bool, SseDecoder]:
    decoder = SseDecoder(max_line_bytes=LINE_CAP, max_event_bytes=EVENT_CAP)
    events = []
    bounds = sorted({0, len(data), *(c for c in cuts if 0 <= c <= len(data))})
    try:
        for start, end in itertools.pairwise(bounds):
            events += decoder.feed(data[start:end])
            # invariants after every chunk, whatever came in
            assert len(decoder._buf) <= LINE_CAP
            assert decoder.retry_ms is None or MIN_RETRY_MS <= decoder.retry_ms <= MAX_RETRY_MS
            assert "\x00" not in decoder.last_event_id
    except ResponseTooLarge:
        return events, True, decoder
    events += decoder.close()
    return events, False, decoder


@given(sse_bytes, st.lists(st.integers(0, 400), max_size=12))
@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_bytes_decode_the_same_however_they_are_split(data: bytes, cuts: list[int]) -> None:
    whole, whole_raised, whole_decoder = _run(data, [])
    split, split_raised, split_decoder = _run(data, cuts)
    assert whole_raised == split_raised
    if not whole_raised:
        assert split == whole
        assert split_decoder.last_event_id == whole_decoder.last_event_id
        assert split_decoder.retry_ms == whole_decoder.retry_ms
    for event in whole + split:
        assert len(event.data.encode()) <= EVENT_CAP
        assert event.error is None or event.data == ""


@given(sse_bytes)
@settings(max_examples=500, deadline=None)
def test_byte_at_a_time_equals_whole(data: bytes) -> None:
    whole, whole_raised, _ = _run(data, [])
    single, single_raised, _ = _run(data, list(range(len(data))))
    assert whole_raised == single_raised
    if not whole_raised:
        assert single == whole


@given(st.integers(0, 10**30), st.sampled_from([b"\n", b"\r", b"\r\n"]))
@settings(max_examples=300, deadline=None)
def test_retry_is_always_clamped(value: int, eol: bytes) -> None:
    decoder = SseDecoder()
    decoder.feed(b"retry: " + str(value).encode() + eol)
    assert MIN_RETRY_MS <= decoder.retry_ms <= MAX_RETRY_MS


def test_a_very_long_retry_line_is_cheap_and_clamped() -> None:
    decoder = SseDecoder()
    decoder.feed(b"retry: " + b"9" * 500_000 + b"\n")
    assert decoder.retry_ms == MAX_RETRY_MS


# --- WWW-Authenticate ------------------------------------------------------------------------------------

_TCHAR = set("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)


def render(challenges: tuple[Challenge, ...]) -> str:
    parts = []
    for c in challenges:
        if c.token68 is not None:
            parts.append(f"{c.scheme} {c.token68}")
        elif c.params:
            params = ", ".join(
                f'{k}="' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for k, v in c.params.items()
            )
            parts.append(f"{c.scheme} {params}")
        else:
            parts.append(c.scheme)
    return ", ".join(parts)


header_text = st.text(
    alphabet=st.sampled_from(list('Bearer realm=",\\ \t=abcXYZ/+_-.~!#error_description'))
    | st.characters(min_codepoint=0, max_codepoint=0x2FF),
    max_size=120,
)


@given(header_text)
@settings(max_examples=1500, deadline=None)
def test_parse_is_a_fixed_point_of_render_then_parse(text: str) -> None:
    """Whatever the server sends, what we understood re-serializes to exactly the same challenges:
    no parameter appears or disappears depending on quoting or escaping."""
    parsed = parse_www_authenticate([text])
    for challenge in parsed:
        assert (
            challenge.scheme
            and set(challenge.scheme) <= _TCHAR
            and challenge.scheme == challenge.scheme.lower()
        )
        assert all(name and set(name) <= _TCHAR and name == name.lower() for name in challenge.params)
    assert parse_www_authenticate([render(parsed)]) == parsed


@given(st.lists(header_text, max_size=5))
@settings(max_examples=300, deadline=None)
def test_several_header_lines_parse_like_each_line_alone(lines: list[str]) -> None:
    together = parse_www_authenticate(lines)
    assert together == tuple(c for line in lines for c in parse_www_authenticate([line]))


def test_pathological_headers_complete() -> None:
    """One pass over the text: long runs of the characters that drive the grammar's choices."""
    for text in [
        "," * 200_000,
        '"' * 200_000,
        "\\" * 200_000,
        "Bearer " + "a=" * 100_000,
        'Bearer x="' + '\\"' * 100_000,
        "B " * 100_000,
        "=" * 200_000,
        'Bearer resource_metadata="' + "," * 100_000,
    ]:
        for challenge in parse_www_authenticate([text]):
            assert challenge.scheme
