"""Headers every response of the dashboard carries: no page may be framed (clickjacking — a framed
`/playground?…` would otherwise run a preselected call on one click).

`FramingHeaders` is a Tornado output transform, so it covers every handler of the application —
Bokeh's pages, static files and websocket handshakes, Panel's, and the plugin routes. `protect` adds
it to the application the first time the auth module sees a request (a bare `panel serve` gives no
earlier hook) and sets the headers on that first response itself.
"""

from __future__ import annotations

from typing import Any

from tornado.web import OutputTransform, RequestHandler

from dashboard.signin import FRAMING_HEADERS


class FramingHeaders(OutputTransform):
    def transform_first_chunk(
        self, status_code: int, headers: Any, chunk: bytes, finishing: bool
    ) -> tuple[int, Any, bytes]:
        for name, value in FRAMING_HEADERS.items():
            headers[name] = value
        return status_code, headers, chunk


def protect(handler: RequestHandler) -> None:
    """Make sure `handler`'s application adds the framing headers to every response, this one too."""
    application = handler.application
    if FramingHeaders not in application.transforms:
        application.add_transform(FramingHeaders)
    for name, value in FRAMING_HEADERS.items():
        handler.set_header(name, value)
