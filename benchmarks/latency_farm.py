"""Many "remote" MCP servers in one small process: N loopback ports, each answering like the real
sample server, `latency` seconds after each request arrived.

    python -m benchmarks.latency_farm --upstream http://127.0.0.1:P/mcp --ports 200 --latency-ms 50 \
        --info-file F [--passthrough]

Why not 200 sample server processes: an SDK server process is ~60 MB and 1-2 ms of CPU per request;
200 of them on a 2-core machine would measure the machine, not the client. Real remote servers
spend their CPU elsewhere; what the client sees of them is latency. So:

* Every port is its own origin (its own connections, its own era cache entry, its own session).
* Every request waits `latency` (asyncio sleep: no CPU), then is answered.
* Default (replay): the first request of each kind (HTTP method, JSON-RPC method, protocol version
  header) is forwarded to the one real upstream sample server (run with json_response=True) and its
  answer recorded; later requests of that kind get the recorded answer with their own JSON-RPC id.
  So both clients see the real server's bytes (its initialize/discover results, its tool list, its
  session id and headers) at a few microseconds of farm CPU per request.
* `--passthrough`: forward every request to the upstream server (then the single upstream
  process's CPU is the bottleneck; reported separately).
* GET (the optional standalone SSE stream) is answered 405, which the spec allows and both clients
  handle; it would otherwise be a long-lived stream per session.

`GET /_farm/stats` on any port returns request counts (by kind and by port); `POST /_farm/reset` zeroes them.
HTTP/1.1 with keep-alive and Content-Length bodies only (what both clients send).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2

_HOP_HEADERS = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "date", "server"}


class Farm:
    def __init__(self, upstream: str, latency: float, passthrough: bool) -> None:
        self.upstream = upstream
        self.latency = latency
        self.passthrough = passthrough
        self.client = httpx2.AsyncClient(
            trust_env=False,
            timeout=60.0,
            limits=httpx2.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self.recorded: dict[tuple[str, str, str], tuple[int, list[tuple[str, str]], bytes]] = {}
        self.recording: dict[tuple[str, str, str], asyncio.Future[None]] = {}
        self.counts: Counter[str] = Counter()
        self.per_port: Counter[int] = Counter()
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        port = writer.get_extra_info("sockname")[1]
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                verb, target, _version = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                if "chunked" in headers.get("transfer-encoding", ""):
                    await self._send(writer, 411, [], b"")
                    return
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                if target.startswith("/_farm/"):
                    await self._control(writer, verb, target)
                    continue
                self.per_port[port] += 1
                await asyncio.sleep(self.latency)
                status, out_headers, out_body = await self._answer(verb, target, headers, body)
                await self._send(writer, status, out_headers, out_body)
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _control(self, writer: asyncio.StreamWriter, verb: str, target: str) -> None:
        if target == "/_farm/reset" and verb == "POST":
            self.counts.clear()
            self.per_port.clear()
            self.connections = 0
        payload = {
            "requests": dict(self.counts),
            "requests_total": sum(self.counts.values()),
            "per_port": {str(k): v for k, v in self.per_port.items()},
            "connections": self.connections,
            "recorded": len(self.recorded),
        }
        await self._send(writer, 200, [("content-type", "application/json")], json.dumps(payload).encode())

    async def _answer(
        self, verb: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        message: dict[str, Any] | None = None
        if body:
            try:
                parsed = json.loads(body)
                message = parsed if isinstance(parsed, dict) else None
            except ValueError:
                message = None
        rpc = str(message.get("method")) if message else ""
        self.counts[f"{verb} {rpc}".strip()] += 1
        if verb == "GET":
            return 405, [("allow", "POST, DELETE")], b""
        if self.passthrough:
            return await self._forward(verb, headers, body)
        key = (verb, rpc, headers.get("mcp-protocol-version", ""))
        recorded = self.recorded.get(key)
        if recorded is None:
            pending = self.recording.get(key)
            if pending is None:  # record this kind once; concurrent requests of the kind wait for it
                pending = self.recording[key] = asyncio.get_running_loop().create_future()
                try:
                    self.recorded[key] = await self._forward(verb, headers, body)
                finally:
                    pending.set_result(None)
                    del self.recording[key]
            else:
                await pending
            recorded = self.recorded.get(key)
            if recorded is None:
                return 502, [], b""
        status, out_headers, out_body = recorded
        if message is not None and "id" in message and out_body:
            answer = json.loads(out_body)
            if isinstance(answer, dict) and "id" in answer:
                answer["id"] = message["id"]
                out_body = json.dumps(answer, separators=(",", ":")).encode()
        return status, out_headers, out_body

    async def _forward(
        self, verb: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        send_headers = {k: v for k, v in headers.items() if k not in _HOP_HEADERS}
        response = await self.client.request(verb, self.upstream, headers=send_headers, content=body or None)
        out_headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _HOP_HEADERS]
        return response.status_code, out_headers, response.content

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        reason = {
            200: "OK",
            202: "Accepted",
            204: "No Content",
            405: "Method Not Allowed",
            411: "Length Required",
            502: "Bad Gateway",
        }.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
        lines.append(f"content-length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()


async def serve(upstream: str, ports: int, latency: float, passthrough: bool, info_file: Path) -> None:
    farm = Farm(upstream, latency, passthrough)
    servers = []
    bound: list[int] = []
    for _ in range(ports):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        bound.append(sock.getsockname()[1])
        servers.append(await asyncio.start_server(farm.handle, sock=sock))
    partial = info_file.with_suffix(".partial")
    partial.write_text(json.dumps({"ports": bound, "urls": [f"http://127.0.0.1:{p}/mcp" for p in bound]}))
    os.replace(partial, info_file)
    parent = os.getppid()
    while os.getppid() == parent:  # exit with the benchmark process
        await asyncio.sleep(0.5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--ports", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--passthrough", action="store_true")
    parser.add_argument("--info-file", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        asyncio.run(
            serve(args.upstream, args.ports, args.latency_ms / 1000, args.passthrough, args.info_file)
        )
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
