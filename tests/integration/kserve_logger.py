"""KServe's payload logger, as the tests post it: CloudEvents over HTTP to a real log sink.

No KServe agent runs here, so the tests post what it posts (kserve ``pkg/logger``:
``handler.go`` queues an event per request and per 200 response, ``worker.go`` sends each
in the CloudEvents HTTP binary mode) to a real ``tekton-mlops log-sink`` process on
127.0.0.1: ``Ce-Specversion``, ``Ce-Id`` (one id per exchange, made by each agent: the live
and mirrored copies of a request do not share it), ``Ce-Type``, ``Ce-Source``, ``Ce-Time``
(RFC 3339 with nanoseconds, as Go writes it), the extensions ``Ce-Inferenceservicename``,
``Ce-Namespace``, ``Ce-Component``, ``Ce-Endpoint`` and ``Ce-Metadata`` (the JSON of the
selected headers, each mapped to its list of values, under Go's canonical header name),
``Content-Type`` the request's, the body the payload. Header values are percent-encoded as
the HTTP binding asks for '"' and '%'.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import threading
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from tests.conftest import CLI

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"


class Sink:
    """A ``tekton-mlops log-sink`` process; its log is read into ``lines`` as it comes."""

    def __init__(self, target: str, *options: str) -> None:
        self.process = subprocess.Popen(
            [CLI, "log-sink", f"--dir={target}", "--port=0", *options],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        threading.Thread(target=self._read, daemon=True).start()
        with self._changed:
            self._changed.wait_for(lambda: self._ended or self._port() is not None, 30)
        port = self._port()
        if port is None:
            self.kill()
            raise AssertionError(f"log-sink did not start: {self.log}")
        self.url = f"http://127.0.0.1:{port}"

    def _port(self) -> int | None:
        found = re.search(r"listening at http://127\.0\.0\.1:(\d+)", "\n".join(self.lines))
        return int(found[1]) if found else None

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def stop(self) -> int:
        """SIGTERM, as Kubernetes stops the pod: the last file is written; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        with self._changed:
            self._changed.wait_for(lambda: self._ended, 10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def go_time(moment: float) -> str:
    """RFC 3339 with nanoseconds in UTC, as Go's time.RFC3339Nano writes a CloudEvent time."""
    whole = datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    nanos = round((moment - int(moment)) * 1e9)
    return f"{whole}.{min(nanos, 999_999_999):09d}Z"


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """One POST as Go's HTTP client sends it (a Content-Length, no chunking)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/", body=body,
                       headers={"User-Agent": "Go-http-client/1.1", **headers})  # fmt: skip
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data) if data else {}


def event_headers(
    kind: str, event_id: str, service: str, moment: float, metadata: dict[str, list[str]]
) -> dict[str, str]:
    """The headers of one binary-mode event from the predictor's agent of ``service``."""
    return {
        "Ce-Specversion": "1.0",
        "Ce-Id": event_id,
        "Ce-Type": kind,
        "Ce-Source": "http://localhost:9081/",
        "Ce-Time": go_time(moment),
        "Ce-Inferenceservicename": service,
        "Ce-Namespace": "models",
        "Ce-Component": "predictor",
        "Ce-Endpoint": "default",
        "Ce-Metadata": quote(json.dumps(metadata, separators=(",", ":")), safe="{}[]:,"),
        "Content-Type": "application/json",
    }


def log_exchange(
    sink: str,
    service: str,
    request_id: str,
    request: bytes,
    response: bytes | None,
    start: float,
    ms: float,
) -> None:
    """What one agent posts for one request: the request event and, for a 200, the response
    event ``ms`` later, both with a new id of this agent's and the request's x-request-id."""
    event_id = str(uuid.uuid4())
    metadata = {"X-Request-Id": [request_id]} if request_id else {}
    status, _ = post(sink, request, event_headers(REQUEST, event_id, service, start, metadata))
    assert status == 202
    if response is not None:
        at = start + ms / 1000
        status, _ = post(sink, response, event_headers(RESPONSE, event_id, service, at, metadata))
        assert status == 202


def answer(probabilities: list[float], label: int) -> bytes:
    """A V2 inference response of the iris models: a label and its class probabilities."""
    return json.dumps({
        "model_name": "iris", "model_version": "1", "id": str(uuid.uuid4()),
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [1], "data": [label]},
            {"name": "probabilities", "datatype": "FP32", "shape": [1, 3],
             "data": probabilities},
        ],
    }).encode()  # fmt: skip
