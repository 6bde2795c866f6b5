"""Signed events for an EventListener: what a CronJob sends when Triggers has no schedule.

Tekton Triggers starts PipelineRuns from HTTP events only. A schedule is a Kubernetes
CronJob that posts an event; for the EventListener to trust it, the event is signed
the way GitHub signs webhooks (``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>``)
so that Triggers' core ``github`` interceptor, with the shared Secret, verifies it on a
cluster and ``tekton-mlops listen`` verifies it locally. The key is the secret's bytes as
they are, as the interceptor reads the Secret. ``X-GitHub-Event`` carries the event type
(``schedule``) for the interceptor's ``eventTypes``, ``X-GitHub-Delivery`` a new id per event.

An EventListener answers 202 to every event it reads, whether a trigger accepted it or not
(Triggers processes triggers after answering): a refused event shows in the listener's log
and in the PipelineRun that does not appear, never in the answer. Only a listener that cannot
be reached, or answers an error (a body over its limit), fails the post.

Example::

    event = schedule_event("retrain-on-schedule", {"model-name": "iris"}, now)
    post(url, event, secret=b"...")   # -> (202, {"eventID": ...})
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from tekton_mlops.errors import MlopsError

#: The ``kind`` of a scheduled event's body, for the listener's CEL filter.
SCHEDULE_KIND = "tekton-mlops.dev/schedule"


class PostError(MlopsError):
    """The listener could not be reached or answered an error."""


@dataclass(frozen=True)
class SignedEvent:
    """An event's body and type; signed when its headers are made."""

    body: bytes
    event_type: str
    delivery: str = field(default_factory=lambda: str(uuid.uuid4()))

    def headers(self, secret: bytes) -> dict[str, str]:
        """The headers GitHub sends with a webhook, the signature made with ``secret``."""
        signature = hmac.new(secret, self.body, hashlib.sha256).hexdigest()
        return {
            "Content-Type": "application/json",
            "X-GitHub-Event": self.event_type,
            "X-GitHub-Delivery": self.delivery,
            "X-Hub-Signature-256": f"sha256={signature}",
        }


def schedule_event(schedule: str, params: dict[str, str], moment: datetime) -> SignedEvent:
    """The body a schedule posts: what fired, when, and the params for the binding."""
    body = {
        "kind": SCHEDULE_KIND,
        "schedule": schedule,
        "time": moment.astimezone(UTC).isoformat(timespec="seconds"),
        "params": params,
    }
    return SignedEvent(json.dumps(body, sort_keys=True).encode(), "schedule")


def post(url: str, event: SignedEvent, secret: bytes, timeout: float = 30.0) -> tuple[int, Any]:
    """POST the signed event; the listener's status and JSON answer. 4xx/5xx raise."""
    import http.client

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostError(f"{url}: not an http(s) URL")
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(parts.hostname, parts.port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    try:
        connection.request("POST", path, body=event.body, headers=event.headers(secret))
        response = connection.getresponse()
        raw = response.read()
    except OSError as exc:
        raise PostError(f"{url}: cannot post the event ({exc})") from None
    finally:
        connection.close()
    try:
        answer: Any = json.loads(raw) if raw.strip() else {}
    except ValueError:
        answer = raw.decode(errors="replace")[:200]
    if response.status >= 400:
        raise PostError(f"{url}: the listener answered {response.status}: {answer}")
    return response.status, answer
