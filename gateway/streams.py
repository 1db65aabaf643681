"""Open notification streams, per agent: a handshake-era session's GET stream or a 2026-07-28
`subscriptions/listen` response. `notifications/tools/list_changed` goes to every stream of an agent
whose visible tool set changed; a stream whose token stopped being valid is closed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway import protocol

KEEPALIVE_SECONDS = 15.0


@dataclass(eq=False)
class Stream:
    agent_id: str
    token_hash: str
    subscription_id: Any = None  # the listen request's id (2026-07-28); None for a GET stream
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)


class Streams:
    def __init__(self) -> None:
        self._by_agent: dict[str, set[Stream]] = {}

    def open(self, agent_id: str, token_hash: str, subscription_id: Any = None) -> Stream:
        stream = Stream(agent_id, token_hash, subscription_id)
        self._by_agent.setdefault(agent_id, set()).add(stream)
        return stream

    def close(self, stream: Stream) -> None:
        streams = self._by_agent.get(stream.agent_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._by_agent[stream.agent_id]

    def count(self, agent_id: str | None = None) -> int:
        if agent_id is not None:
            return len(self._by_agent.get(agent_id, ()))
        return sum(len(s) for s in self._by_agent.values())

    def notify(self, agents: set[str], token_valid: Callable[[str], bool]) -> None:
        for agent_id in agents:
            for stream in list(self._by_agent.get(agent_id, ())):
                stream.queue.put_nowait(protocol.sse_event(protocol.list_changed(stream.subscription_id)))
        self.drop_invalid(token_valid)

    def drop_invalid(self, token_valid: Callable[[str], bool]) -> None:
        for streams in list(self._by_agent.values()):
            for stream in list(streams):
                if not token_valid(stream.token_hash):
                    stream.queue.put_nowait(None)

    def close_all(self) -> None:
        for streams in list(self._by_agent.values()):
            for stream in streams:
                stream.queue.put_nowait(None)


async def serve_stream(
    stream: Stream, receive: Any, send: Any, *, first: bytes = b"", last: bytes = b"", headers=()
) -> None:
    """Hold an SSE response open: queued events, a keepalive comment every 15 s, until the client
    goes away or the stream is closed (then `last`, e.g. a listen request's final result)."""
    await send({"type": "http.response.start", "status": 200, "headers": [*protocol.SSE_HEADERS, *headers]})
    await send({"type": "http.response.body", "body": first or b": open\n\n", "more_body": True})
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        while True:
            item = asyncio.ensure_future(stream.queue.get())
            done, _ = await asyncio.wait(
                {item, gone}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if gone in done:
                item.cancel()
                return
            if item not in done:
                item.cancel()
                await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                continue
            event = item.result()
            if event is None:
                await send({"type": "http.response.body", "body": last, "more_body": False})
                return
            await send({"type": "http.response.body", "body": event, "more_body": True})
    finally:
        gone.cancel()


async def _disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
