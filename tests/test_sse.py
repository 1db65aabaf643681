"""The incremental SSE decoder (T-16, T-25, S-08)."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ResponseTooLarge
from core.mcp.sse import MAX_RETRY_MS, MIN_RETRY_MS, SseDecoder, SseEvent


def decode(data: bytes, **kwargs: int) -> tuple[list[SseEvent], SseDecoder]:
    decoder = SseDecoder(**kwargs)
    events = decoder.feed(data)
    events += decoder.close()
    return events, decoder


def decode_split(data: bytes, cuts: list[int]) -> tuple[list[SseEvent], SseDecoder]:
    decoder = SseDecoder()
    events: list[SseEvent] = []
    previous = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        events += decoder.feed(data[previous:cut])
        previous = cut
    events += decoder.close()
    return events, decoder


# --- WHATWG behaviour -----------------------------------------------------------------------------


def test_several_events_and_multiline_data() -> None:
    events, _ = decode(b"data: one\n\ndata: a\ndata: b\n\nevent: message\ndata: {}\n\n")
    assert [e.data for e in events] == ["one", "a\nb", "{}"]
    assert all(e.event == "message" for e in events)


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_line_endings(eol: bytes) -> None:
    stream = eol.join([b"id: 1", b"data: x", b"data: y", b"", b"data: z", b"", b""])
    events, decoder = decode(stream)
    assert [e.data for e in events] == ["x\ny", "z"]
    assert decoder.last_event_id == "1"


def test_mixed_line_endings() -> None:
    events, _ = decode(b"data: a\r\ndata: b\rdata: c\n\r\n")
    assert [e.data for e in events] == ["a\nb\nc"]


def test_leading_bom_is_stripped_only_at_start() -> None:
    events, _ = decode(b"\xef\xbb\xbfdata: x\n\ndata: \xef\xbb\xbfy\n\n")
    assert [e.data for e in events] == ["x", "\ufeffy"]


def test_bom_split_across_chunks() -> None:
    events, _ = decode_split(b"\xef\xbb\xbfdata: x\n\n", [1, 2])
    assert [e.data for e in events] == ["x"]


def test_comments_and_unknown_fields_are_ignored() -> None:
    events, _ = decode(b": keep-alive\n:\nfoo: bar\ndata: x\nbaz\n\n")
    assert [e.data for e in events] == ["x"]


def test_field_without_colon_and_without_space() -> None:
    events, _ = decode(b"data\n\ndata:x\n\n")
    assert [e.data for e in events] == ["", "x"]


def test_only_one_leading_space_is_removed() -> None:
    events, _ = decode(b"data:  two spaces\n\n")
    assert events[0].data == " two spaces"


def test_event_type() -> None:
    events, _ = decode(b"event: ping\ndata: x\n\ndata: y\n\n")
    assert [(e.event, e.data) for e in events] == [("ping", "x"), ("message", "y")]


def test_priming_event_updates_last_id_but_has_empty_data() -> None:
    # The MCP priming event: an id and an empty data line. It is dispatched with data "" (so the
    # client must not parse it as JSON) and it sets the last event id.
    events, decoder = decode(b"id: 7\ndata: \n\n")
    assert [(e.data, e.id) for e in events] == [("", "7")]
    assert decoder.last_event_id == "7"


def test_id_only_event_updates_last_id_without_dispatch() -> None:
    events, decoder = decode(b"id: 42\n\n")
    assert events == []
    assert decoder.last_event_id == "42"


def test_id_persists_and_can_be_reset() -> None:
    events, decoder = decode(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [(e.data, e.id) for e in events] == [("a", "1"), ("b", "1"), ("c", "")]
    assert decoder.last_event_id == ""


def test_id_with_nul_is_ignored() -> None:
    events, decoder = decode(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]
    assert decoder.last_event_id == "1"


def test_id_not_dispatched_until_blank_line() -> None:
    decoder = SseDecoder()
    decoder.feed(b"id: 5\ndata: x\n")
    assert decoder.last_event_id == ""
    decoder.feed(b"\n")
    assert decoder.last_event_id == "5"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"retry: 500", 500),
        (b"retry: 0", MIN_RETRY_MS),
        (b"retry: 99999999999999", MAX_RETRY_MS),
        (b"retry: " + b"9" * 100_000, MAX_RETRY_MS),
        (b"retry: 5s", None),
        (b"retry: -1", None),
        (b"retry: 1.5", None),
        (b"retry: ", None),
        ("retry: \u0661\u0662\u0663".encode(), None),  # Arabic-Indic digits are not ASCII digits
    ],
)
def test_retry_digits_only_and_clamped(line: bytes, expected: int | None) -> None:
    _, decoder = decode(line + b"\n\n")
    assert decoder.retry_ms == expected


def test_incomplete_event_at_end_of_stream_is_discarded() -> None:
    events, decoder = decode(b"data: complete\n\ndata: partial\n")
    assert [e.data for e in events] == ["complete"]
    assert decoder.close() == []


# --- UTF-8 (T-25) ---------------------------------------------------------------------------------


def test_invalid_utf8_rejects_only_that_event() -> None:
    events, _ = decode(b"data: ok1\n\ndata: bad \xff\xfe\n\ndata: ok2\n\n")
    assert [(e.data, e.error is not None) for e in events] == [("ok1", False), ("", True), ("ok2", False)]


def test_multibyte_character_split_across_chunks() -> None:
    data = "data: héllo ✓\n\n".encode()
    for cut in range(len(data)):
        events, _ = decode_split(data, [cut])
        assert [e.data for e in events] == ["héllo ✓"]


def test_invalid_utf8_id_is_ignored() -> None:
    events, _decoder = decode(b"id: ok\ndata: a\n\nid: \xff\ndata: b\n\n")
    assert [e.id for e in events] == ["ok", "ok"]


# --- caps (S-08) ----------------------------------------------------------------------------------


def test_line_cap_without_newline() -> None:
    decoder = SseDecoder(max_line_bytes=1024)
    with pytest.raises(ResponseTooLarge):
        for _ in range(100):
            decoder.feed(b"x" * 100)


def test_line_cap_with_newline() -> None:
    with pytest.raises(ResponseTooLarge):
        decode(b"data: " + b"x" * 2048 + b"\n\n", max_line_bytes=1024)


def test_event_cap_across_many_lines() -> None:
    decoder = SseDecoder(max_line_bytes=1024, max_event_bytes=4096)
    with pytest.raises(ResponseTooLarge):
        for _ in range(100):
            decoder.feed(b"data: " + b"y" * 100 + b"\n")


def test_comment_lines_count_toward_the_line_cap() -> None:
    with pytest.raises(ResponseTooLarge):
        decode(b":" + b"c" * 5000 + b"\n", max_line_bytes=1024)


def test_memory_stays_bounded_for_a_huge_unterminated_line() -> None:
    """Feeding 64 MiB without a newline raises long before the bytes are buffered."""
    chunk = b"d" * 65536
    decoder = SseDecoder(max_line_bytes=1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge):
            for _ in range(1024):
                decoder.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_many_small_events_are_streamed_not_accumulated() -> None:
    decoder = SseDecoder()
    count = 0
    for _ in range(10_000):
        count += len(decoder.feed(b"data: {}\n\n"))
    assert count == 10_000
    assert len(decoder._buf) == 0


# --- chunk boundaries anywhere (hypothesis) -------------------------------------------------------

STREAM = (
    b"\xef\xbb\xbf: comment\r\n"
    b"retry: 1500\n"
    b"id: 1\r\n"
    b"data: \r\n\r\n"
    b"event: message\n"
    b'data: {"jsonrpc":"2.0",\n'
    b'data: "id":1}\r'
    b"\r"
    b"id: 2\n"
    b"data: h\xc3\xa9llo\n\n"
    b"data: bad\xff\n\n"
    b"data: last\r\n\r\n"
)


def reference() -> tuple[list[SseEvent], SseDecoder]:
    return decode(STREAM)


def test_reference_stream() -> None:
    events, decoder = reference()
    assert [(e.data, e.id, e.error is None) for e in events] == [
        ("", "1", True),
        ('{"jsonrpc":"2.0",\n"id":1}', "1", True),
        ("héllo", "2", True),
        ("", "2", False),
        ("last", "2", True),
    ]
    assert decoder.retry_ms == 1500
    assert decoder.last_event_id == "2"


def test_split_at_every_single_offset() -> None:
    expected, _ = reference()
    for cut in range(len(STREAM) + 1):
        events, decoder = decode_split(STREAM, [cut])
        assert events == expected, cut
        assert decoder.last_event_id == "2"


def test_byte_at_a_time() -> None:
    expected, _ = reference()
    events, _ = decode_split(STREAM, list(range(len(STREAM))))
    assert events == expected


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
@settings(max_examples=500, deadline=None)
def test_split_anywhere(cuts: list[int]) -> None:
    expected, _ = reference()
    events, decoder = decode_split(STREAM, cuts)
    assert events == expected
    assert decoder.retry_ms == 1500


line_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=20
)


@given(
    st.lists(st.lists(line_text, min_size=1, max_size=3), min_size=1, max_size=5),
    st.sampled_from(["\n", "\r", "\r\n"]),
    st.data(),
)
@settings(max_examples=300, deadline=None)
def test_generated_streams_roundtrip(payloads: list[list[str]], eol: str, data: st.DataObject) -> None:
    """Any events, any line ending, any chunking: the data comes back exactly."""
    text = "".join("".join(f"data: {line}{eol}" for line in lines) + eol for lines in payloads)
    raw = text.encode()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=10))
    events, _ = decode_split(raw, cuts)
    assert [e.data for e in events] == ["\n".join(lines) for lines in payloads]
