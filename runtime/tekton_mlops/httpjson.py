"""The JSON-over-HTTP/1.1 handler the V2 server and the trigger listener share.

Keep-alive connections, and replies sent without Nagle's delay (a large reply leaves
in several writes, and with Nagle's algorithm on, a client's delayed ACK would hold
it back by ~40 ms).

What a client does wrong is an event, not a crash: http.server's own errors
(a bad request line, headers too large, an unknown method) are answered in JSON
like every other reply, and a client that resets, stalls or goes away is logged
as one line, never as a traceback.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import sys
import time
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: A reply larger than this goes out as it is produced (chunked), not joined first.
STREAM_AFTER = 1 << 20
#: How long a closing connection keeps reading what the client still sends.
LINGER_SECONDS = 2.0


class JsonServer(ThreadingHTTPServer):
    """A threading HTTP server whose connection errors are one log line, and which
    closes connections the way web servers do (a lingering close)."""

    log = logging.getLogger("tekton_mlops.http")

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver would print a traceback; handlers catch what they expect, so
        # this is a bug showing: one line that names it.
        exc = sys.exc_info()[1]
        self.log.warning("%s: internal error: %s: %s", client_address[0], type(exc).__name__, exc)

    def shutdown_request(self, request: Any) -> None:
        # After an early answer (a 413, a 400 on the headers) the client may still be
        # sending, and closing a socket with unread data sends a reset that can destroy
        # the answer before the client reads it. So stop writing, read and drop what
        # still comes, for a moment, then close.
        with contextlib.suppress(OSError):  # a reset or a shut socket: nothing to drop
            request.shutdown(socket.SHUT_WR)
            request.settimeout(LINGER_SECONDS)
            deadline = time.monotonic() + LINGER_SECONDS
            while request.recv(1 << 16) and time.monotonic() < deadline:
                pass
        request.close()


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    # Buffered writes: a small reply's headers and body leave in one send (http.server
    # flushes after each request), one system call and one GIL hand-off fewer.
    wbufsize = 1 << 16
    log = logging.getLogger("tekton_mlops.http")
    headers_sent = False  # set once a reply's status line and headers are out

    def handle(self) -> None:
        try:
            super().handle()
        except OSError as exc:  # reset, broken pipe, a read that timed out, a shut socket
            self.close_connection = True
            self.log_error("connection ended: %s", exc.strerror or str(exc) or type(exc).__name__)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        self.log.debug("%s " + format, self.address_string(), *args)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        self.log.info("%s " + format, self.address_string(), *args)

    def handle_expect_100(self) -> bool:
        # The interim 100 Continue must leave now: the client waits for it to send its body.
        accepted = super().handle_expect_100()
        self.wfile.flush()
        return accepted

    def keep_alive(self) -> bool:
        """Whether the connection stays open after this reply (servers may say no)."""
        return not self.close_connection

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server calls this for what it rejects itself; its page would be HTML.
        text = message or HTTPStatus(code).phrase
        if explain and explain != text:
            text = f"{text}: {explain}"
        self.log_error("%d %s", code, text)
        self.close_connection = True
        self.reply(code, {"error": text})

    def reply(self, status: int, document: Any) -> None:
        # allow_nan=False: a reply is strict JSON or a 500, never NaN on the wire.
        self.reply_parts(
            status, [json.dumps(document, separators=(",", ":"), allow_nan=False).encode()]
        )

    def reply_parts(self, status: int, parts: Iterable[bytes]) -> None:
        """A JSON body made of ``parts``: with a Content-Length when it is small or the
        client speaks HTTP/1.0, else chunked as the parts come, so it is never held whole."""
        pending = iter(parts)
        head: list[bytes] = []
        size = 0
        streaming = False
        for part in pending:
            head.append(part)
            size += len(part)
            if size > STREAM_AFTER and self.request_version == "HTTP/1.1":
                streaming = True
                break
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if streaming:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(size))
        if not self.keep_alive():
            self.send_header("Connection", "close")
        self.end_headers()
        self.headers_sent = True
        if self.command == "HEAD":  # headers only, whatever the body would have been
            return
        if not streaming:
            self.wfile.write(b"".join(head))
            return
        for part in itertools.chain([b"".join(head)], pending):
            if part:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")
