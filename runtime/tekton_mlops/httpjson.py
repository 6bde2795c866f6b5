"""The JSON-over-HTTP/1.1 handler the V2 server and the trigger listener share.

Keep-alive connections, and replies sent without Nagle's delay: headers and body
leave in separate writes, and with Nagle's algorithm on, a client's delayed ACK
would hold each reply back by ~40 ms.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler
from typing import Any


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    log = logging.getLogger("tekton_mlops.http")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        self.log.debug("%s " + format, self.address_string(), *args)

    def reply(self, status: int, document: Any) -> None:
        body = json.dumps(document, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
