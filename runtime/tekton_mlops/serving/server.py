"""An Open Inference Protocol (KServe V2) REST server for one ONNX model.

Threads serve kept-alive HTTP/1.1 connections; onnxruntime releases the GIL
while it computes, so requests run in parallel. Every read from a client waits
at most ``read_timeout`` seconds, so a client that announces a body and stalls
costs a thread for that long, not forever. A body over ``max_request_bytes`` is
refused (413) before it is read; request bodies may also come chunked.

SIGTERM (what Kubernetes and ``deploy-model --stop`` send) turns readiness off and
stops accepting; ``drain`` then closes idle keep-alive connections at once, lets
requests in flight finish until its deadline, and closes whatever is left.

Example::

    server = make_server(OnnxModel.load(Path("model.onnx"), "iris"), "127.0.0.1", 8080)
    server.serve_forever()
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from http import HTTPStatus
from typing import TYPE_CHECKING

from tekton_mlops.httpjson import JsonHandler, JsonServer
from tekton_mlops.serving.jsonio import parse, text_of
from tekton_mlops.serving.limits import Limits
from tekton_mlops.serving.protocol import OnnxModel, RequestError

if TYPE_CHECKING:
    from tekton_mlops.serving.payload_log import PayloadLog

_MODEL_PATH = re.compile(
    r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<rest>/ready|/infer)?$"
)
_DIGITS = re.compile(r"[0-9]{1,19}")
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
_MAX_TRAILERS = 100
log = logging.getLogger("tekton_mlops.serve")


class ClientGone(Exception):
    """The client closed the connection or stalled mid-request; nothing can be answered."""


class V2Server(JsonServer):
    log = log
    # The drain, not thread joins, bounds how long stopping takes: a handler thread
    # stuck past the deadline must not keep the process alive.
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of new clients would see connection resets.
    request_queue_size = 1024
    allow_reuse_address = True
    payloads: PayloadLog | None = None  # serve --log-payloads

    def __init__(
        self,
        address: tuple[str, int],
        model: OnnxModel,
        read_timeout: float = 30.0,
    ) -> None:
        super().__init__(address, V2Handler)
        self.model = model
        self.read_timeout = read_timeout
        self.live = True
        self.draining = False
        self._changed = threading.Condition()
        self._connections: dict[V2Handler, bool] = {}  # handler -> waiting for a request

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}"

    @property
    def limits(self) -> Limits:
        return self.model.limits

    def track(self, handler: V2Handler, waiting: bool) -> bool:
        """Record whether ``handler`` waits for a request; False when it should stop."""
        with self._changed:
            self._connections[handler] = waiting
            self._changed.notify_all()
            return not (waiting and self.draining)

    def forget(self, handler: V2Handler) -> None:
        with self._changed:
            self._connections.pop(handler, None)
            self._changed.notify_all()

    def drain(self, seconds: float) -> int:
        """Stop after ``serve_forever`` returned: refuse new connections, close idle
        ones, give requests in flight ``seconds`` to finish; how many were cut off."""
        self.socket.close()
        deadline = time.monotonic() + seconds
        with self._changed:
            self.draining = True
            while True:
                for handler, waiting in list(self._connections.items()):
                    if waiting:
                        handler.shut()
                busy = [h for h, waiting in self._connections.items() if not waiting]
                left = deadline - time.monotonic()
                if not busy or left <= 0:
                    break
                self._changed.wait(left)
            for handler in busy:
                handler.shut()
            # A moment for the cut-off handlers to log their line and leave.
            self._changed.wait_for(lambda: not self._connections, timeout=2.0)
        return len(busy)


class V2Handler(JsonHandler):
    server: V2Server
    log = log

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)  # every read and write waits this long
        self.requests = 0

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:  # flushing to a client that is gone
            pass
        finally:
            self.server.forget(self)

    def shut(self) -> None:
        """End the connection from another thread: a blocked read returns at once."""
        with contextlib.suppress(OSError):  # already closed: nothing to end
            self.connection.shutdown(socket.SHUT_RDWR)

    def keep_alive(self) -> bool:
        return super().keep_alive() and not self.server.draining

    def handle_one_request(self) -> None:
        # Waiting for the next request is the one time a connection may be closed
        # under the client without losing a request it already sent: the drain does.
        if not self.server.track(self, waiting=True):
            self.close_connection = True
            return
        try:
            arrived = bool(self.rfile.peek(1))  # type: ignore[attr-defined]
        except TimeoutError:
            arrived = False
            if not self.requests:  # an idle keep-alive connection timing out is routine
                self.log_error("no request within %g s; closing", self.server.read_timeout)
        except OSError:
            arrived = False
        if not self.server.track(self, waiting=False) or not arrived:
            self.close_connection = True
            return
        self.requests += 1
        self.headers_sent = False
        super().handle_one_request()

    def handle_expect_100(self) -> bool:
        # The client waits for a go-ahead before sending its body: an oversized one is
        # refused now, before it is sent, instead of after (http.server says yes to all).
        length = self.headers.get("Content-Length", "").strip()
        limit = self.server.limits.max_request_bytes
        if _DIGITS.fullmatch(length) and int(length) > limit:
            self.close_connection = True
            error = _too_large(int(length), limit)
            self._error(error.status, str(error))
            return False
        return super().handle_expect_100()

    def _error(self, status: int, message: str) -> None:
        self.log_error("%s %s -> %d: %s", self.command, self.path[:200], status, message)
        self.reply(status, {"error": message})

    def _model(self, name: str, version: str | None) -> OnnxModel:
        model = self.server.model
        if name != model.name:
            raise RequestError(f"unknown model {name!r}; this server serves {model.name!r}", 404)
        if version is not None and version != model.version:
            raise RequestError(f"model {name!r} has no version {version!r}", 404)
        return model

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if (
            self.headers.get("Content-Length", "0").strip() != "0"
            or "Transfer-Encoding" in self.headers
        ):
            self.close_connection = True  # a GET body is never read: the stream is lost
        try:
            self._get()
        except RequestError as exc:
            self._error(exc.status, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: one line and a 500, not a traceback
            self._error(500, f"internal error: {type(exc).__name__}: {exc}")

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        model = self.server.model
        if path == "/v2/health/live":
            self.reply(200, {"live": self.server.live})
        elif path == "/v2/health/ready":
            ready = model.ready.is_set()
            self.reply(200 if ready else 503, {"ready": ready})
        elif path == "/v2":
            self.reply(200, {"name": "tekton-mlops", "version": "2", "extensions": []})
        elif match := _MODEL_PATH.match(path):
            found = self._model(match["name"], match["version"])
            if match["rest"] == "/ready":
                ready = found.ready.is_set()
                self.reply(200 if ready else 503, {"name": found.name, "ready": ready})
            elif match["rest"] is None:
                self.reply(200, found.metadata())
            else:
                self._error(405, "use POST for /infer")
        else:
            self._error(404, f"no such endpoint: GET {path}")

    def do_POST(self) -> None:  # noqa: N802
        consumed = False
        try:
            path = self.path.split("?", 1)[0]
            match = _MODEL_PATH.match(path)
            if not match or match["rest"] != "/infer":
                raise RequestError(f"no such endpoint: POST {path}", 404)
            model = self._model(match["name"], match["version"])
            text = text_of(self._body())
            consumed = True
            document = parse(text, model.limits.max_values)
            payloads, logged = self.server.payloads, None
            if payloads is not None and isinstance(document, dict):
                logged = payloads.request(self.headers, path, text)
            # The request text is dropped once the tensors are decoded from it (the payload
            # log holds it only while it is queued).
            prepared = model.prepare(document)
            del text, document
            reply = model.run(prepared)
            del prepared
            parts = reply.parts()
            if payloads is not None:
                parts = payloads.response(logged, path, parts)
            self.reply_parts(200, parts)
        except RequestError as exc:
            # A body left unread (or read in part) would be taken for the next request.
            self.close_connection = self.close_connection or not consumed
            self._error(exc.status, str(exc))
        except ClientGone as exc:
            self.close_connection = True
            self.log_error("%s %s: %s", self.command, self.path[:200], exc)
        except TimeoutError:
            self.close_connection = True
            if self.headers_sent:  # the client stopped reading the reply
                self.log_error("%s %s: the client stopped reading the reply", self.command, path)
            else:
                self._error(408, f"no data from the client for {self.server.read_timeout:g} s")
        except OSError:
            raise  # the connection itself failed: JsonHandler.handle logs it
        except Exception as exc:  # noqa: BLE001 - a bug: one line and a 500, not a traceback
            self.close_connection = True
            message = f"internal error: {type(exc).__name__}: {exc}"
            if self.headers_sent:  # too late for a status: the client sees a cut reply
                self.log_error("%s %s: %s", self.command, self.path[:200], message)
            else:
                self._error(500, message)

    def _body(self) -> bytes | bytearray:
        """The request body, within the size limit: by Content-Length or chunked."""
        limit = self.server.limits.max_request_bytes
        codings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if codings:
            if lengths:
                raise RequestError("both Transfer-Encoding and Content-Length are set", 400)
            if [c.strip().lower() for c in ",".join(codings).split(",")] != ["chunked"]:
                raise RequestError(f"unsupported Transfer-Encoding {', '.join(codings)!r}", 501)
            return self._chunked(limit)
        if not lengths:
            raise RequestError("a Content-Length header is required", HTTPStatus.LENGTH_REQUIRED)
        values = {v.strip() for v in lengths}
        if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values))):
            raise RequestError(f"invalid Content-Length {', '.join(lengths)!r}", 400)
        size = int(values.pop())
        if size > limit:
            raise _too_large(size, limit)
        body = self.rfile.read(size)
        if len(body) < size:
            raise ClientGone(f"the client closed the connection after {len(body)} of {size} bytes")
        return body

    def _chunked(self, limit: int) -> bytearray:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                if len(line) < 1024:
                    raise ClientGone("the client closed the connection mid-body")
                raise RequestError("a chunk size line is too long", 400)
            size_text = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise RequestError(f"invalid chunk size {size_text[:20]!r}", 400)
            size = int(size_text, 16)
            if size == 0:
                break
            if len(body) + size > limit:
                raise RequestError(
                    f"the body is over the limit of {limit} bytes (--max-request-bytes)", 413
                )
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise ClientGone("the client closed the connection mid-body")
            body += chunk
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise RequestError("a chunk is longer than its size", 400)
        for _ in range(_MAX_TRAILERS):  # trailer fields, ignored
            if self.rfile.readline(65537) in (b"\r\n", b"\n", b""):
                return body
        raise RequestError("too many trailer fields", 400)


def _too_large(size: int, limit: int) -> RequestError:
    return RequestError(
        f"the body is {size} bytes, over the limit of {limit} (--max-request-bytes)", 413
    )


def make_server(model: OnnxModel, host: str, port: int, read_timeout: float = 30.0) -> V2Server:
    return V2Server((host, port), model, read_timeout)
