"""KServe logger CloudEvents received over HTTP, as payload-log records.

KServe's agent (``spec.predictor.logger``) posts one CloudEvent per request and one per 200
response, in the HTTP binary mode: the attributes are ``Ce-*`` headers (``Ce-Specversion``,
``Ce-Id``, ``Ce-Type``, ``Ce-Source``, ``Ce-Time``, and the extensions
``Ce-Inferenceservicename``, ``Ce-Namespace``, ``Ce-Component``, ``Ce-Endpoint``,
``Ce-Metadata``), ``Content-Type`` is the payload's, and the body is the payload. The
structured mode (``Content-Type: application/cloudevents+json``, the attributes and
``data`` or ``data_base64`` in one JSON object) is read too.

A record is one line of the payload log ``serve --log-payloads`` writes
(serving/payload_log.py), with the attributes KServe adds that serve does not::

    {"specversion":"1.0","id":"...","type":"org.kubeflow.serving.inference.request",
     "source":"http://localhost:9081/","time":"2026-01-01T12:00:00.123456789Z",
     "datacontenttype":"application/json","inferenceservicename":"iris-green",
     "namespace":"models","component":"predictor","endpoint":"default",
     "metadata":{"X-Request-Id":["4f1c…"]},"data":{<the V2 JSON body>}}

``metadata`` is the JSON object of the request headers the InferenceService selects
(``metadataHeaders``); KServe maps each header to the list of its values. A JSON payload is
kept as ``data``, anything else (or a body that is not JSON) as ``data_base64``. No other
header is ever kept. An event without a time gets its arrival time.

Example::

    line = from_binary(handler.headers, body, time.time())    # EventError names the problem
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
STRUCTURED = "application/cloudevents+json"
#: What every event must carry: CloudEvents' own required attributes, and the
#: InferenceService, without which a log of many services cannot be read.
REQUIRED = ("specversion", "id", "type", "source", "inferenceservicename")
#: The optional attributes kept.
OPTIONAL = ("time", "datacontenttype", "namespace", "component", "endpoint", "metadata")
#: The order a record's attributes are written in, serve's first.
ORDER = (
    "specversion", "id", "type", "source", "time", "datacontenttype", "inferenceservicename",
    "namespace", "component", "endpoint", "metadata",
)  # fmt: skip


class EventError(ValueError):
    """What makes a posted event unusable, naming the attribute."""


class Headers(Protocol):
    """Request headers, looked up without regard to case (http.server's Message)."""

    def get(self, name: str, /) -> str | None: ...


def _header(headers: Headers, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        # The HTTP binding percent-encodes what a header cannot hold (and '"', '%', ' ').
        return unquote(value.strip(), errors="strict")
    except UnicodeDecodeError:
        raise EventError(f"{name.removeprefix('ce-')}: not percent-encoded UTF-8") from None


def from_binary(headers: Headers, body: bytes, arrived: float) -> bytes:
    """The record line of a binary-mode event: ``Ce-*`` headers and the payload."""
    attributes: dict[str, Any] = {}
    for name in (*REQUIRED, *OPTIONAL):
        if name == "datacontenttype":
            value = headers.get("Content-Type")
        else:
            value = _header(headers, f"ce-{name}")
        if value is not None:
            attributes[name] = value
    return _line(attributes, _payload(attributes.get("datacontenttype", ""), body), arrived)


def from_structured(body: bytes, arrived: float) -> bytes:
    """The record line of a structured-mode event: one JSON object."""
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EventError(f"the body is not a JSON object ({STRUCTURED})") from None
    if not isinstance(event, dict):
        raise EventError(f"the body is not a JSON object ({STRUCTURED})")
    attributes = {k: event[k] for k in (*REQUIRED, *OPTIONAL) if k in event}
    for name, value in attributes.items():
        if name != "metadata" and not isinstance(value, str):
            raise EventError(f"{name}: must be a string")
    if "data_base64" in event:
        encoded = event["data_base64"]
        try:
            base64.b64decode(encoded, validate=True)
        except (TypeError, ValueError):
            raise EventError("data_base64: not base64") from None
        payload: dict[str, Any] = {"data_base64": encoded}
    else:
        payload = {"data": event.get("data")}
    return _line(attributes, payload, arrived)


def _payload(content_type: str, body: bytes) -> dict[str, Any]:
    """``data`` for a JSON payload, ``data_base64`` for any other bytes."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            return {"data": json.loads(body)}
        except (UnicodeDecodeError, ValueError, RecursionError):
            pass  # kept as the bytes it is (too deep to rewrite, too), for whoever reads the log
    return {"data_base64": base64.b64encode(body).decode()}


def _line(attributes: dict[str, Any], payload: Mapping[str, Any], arrived: float) -> bytes:
    missing = [name for name in REQUIRED if not attributes.get(name)]
    if missing:
        raise EventError(f"missing attribute(s): {', '.join(missing)}")
    if attributes["specversion"] != "1.0":
        raise EventError(f"specversion: {attributes['specversion']!r} is not 1.0")
    if attributes["type"] not in (REQUEST, RESPONSE):
        raise EventError(f"type: {attributes['type']!r} is neither {REQUEST} nor {RESPONSE}")
    if "time" in attributes:
        _check_time(attributes["time"])
    else:
        moment = datetime.fromtimestamp(arrived, UTC).isoformat(timespec="microseconds")
        attributes["time"] = moment.replace("+00:00", "Z")
    if "metadata" in attributes:
        attributes["metadata"] = _metadata(attributes["metadata"])
    record = {name: attributes[name] for name in ORDER if name in attributes}
    record.update(payload)
    try:
        # One line whatever the payload holds: json escapes line breaks inside strings.
        return (json.dumps(record, separators=(",", ":")) + "\n").encode()
    except (ValueError, RecursionError):  # parsed JSON: only a depth past Python's limit
        raise EventError("data: nested too deep to be written as JSON") from None


def _check_time(value: str) -> None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise EventError(f"time: {value!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise EventError(f"time: {value!r} has no time zone (RFC 3339 needs one)")


def _metadata(value: Any) -> dict[str, Any]:
    """The selected headers as an object (KServe sends its JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise EventError("metadata: not JSON (KServe sends the headers as JSON)") from None
    if not isinstance(value, dict):
        raise EventError("metadata: not a JSON object of header names")
    return value
