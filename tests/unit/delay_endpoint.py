"""A minimal HTTP endpoint whose answer and delay the test sets, to check what load measures.

Not a stand-in for the model server (tests/integration drives the real one): a load
generator's numbers can only be checked against a server whose latency is known, so this
one holds each request for ``delay`` seconds, answers ``status``, and counts what it saw
(requests, paths, headers, the most requests in flight at once). It binds port 0 itself.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class DelayEndpoint:
    def __init__(self, delay: float = 0.0, status: int = 200, body: Any = None) -> None:
        self.delay = delay
        self.status = status
        self.body = {"outputs": []} if body is None else body
        self.metadata: dict[str, Any] = {"name": "m", "inputs": []}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.clients: set[tuple[str, int]] = set()  # one per connection
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll: shutdown() waits for the next one, 0.5 s by default, in every test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> DelayEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects
            # Headers and body go out in two writes; with Nagle's algorithm the second waits
            # for the client's delayed ACK (40 ms), which would swamp the delay under test.
            disable_nagle_algorithm = True

            def log_message(self, *_: Any) -> None:  # quiet test output
                pass

            def _answer(self, status: int, document: Any) -> None:
                # Bytes go out as they are (a body that is not even UTF-8), the rest as JSON.
                data = document if isinstance(document, bytes) else json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                with endpoint._lock:
                    endpoint.requests.append(("GET", self.path, dict(self.headers), b""))
                time.sleep(endpoint.delay)
                if isinstance(endpoint.body, bytes):
                    self._answer(endpoint.status, endpoint.body)
                elif self.path.endswith("/missing"):
                    self._answer(404, {"error": "no such model"})
                else:
                    self._answer(endpoint.status, endpoint.metadata)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with endpoint._lock:
                    endpoint.requests.append(("POST", self.path, dict(self.headers), body))
                    endpoint.clients.add(self.client_address)
                    endpoint.in_flight += 1
                    endpoint.most_in_flight = max(endpoint.most_in_flight, endpoint.in_flight)
                try:
                    time.sleep(endpoint.delay)  # the server's processing time, known to the test
                    self._answer(endpoint.status, endpoint.body)
                finally:
                    with endpoint._lock:
                        endpoint.in_flight -= 1

        return Handler
