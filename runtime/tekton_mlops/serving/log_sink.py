"""The log sink: an HTTP server that writes KServe's payload-logger CloudEvents as payload logs.

On a cluster, KServe's agent posts each request and each 200 response of an
InferenceService with ``spec.predictor.logger.url`` pointing here (deploy-model's
``payload-log-url``). The sink turns every event into one line of the payload-log format
``serve --log-payloads`` writes (serving/cloudevents.py) and hands it to the same writer
(serving/payload_log.py's ``PayloadLog``: a bounded queue, rotated ``*.jsonl`` files, an
S3 prefix), so check-mirror and detect-drift read KServe's logs as they read serve's.

Answers: 202 for an event accepted; 400 naming what is missing or wrong; 411 without a
Content-Length; 413 for a body over ``max_bytes`` (refused before it is read); 503 when the
writer's queue is full (the event is dropped and counted, as serve drops records). GET
``/healthz`` answers 200 while the sink runs. No header but the event's own ``Ce-*``
attributes is ever written or logged.

Example::

    payloads = PayloadLog(LogSettings("/var/log/payloads"), "", "", log).start()
    sink = make_sink(payloads, "0.0.0.0", 8080, max_bytes=8 << 20)
    sink.serve_forever()
    sink.drain(10.0)
    payloads.close(timeout=5.0)
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING

from tekton_mlops.httpjson import JsonHandler, JsonServer
from tekton_mlops.serving.cloudevents import STRUCTURED, EventError, from_binary, from_structured

if TYPE_CHECKING:
    from tekton_mlops.serving.payload_log import PayloadLog

log = logging.getLogger("tekton_mlops.log_sink")
_DIGITS = re.compile(r"[0-9]{1,19}")
#: Room in a record line beyond the body: the envelope and the selected headers.
ENVELOPE_BYTES = 1 << 16


class SinkServer(JsonServer):
    log = log
    daemon_threads = True  # the drain, not thread joins, bounds how long stopping takes
    request_queue_size = 1024  # many agents post at once; the default 5 would reset them
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], payloads: PayloadLog, max_bytes: int, read_timeout: float
    ) -> None:
        super().__init__(address, SinkHandler)
        self.payloads = payloads
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.accepted = 0
        self.refused = 0
        self._busy = 0
        self._changed = threading.Condition()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}"

    def count(self, accepted: bool) -> None:
        with self._changed:
            if accepted:
                self.accepted += 1
            else:
                self.refused += 1

    def busy(self, delta: int) -> None:
        with self._changed:
            self._busy += delta
            self._changed.notify_all()

    def drain(self, seconds: float) -> int:
        """After ``serve_forever`` returned: stop accepting, let the events being received
        reach the writer for at most ``seconds``; how many were still in flight."""
        self.socket.close()
        with self._changed:
            self._changed.wait_for(lambda: self._busy == 0, timeout=seconds)
            return self._busy


class SinkHandler(JsonHandler):
    server: SinkServer
    log = log

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)  # a stalled agent costs this long

    def _refuse(self, status: int, message: str, close: bool = False) -> None:
        self.server.count(False)
        self.log_error("%s %s -> %d: %s", self.command, self.path[:200], status, message)
        if close:
            self.close_connection = True  # the unread body would be taken for a request
        self.reply(status, {"error": message})

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path.split("?", 1)[0] in ("/", "/healthz"):
            self.reply(200, {"status": "ok", "accepted": self.server.accepted,
                             "refused": self.server.refused})  # fmt: skip
        else:
            self.reply(404, {"error": f"no such path {self.path[:200]!r}; POST events"})

    def do_POST(self) -> None:  # noqa: N802
        self.server.busy(+1)
        try:
            self._post()
        finally:
            self.server.busy(-1)

    def _post(self) -> None:
        length = (self.headers.get("Content-Length") or "").strip()
        if "Transfer-Encoding" in self.headers or not length:
            self._refuse(411, "an event needs a Content-Length", close=True)
            return
        if not _DIGITS.fullmatch(length):
            self._refuse(400, f"Content-Length {length[:40]!r} is not a number", close=True)
            return
        if int(length) > self.server.max_bytes:
            self._refuse(413, f"an event of {length} bytes is over the limit of "
                         f"{self.server.max_bytes}", close=True)  # fmt: skip
            return
        body = self.rfile.read(int(length))
        if len(body) < int(length):
            self.close_connection = True  # the agent went away mid-body: nothing to answer
            self.log_error("connection ended after %d of %s bytes", len(body), length)
            return
        media = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        try:
            if media == STRUCTURED:
                line = from_structured(body, time.time())
            else:
                line = from_binary(self.headers, body, time.time())
        except EventError as exc:
            self._refuse(400, f"not a KServe logger event: {exc}")
            return
        if len(line) > self.server.max_bytes + ENVELOPE_BYTES:
            self._refuse(413, f"the event's record is over {self.server.max_bytes} bytes")
            return
        if not self.server.payloads.offer(line):
            self._refuse(503, "the log's queue is full; the event was dropped")
            return
        self.server.count(True)
        self.reply(202, {})


def make_sink(
    payloads: PayloadLog,
    host: str,
    port: int,
    max_bytes: int = 8 << 20,
    read_timeout: float = 30.0,
) -> SinkServer:
    """A sink bound to ``host:port`` (0: a free port), writing through ``payloads``."""
    return SinkServer((host, port), payloads, max_bytes, read_timeout)
