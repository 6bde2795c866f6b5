"""The relay floor for `python benchmarks/run.py router`: a proxy that only relays.

    python benchmarks/floor_relay.py PORT UPSTREAM_PORT

A thread per client connection, each with a kept-alive connection of its own to the
server on 127.0.0.1:UPSTREAM_PORT. A request is read to the end of its body (a
`bytes.find` for the end of the head, one for its Content-Length) and written on as
it came; the answer comes back the same way. No routing, no header handling, no
table, no mirror: what the router costs beyond this is the cost of what it does, and
what this costs beyond the server alone is one more hop through Python on these cores.
"""

from __future__ import annotations

import socket
import socketserver
import sys


def message(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes] | None:
    """One whole message framed by Content-Length, and what came after it."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    head = buffer[:end].lower()
    at = head.find(b"content-length:")
    length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
    total = end + 4 + length
    while len(buffer) < total:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    return buffer[:total], buffer[total:]


class Relay(socketserver.BaseRequestHandler):
    upstream_port = 0

    def handle(self) -> None:
        client: socket.socket = self.request
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pending, answers = b"", b""
            while (request := message(client, pending)) is not None:
                whole, pending = request
                upstream.sendall(whole)
                answer = message(upstream, answers)
                if answer is None:
                    return
                reply, answers = answer
                client.sendall(reply)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


if __name__ == "__main__":
    Relay.upstream_port = int(sys.argv[2])
    Server(("127.0.0.1", int(sys.argv[1])), Relay).serve_forever()
