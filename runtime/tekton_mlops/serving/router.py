"""A reverse proxy in front of local V2 servers, routing by a table (``tekton-mlops route serve``).

Threads serve kept-alive client connections; each request goes to one version,
chosen by the table's weights (at random, or by a hash of the sticky header's value,
see routes.py), over a pooled kept-alive connection to that version's server, and
the answer goes back with an ``x-model-version`` header naming the version that
served it (Iter8's blue-green routing calls its header ``app-version``). A request
is sent once: a backend that refuses or fails is a 502 (504 when it stalls) whose
JSON body names the version, never a retry on another version.

The table file is watched: a change (a new inode, size or mtime, checked every
50 ms, or at once on SIGHUP) is read and checked whole, then put in force in one
assignment, so every request is routed by the old table or the new, never a mix. A
table that breaks the rules is refused with one log line and the old one stays.
``GET /router/status`` tells which table is in force (its sha256), so whoever wrote
it can wait until it is.

Health and metadata answer from the live side: ``/v2/health/ready`` and
``/v2/models/NAME/ready`` are ready when at least one version with traffic is;
``/v2/models/NAME`` comes from the version a request would be routed to.
Inference requests (POST .../infer) are copied to the table's mirror, sampled by its
percent, after the client has its answer (mirror.py).

Example::

    router = make_router(Path("table.json"), "127.0.0.1", 8080)
    router.serve_forever()
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import socket
import socketserver
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.serving.limits import Limits
from tekton_mlops.serving.mirror import Copy, Mirrorer, request_id, shadow_host
from tekton_mlops.serving.routes import (
    BUCKETS,
    Table,
    TableError,
    bucket_of,
    read_table,
    records_path,
)
from tekton_mlops.serving.wire import (
    Head,
    HttpError,
    Pool,
    Reader,
    Reply,
    UpstreamError,
    body_length,
    configure,
    read_body,
    request_bytes,
)

VERSION_HEADER = "x-model-version"
RELOAD_SECONDS = 0.05
LINGER_SECONDS = 2.0
_READY = re.compile(rb"^/v2/models/(?P<name>[^/]+)(?:/versions/[^/]+)?/ready$")
_METHOD = re.compile(rb"[A-Z]{1,20}")
_BODY_METHODS = ("POST", "PUT", "PATCH")
log = logging.getLogger("tekton_mlops.route")


@dataclass(frozen=True)
class Loaded:
    """The table in force and the sha256 of the file it came from: swapped as one."""

    table: Table
    digest: str
    since: float


def _stamp(path: Path) -> tuple[int, ...] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Router(socketserver.ThreadingTCPServer):
    daemon_threads = True  # idle kept-alive clients must not hold the process at exit
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of new clients is queued, not reset

    def __init__(
        self,
        address: tuple[str, int],
        table_path: Path,
        *,
        seed: int | None = None,
        read_timeout: float = 30.0,
        upstream_timeout: float = 30.0,
        max_request_bytes: int = Limits.max_request_bytes,
        mirror_workers: int = 2,
        mirror_queue: int = 1000,
    ) -> None:
        table, digest = read_table(table_path)  # a bad table stops the start (TableError)
        self.table_path = table_path
        self.current = Loaded(table, digest, time.time())
        self._stamp = _stamp(table_path)
        self.read_timeout = read_timeout
        self.upstream_timeout = upstream_timeout
        self.max_request_bytes = max_request_bytes
        self.random = random.Random(seed).random
        self.pools: dict[str, Pool] = {}
        self.draining = False
        self._lock = threading.Lock()
        # Counts are kept by each connection's handler, without a lock (a lock taken by
        # every request cost ~20 us of CPU a request here once threads contended for it),
        # and added up when a connection ends or the status is asked for.
        self._handlers: set[RouteHandler] = set()
        self._served: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self.wake = threading.Event()
        super().__init__(address, RouteHandler)
        self.mirrorer = Mirrorer(records_path(table_path), mirror_workers, mirror_queue)
        threading.Thread(target=self._watch, name="table-watch", daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host if isinstance(host, str) else host.decode()}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver would print a traceback; the handler catches what it expects, so
        # this is a bug showing: one line that names it.
        exc = sys.exc_info()[1]
        log.warning("%s: internal error: %s: %s", client_address[0], type(exc).__name__, exc)

    def shutdown_request(self, request: Any) -> None:
        # After an early answer (a 413 before the body was read) the client may still be
        # sending; closing with unread data would reset the connection and could destroy
        # the answer. So stop writing, drop what still comes for a moment, then close.
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_WR)
            request.settimeout(LINGER_SECONDS)
            deadline = time.monotonic() + LINGER_SECONDS
            while request.recv(1 << 16) and time.monotonic() < deadline:
                pass
        request.close()

    def pool(self, url: str) -> Pool:
        found = self.pools.get(url)
        if found is None:
            found = self.pools.setdefault(url, Pool(url, self.upstream_timeout))
        return found

    # The table -------------------------------------------------------------------------

    def _watch(self) -> None:
        while True:
            forced = self.wake.wait(RELOAD_SECONDS)
            self.wake.clear()
            self.reload(forced)

    def reload(self, forced: bool = False) -> None:
        """Put the table file in force if it changed (or ``forced``); keep the old if bad."""
        stamp = _stamp(self.table_path)
        if stamp == self._stamp and not forced:
            return
        self._stamp = stamp
        try:
            table, digest = read_table(self.table_path)
        except TableError as exc:
            log.warning("keeping the table in force (%s): %s", self.current.digest[:19],
                        " ".join(str(exc).split()))  # fmt: skip
            return
        if digest == self.current.digest:
            return
        self.current = Loaded(table, digest, time.time())
        for url in set(self.pools) - set(table.backends.values()):
            self.pools.pop(url).close()
        log.info("table %s in force: %s", digest[:19], describe(table))

    # Accounting and stopping ------------------------------------------------------------

    def joined(self, handler: RouteHandler) -> None:
        with self._lock:
            self._handlers.add(handler)

    def left(self, handler: RouteHandler) -> None:
        with self._lock:
            self._handlers.discard(handler)
            self._served.update(handler.served)
            self._failed.update(handler.failed)

    def busy(self) -> int:
        """Requests in flight now."""
        with self._lock:
            return sum(handler.busy for handler in self._handlers)

    def drain(self, seconds: float) -> int:
        """After ``serve_forever`` returned: stop accepting, let requests in flight end
        (at most ``seconds``), give the mirror's queue a moment; how many were cut off."""
        self.draining = True
        self.socket.close()
        deadline = time.monotonic() + seconds
        while self.busy() and time.monotonic() < deadline:
            time.sleep(0.01)  # a poll: no wake-up costs the relay anything per request
        self.mirrorer.close(2.0)
        return self.busy()

    def status(self) -> dict[str, Any]:
        loaded = self.current
        with self._lock:
            served, failed = Counter(self._served), Counter(self._failed)
            for handler in self._handlers:
                # dict() copies in one step; the handler's thread may be adding a key.
                served.update(dict(handler.served))
                failed.update(dict(handler.failed))
            mirror = {
                "sent": self.mirrorer.sent,
                "failed": self.mirrorer.failed,
                "dropped": self.mirrorer.dropped,
            }
        return {
            "model": loaded.table.model,
            "table_digest": loaded.digest,
            "table_since": round(loaded.since, 3),
            "table": loaded.table.document(),
            "served": dict(served),
            "failed": dict(failed),
            "mirror": mirror,
        }


def describe(table: Table) -> str:
    """``v1=90 v2=10, sticky x-user, mirror v3 at 5%``: a table in one log line."""
    text = " ".join(f"{v}={w}" for v, w in table.weights.items())
    if table.sticky_header:
        text += f", sticky {table.sticky_header}"
    if table.mirror is not None:
        text += f", mirror {table.mirror.version} at {table.mirror.percent:g}%"
    return text


class RouteHandler(socketserver.BaseRequestHandler):
    server: Router
    request: socket.socket

    def setup(self) -> None:
        configure(self.request, self.server.read_timeout)
        self.reader = Reader(self.request)
        self.busy = False
        self.served: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.server.joined(self)

    def finish(self) -> None:
        self.server.left(self)

    def handle(self) -> None:
        try:
            while self._one():
                pass
        except HttpError as exc:  # the request cannot be read on: answer and close
            with contextlib.suppress(OSError):
                self._send_json(exc.status, {"error": str(exc)}, close=True)
        except OSError:  # the client went away, reset or stalled past --read-timeout
            pass

    def _one(self) -> bool:
        """Relay one request; whether the connection stays open for another."""
        head = self.reader.head()
        if head is None:
            return False
        self.busy = True
        try:
            return self._relay(head)
        finally:
            self.busy = False

    def _relay(self, head: Head) -> bool:
        parts = head.start.split(b" ")
        if len(parts) != 3 or not _METHOD.fullmatch(parts[0]) or not parts[1].startswith(b"/"):
            raise HttpError(400, f"a malformed request line: {head.start[:80]!r}")
        method_bytes, target, version = parts
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise HttpError(505, f"unsupported protocol {version[:20]!r}")
        method = method_bytes.decode()
        close = head.wants_close(version) or self.server.draining
        length = body_length(head)
        limit = self.server.max_request_bytes
        if length is not None and length > limit:
            raise HttpError(413, f"the body is {length} bytes, over the limit of {limit} "
                            "(--max-request-bytes)")  # fmt: skip
        if b"100-continue" in head.noted.get(b"expect", ()) and version == b"HTTP/1.1":
            self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = read_body(self.reader, length, limit)
        path = target.split(b"?", 1)[0]
        table = self.server.current.table
        if path == b"/router/status" and method == "GET":
            self._send_json(200, self.server.status(), close)
        elif path == b"/v2/health/live":
            self._send_json(200, {"live": not self.server.draining}, close)
        elif path == b"/v2/health/ready":
            ready = self._any_ready(table, target)
            self._send_json(200 if ready else 503, {"ready": ready}, close)
        elif (match := _READY.match(path)) is not None:
            ready = self._any_ready(table, target)
            name = match["name"].decode(errors="replace")
            self._send_json(200 if ready else 503, {"name": name, "ready": ready}, close)
        else:
            version_served = self._choose(table, head)
            reply = self._forward(table, version_served, head, method, target, body, close)
            mirror = table.mirror
            if (
                reply is not None
                and mirror is not None
                and method == "POST"
                and path.endswith(b"/infer")
                and self.server.random() * 100 < mirror.percent
            ):
                self._mirror(table, mirror.version, version_served, head, target, body, reply)
        return not close

    def _choose(self, table: Table, head: Head) -> str:
        if table.sticky_header:
            value = head.get(table.sticky_header.encode())
            if value is not None:
                return table.version_for(bucket_of(value.decode("latin-1")))
        # Without the header (or a sticky one), a random bucket: the weights decide.
        return table.version_for(int(self.server.random() * BUCKETS))

    def _forward(
        self,
        table: Table,
        version: str,
        head: Head,
        method: str,
        target: bytes,
        body: bytes,
        close: bool,
    ) -> Reply | None:
        """Relay a request to ``version`` and its answer to the client (None: it failed)."""
        pool = self.server.pool(table.backends[version])
        host = b"" if b"host" in head.noted else pool.authority
        request = request_bytes(
            method, target, head.end_to_end(), host, body, _length(head, method)
        )
        try:
            reply = pool.exchange(request, method)
        except UpstreamError as exc:
            self.failed[version] += 1
            message = f"version {version} ({pool.url}): {exc}"
            path = target[:200].decode(errors="replace")
            log.info("%s %s -> %d: %s", method, path, exc.status, message)
            self._send_json(exc.status, {"error": message}, close, version)
            return None
        self.served[version] += 1
        self.request.sendall(
            b"".join(
                (
                    reply.head.start, b"\r\n", reply.head.end_to_end(),
                    b"x-model-version: ", version.encode(), b"\r\n",
                    b"" if reply.framed(method) else b"Content-Length: %d\r\n" % len(reply.body),
                    b"Connection: close\r\n" if close else b"", b"\r\n",
                    reply.body,
                )
            )
        )  # fmt: skip
        return reply

    def _mirror(
        self, table: Table, mirror: str, live: str, head: Head, target: bytes, body: bytes,
        reply: Reply,
    ) -> None:  # fmt: skip
        """Queue a copy of an answered request for the mirror, its Host marked as a shadow."""
        pool = self.server.pool(table.backends[mirror])
        hosts = head.noted.get(b"host")
        copy = request_bytes("POST", target, head.end_to_end(frozenset({b"host"})),
                             shadow_host(hosts[-1] if hosts else pool.authority), body,
                             _length(head, "POST"))  # fmt: skip
        identity = request_id(head.get(b"x-request-id"))
        self.server.mirrorer.offer(
            Copy(identity, live, mirror, pool, copy, "POST", reply.status,
                 reply.seconds * 1000, reply.body)
        )  # fmt: skip

    def _any_ready(self, table: Table, target: bytes) -> bool:
        """Whether a version with traffic answers 200 to the same health path."""
        for version in table.live:
            pool = self.server.pool(table.backends[version])
            request = request_bytes("GET", target, b"", pool.authority, b"", False)
            with contextlib.suppress(UpstreamError):
                if pool.exchange(request, "GET").status == 200:
                    return True
        return False

    def _send_json(self, status: int, document: Any, close: bool, version: str = "") -> None:
        """A JSON answer of the router's own; ``version`` names the version it concerns."""
        body = json.dumps(document, separators=(",", ":")).encode()
        reason = _REASONS.get(status, "")
        head = [
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n",
            f"{VERSION_HEADER}: {version}\r\n" if version else "",
            f"Content-Length: {len(body)}\r\n",
            "Connection: close\r\n" if close else "",
            "\r\n",
        ]
        self.request.sendall("".join(head).encode() + body)


_REASONS = {
    200: "OK", 400: "Bad Request", 413: "Content Too Large",
    431: "Request Header Fields Too Large", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}  # fmt: skip


def _length(head: Head, method: str) -> bool:
    """Whether a relayed request needs a Content-Length of the router's: the client's
    body came chunked, or a body method came without one."""
    return bool(head.codings) or (not head.lengths and method in _BODY_METHODS)


def make_router(table: Path, host: str, port: int, **options: Any) -> Router:
    """A router on ``host:port`` (0: any free port) for the table file ``table``."""
    return Router((host, port), table, **options)


def reload_on_sighup(router: Router) -> None:
    """SIGHUP makes the router read its table now rather than at the next check."""
    import signal

    signal.signal(signal.SIGHUP, lambda _signum, _frame: router.wake.set())
