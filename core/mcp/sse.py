"""Incremental `text/event-stream` decoder (WHATWG HTML, "Interpreting an event stream").

Bytes go in as they arrive from the network, in chunks split anywhere; complete events come out.
Deviations from a browser's EventSource, both deliberate:

* Each line is decoded as strict UTF-8 instead of with replacement characters, so an event whose
  `data`/`event` lines are not valid UTF-8 comes out with `error` set and is rejected on its own
  while the stream continues (MCP requires UTF-8 JSON-RPC messages; a replaced character would
  silently corrupt a tool result). An `id` that is not valid UTF-8 is ignored like one with NUL.
* Sizes are capped: a line longer than `max_line_bytes` or an event whose data exceeds
  `max_event_bytes` raises `ResponseTooLarge` before the bytes are buffered, so memory stays bounded
  whatever the server sends.

`retry` is honoured only when it is all ASCII digits, and clamped to [`MIN_RETRY_MS`, `MAX_RETRY_MS`]
so a hostile server can neither hammer us (`retry: 0`) nor park a resumption forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ResponseTooLarge

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_LINE_BYTES",
    "MAX_RETRY_MS",
    "MIN_RETRY_MS",
    "SseDecoder",
    "SseEvent",
]

DEFAULT_MAX_LINE_BYTES = 1 << 20  # 1 MiB
DEFAULT_MAX_EVENT_BYTES = 4 << 20  # 4 MiB
MIN_RETRY_MS = 100
MAX_RETRY_MS = 60_000

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event. `data` has its trailing newline removed; `id` is the last event id in
    effect when the event was dispatched (the stream's, not necessarily set by this event)."""

    data: str
    event: str = "message"
    id: str = ""
    error: str | None = None  # set when the event's lines were not valid UTF-8; `data` is then ""


class SseDecoder:
    """Feed bytes with `feed()`, get complete events back; read `last_event_id` and `retry_ms`."""

    __slots__ = (
        "_bad_utf8",
        "_bom_checked",
        "_buf",
        "_data",
        "_data_size",
        "_event_type",
        "_id_buffer",
        "_skip_lf",
        "last_event_id",
        "max_event_bytes",
        "max_line_bytes",
        "retry_ms",
    )

    def __init__(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        last_event_id: str = "",
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.max_event_bytes = max_event_bytes
        self._buf = bytearray()
        self._bom_checked = False
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to that line break
        self._data: list[str] = []
        self._data_size = 0
        self._event_type = ""
        self._id_buffer = last_event_id
        self._bad_utf8 = False
        #: The last event id the stream dispatched (what `Last-Event-ID` should carry on resumption).
        self.last_event_id = last_event_id
        #: The reconnection delay the server asked for, already clamped; None until it sends one.
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Decode another chunk; return the events it completed (possibly none)."""
        if not chunk:
            return []
        buf = self._buf
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf += chunk
        if not self._bom_checked:
            if len(buf) < 3 and _BOM.startswith(bytes(buf)):
                return []  # could still be a BOM split across chunks
            self._bom_checked = True
            if buf.startswith(_BOM):
                del buf[:3]
        events: list[SseEvent] = []
        start = 0
        n = len(buf)
        find = buf.find
        while start < n:
            lf = find(b"\n", start)
            cr = find(b"\r", start, lf if lf >= 0 else n)
            if cr >= 0:
                end = cr
                if cr + 1 < n:
                    nxt = cr + 2 if buf[cr + 1] == 0x0A else cr + 1
                else:
                    nxt = cr + 1
                    self._skip_lf = True  # the LF of a CRLF may arrive in the next chunk
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            if end - start > self.max_line_bytes:
                self._reset_after_overflow()
                raise ResponseTooLarge(f"an SSE line exceeded {self.max_line_bytes} bytes")
            event = self._line(bytes(buf[start:end]))
            if event is not None:
                events.append(event)
            start = nxt
        if start:
            del buf[:start]
        if len(buf) > self.max_line_bytes:
            self._reset_after_overflow()
            raise ResponseTooLarge(f"an SSE line exceeded {self.max_line_bytes} bytes")
        return events

    def close(self) -> list[SseEvent]:
        """End of stream. Per WHATWG an incomplete event (no blank line yet) is discarded."""
        self._buf.clear()
        self._data.clear()
        self._data_size = 0
        self._event_type = ""
        self._bad_utf8 = False
        return []

    # --- internals ------------------------------------------------------------------------------

    def _reset_after_overflow(self) -> None:
        self._buf = bytearray()
        self._data.clear()
        self._data_size = 0

    def _line(self, line: bytes) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:  # ":" comment (keep-alive); never an error
            return None
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name = line[:colon]
            value = line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data_size += len(value) + 1
            if self._data_size > self.max_event_bytes:
                self._data.clear()
                self._data_size = 0
                raise ResponseTooLarge(f"an SSE event exceeded {self.max_event_bytes} bytes")
            try:
                self._data.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                self._bad_utf8 = True
                self._data.append("")
        elif name == b"event":
            try:
                self._event_type = value.decode("utf-8")
            except UnicodeDecodeError:
                self._bad_utf8 = True
        elif name == b"id":
            if b"\x00" not in value:
                try:
                    self._id_buffer = value.decode("utf-8")
                except UnicodeDecodeError:
                    pass
        elif name == b"retry" and value and value.isdigit():  # bytes.isdigit: ASCII digits only
            # int() of a 10**6-digit string is slow and capped; the clamp makes long ones moot.
            ms = int(value) if len(value) <= 9 else MAX_RETRY_MS
            self.retry_ms = min(max(ms, MIN_RETRY_MS), MAX_RETRY_MS)
        # any other field name is ignored
        return None

    def _dispatch(self) -> SseEvent | None:
        self.last_event_id = self._id_buffer
        if not self._data:
            self._event_type = ""
            self._bad_utf8 = False
            return None
        event_type = self._event_type or "message"
        if self._bad_utf8:
            event = SseEvent("", event_type, self.last_event_id, "SSE event is not valid UTF-8")
        else:
            data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
            event = SseEvent(data, event_type, self.last_event_id)
        self._data = []
        self._data_size = 0
        self._event_type = ""
        self._bad_utf8 = False
        return event
