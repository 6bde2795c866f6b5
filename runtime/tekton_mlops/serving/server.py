"""An Open Inference Protocol (KServe V2) REST server for one ONNX model.

Threads serve kept-alive HTTP/1.1 connections; onnxruntime releases the GIL
while it computes, so requests run in parallel. SIGTERM (what Kubernetes and
``deploy-model --stop`` send) turns readiness off, stops accepting, lets the
requests in flight finish and exits 0.

Example::

    server = make_server(OnnxModel.load(Path("model.onnx"), "iris"), "127.0.0.1", 8080)
    server.serve_forever()
"""

from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus
from http.server import ThreadingHTTPServer

from tekton_mlops.httpjson import JsonHandler
from tekton_mlops.serving.protocol import OnnxModel, RequestError

MAX_BODY = 64 << 20
_MODEL_PATH = re.compile(
    r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<rest>/ready|/infer)?$"
)
log = logging.getLogger("tekton_mlops.serve")


class V2Server(ThreadingHTTPServer):
    daemon_threads = False  # in-flight requests finish before shutdown returns
    # socketserver's default backlog is 5: a burst of new clients would see connection resets.
    request_queue_size = 1024
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], model: OnnxModel) -> None:
        super().__init__(address, V2Handler)
        self.model = model
        self.live = True

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}"


class V2Handler(JsonHandler):
    server: V2Server
    log = log

    def _error(self, status: int, message: str) -> None:
        self.reply(status, {"error": message})

    def _model(self, name: str, version: str | None) -> OnnxModel:
        model = self.server.model
        if name != model.name:
            raise RequestError(f"unknown model {name!r}; this server serves {model.name!r}", 404)
        if version is not None and version != model.version:
            raise RequestError(f"model {name!r} has no version {version!r}", 404)
        return model

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        try:
            self._get()
        except RequestError as exc:
            self._error(exc.status, str(exc))

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
        try:
            body = self._body()
            path = self.path.split("?", 1)[0]
            match = _MODEL_PATH.match(path)
            if not match or match["rest"] != "/infer":
                raise RequestError(f"no such endpoint: POST {path}", 404)
            model = self._model(match["name"], match["version"])
            try:
                request = json.loads(body)
            except ValueError as exc:
                raise RequestError(f"the body is not JSON: {exc}") from None
            self.reply(200, model.infer(request))
        except RequestError as exc:
            self._error(exc.status, str(exc))

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise RequestError("a Content-Length header is required", HTTPStatus.LENGTH_REQUIRED)
        size = int(length)
        if size > MAX_BODY:
            self.close_connection = True
            raise RequestError(f"the body is {size} bytes, over the limit of {MAX_BODY}", 413)
        return self.rfile.read(size)


def make_server(model: OnnxModel, host: str, port: int) -> V2Server:
    return V2Server((host, port), model)
