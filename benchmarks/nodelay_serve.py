"""`python -m benchmarks.nodelay_serve KIND --info-file F`: a sample server whose sockets send small
writes at once (TCP_NODELAY), as production HTTP servers do.

`sample_servers.serve` binds `socket.socket(AF_INET, SOCK_STREAM)`, whose `proto` is 0; asyncio
only disables Nagle on sockets whose `proto` is IPPROTO_TCP, so the accepted connections keep
Nagle on. uvicorn writes a response's head and body separately, and on a reused keep-alive
connection the body then waits for the client's delayed ACK: about 40 ms per request on Linux,
which would swamp what the benchmarks measure (any client that reuses connections pays it; one
that opens a new connection per request does not, because new connections start in quick-ACK
mode). This module binds the same way with `proto=IPPROTO_TCP` and is otherwise the unchanged
sample server.
"""

from __future__ import annotations

import socket

from sample_servers import serve


def bind_loopback() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


serve.bind_loopback = bind_loopback

if __name__ == "__main__":
    serve.main()
