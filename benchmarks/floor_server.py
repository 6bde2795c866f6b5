"""The loopback floor for `python benchmarks/run.py serve`: HTTP/1.1 that does nothing else.

    python benchmarks/floor_server.py PORT REPLY_FILE

Answers every request on a kept-alive connection with the bytes of REPLY_FILE
(the V2 JSON reply `tekton-mlops serve` gives to the benchmark's request, so
the same bytes cross the loopback) and does no other work: no routing, no JSON,
no model. What a server measures beyond this, with the same client on the same
cores, is the cost of being a server. An asyncio Protocol, the cheapest
responder pure Python has: parsing is a few `bytes.find` calls per request.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


class Responder(asyncio.Protocol):
    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.pending = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.pending += data
        while (end := self.pending.find(b"\r\n\r\n")) >= 0:
            head = self.pending[:end].lower()
            start = head.find(b"content-length:")
            length = 0
            if start >= 0:
                line_end = head.find(b"\r\n", start)
                length = int(head[start + 15 : line_end if line_end >= 0 else None])
            if len(self.pending) < end + 4 + length:
                return  # the body is still on its way
            self.pending = self.pending[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(self.reply)


def main(port: int, body: bytes) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (
        len(body),
        body,
    )

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Responder(reply), "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]).read_bytes())
