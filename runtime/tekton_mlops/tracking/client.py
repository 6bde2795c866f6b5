"""MLflow's REST API over one kept-alive HTTP(S) connection, with credentials from env.

Credentials come from the environment only, as MLflow's own client reads them:
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (HTTP Basic; checked first,
as MLflow does) else ``MLFLOW_TRACKING_TOKEN`` (a bearer token). In a Task they come from
an optional Secret through ``secretKeyRef``; they never appear in a message.

Every failure is a :class:`TrackingError` of one line naming the server, the call and
the HTTP status (or why no answer came): a step asked to track must never go on silently
untracked. Only what the server certainly did not process is retried: a refused
connection and HTTP 429/503, so a ``runs/create`` is never sent twice.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tekton_mlops import __version__
from tekton_mlops.errors import MlopsError

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
#: Answers that mean "not processed, try again later".
_RETRY_STATUSES = (429, 503)
_BLOCK = 1 << 20


class TrackingError(MlopsError):
    """The tracking server is unreachable or refused a call."""


class ApiError(TrackingError):
    """The server answered a call with an error; ``code`` is MLflow's error_code."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def auth_header(env: Mapping[str, str] | None = None) -> str | None:
    """The Authorization header MLflow's client would send for these variables."""
    env = os.environ if env is None else env
    user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if token := env.get("MLFLOW_TRACKING_TOKEN"):
        return f"Bearer {token}"
    return None


class RestClient:
    """Calls to one tracking server: ``call`` for JSON endpoints, ``upload`` for files."""

    def __init__(self, uri: str, timeout: float | None = None, retries: int | None = None):
        parsed = urllib.parse.urlsplit(uri.rstrip("/"))
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise TrackingError(f"{uri}: not an http:// or https:// MLflow tracking URI")
        self.uri = uri.rstrip("/")
        self._parsed = parsed
        self._prefix = parsed.path  # a server behind a path (https://host/mlflow)
        self._timeout = timeout or float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "60"))
        self._retries = (
            retries
            if retries is not None
            else int(os.environ.get("TEKTON_MLOPS_MLFLOW_RETRIES", 3))
        )
        self._auth = auth_header()
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def call(
        self,
        method: str,
        endpoint: str,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One JSON call, e.g. ``call("POST", "runs/create", {...})``; its JSON answer."""
        path = f"{self._prefix}{API}/{endpoint}"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        status, answer = self._send(method, path, endpoint, data, "application/json")
        try:
            document = json.loads(answer) if answer.strip() else {}
        except ValueError:
            raise TrackingError(
                f"MLflow tracking server {self.uri}: {method} {endpoint} answered HTTP {status} "
                "with a body that is not JSON (is this an MLflow server?)"
            ) from None
        return document if isinstance(document, dict) else {}

    def upload(self, artifact_path: str, source: Path) -> None:
        """PUT one file through the server's artifact proxy (``mlflow-artifacts:``)."""
        quoted = urllib.parse.quote(artifact_path.strip("/"))
        path = f"{self._prefix}{ARTIFACTS_API}/{quoted}"
        self._send("PUT", path, f"artifacts/{artifact_path}", source, "application/octet-stream")

    def _send(
        self, method: str, path: str, what: str, data: bytes | Path | None, content_type: str
    ) -> tuple[int, bytes]:
        headers = {"User-Agent": f"tekton-mlops/{__version__}", "Content-Type": content_type}
        if self._auth:
            headers["Authorization"] = self._auth
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                status, answer = self._exchange(method, path, data, headers)
            except ConnectionRefusedError as exc:
                self.close()
                if last:
                    raise self._unreachable(method, what, exc) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()  # a reset or a timeout: it may have been processed, never resent
                raise self._unreachable(method, what, exc) from None
            else:
                if status < 300:
                    return status, answer
                if status not in _RETRY_STATUSES or last:
                    raise self._refused(method, what, status, answer)
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _exchange(
        self, method: str, path: str, data: bytes | Path | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        connection = self._connect()
        if isinstance(data, Path):
            headers = {**headers, "Content-Length": str(data.stat().st_size)}
            with data.open("rb") as handle:
                connection.request(method, path, body=handle, headers=headers)
                response = connection.getresponse()
        else:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
        answer = response.read()
        if response.will_close:
            self.close()
        return response.status, answer

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = (
                http.client.HTTPSConnection
                if self._parsed.scheme == "https"
                else http.client.HTTPConnection
            )
            self._connection = kind(
                self._parsed.hostname or "", self._parsed.port, timeout=self._timeout
            )
            self._connection.blocksize = _BLOCK
        return self._connection

    def _unreachable(self, method: str, what: str, exc: BaseException) -> TrackingError:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return TrackingError(
            f"MLflow tracking server {self.uri}: {method} {what} got no answer ({reason})"
        )

    def _refused(self, method: str, what: str, status: int, answer: bytes) -> ApiError:
        code, detail = "", ""
        try:
            document = json.loads(answer)
            code = str(document.get("error_code", ""))
            detail = str(document.get("message", ""))
        except (ValueError, AttributeError):
            detail = answer.decode(errors="replace")
        detail = " ".join(detail.split())[:300]  # one line, and a page of HTML stays short
        text = f"MLflow tracking server {self.uri}: {method} {what} answered HTTP {status}"
        if code or detail:
            text += f": {': '.join(p for p in (code, detail) if p)}"
        return ApiError(text, status, code)
