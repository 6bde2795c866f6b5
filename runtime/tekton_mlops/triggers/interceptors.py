"""Tekton Triggers' core interceptors: github, gitlab and cel, with Triggers' semantics.

Each takes the event and the interceptor's params and answers continue or stop
with a reason, as the Triggers interceptor services do; the cel interceptor may
also add ``extensions`` (its overlays) for the bindings to read.

Secrets come from a folder laid out like mounted Secrets: ``<dir>/<name>/<key>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.triggers.event import Event

ZERO_COMMIT = "0" * 40


@dataclass(frozen=True)
class Verdict:
    proceed: bool
    reason: str = ""


def _param(params: list[dict[str, Any]], name: str, default: Any = None) -> Any:
    return next((p.get("value") for p in params if p.get("name") == name), default)


def _secret(secrets: Path, ref: Any) -> bytes:
    if not isinstance(ref, Mapping) or not ref.get("secretName") or not ref.get("secretKey"):
        raise ValueError("secretRef needs secretName and secretKey")
    path = secrets / str(ref["secretName"]) / str(ref["secretKey"])
    try:
        return path.read_bytes().strip()
    except OSError:
        raise ValueError(f"secret {ref['secretName']}/{ref['secretKey']} not found") from None


def _event_type(event: Event, params: list[dict[str, Any]], header: str) -> Verdict:
    types = _param(params, "eventTypes")
    kind = event.header(header)
    if types is not None and kind not in types:
        return Verdict(False, f"event type {kind} is not allowed")
    return Verdict(True)


def github(event: Event, params: list[dict[str, Any]], secrets: Path) -> Verdict:
    """X-Hub-Signature-256 must be the HMAC-SHA256 of the body; the event type must match."""
    ref = _param(params, "secretRef")
    if ref is not None:
        signature = event.header("X-Hub-Signature-256")
        if not signature:
            return Verdict(False, "no X-Hub-Signature-256 header set")
        expected = (
            "sha256=" + hmac.new(_secret(secrets, ref), event.raw, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return Verdict(False, "payload signature check failed")
    return _event_type(event, params, "X-GitHub-Event")


def gitlab(event: Event, params: list[dict[str, Any]], secrets: Path) -> Verdict:
    """X-Gitlab-Token must equal the secret; the event type (X-Gitlab-Event) must match."""
    ref = _param(params, "secretRef")
    if ref is not None:
        token = event.header("X-Gitlab-Token")
        if not token:
            return Verdict(False, "no X-Gitlab-Token header set")
        if not hmac.compare_digest(token.encode(), _secret(secrets, ref)):
            return Verdict(False, "Invalid X-Gitlab-Token")
    return _event_type(event, params, "X-Gitlab-Event")


def cel(event: Event, params: list[dict[str, Any]], secrets: Path) -> Verdict:
    """``filter``: a CEL expression that must be true; ``overlays``: extensions to add."""
    from tekton_mlops.triggers.celenv import evaluate

    activation = {
        "body": event.body,
        "header": event.headers,
        "extensions": event.extensions,
        "requestURL": "",
    }
    expression = _param(params, "filter")
    if expression:
        try:
            result = evaluate(str(expression), activation)
        except ValueError as exc:
            return Verdict(False, f"error evaluating cel expression: {exc}")
        if result is not True:
            return Verdict(False, f"expression {expression} did not return true")
    for overlay in _param(params, "overlays", []) or []:
        try:
            event.extensions[overlay["key"]] = evaluate(str(overlay["expression"]), activation)
        except ValueError as exc:
            return Verdict(False, f"failed to evaluate overlay {overlay.get('key')}: {exc}")
    return Verdict(True)


INTERCEPTORS = {"github": github, "gitlab": gitlab, "cel": cel}


def run_interceptors(event: Event, interceptors: list[dict[str, Any]], secrets: Path) -> Verdict:
    """Run a trigger's interceptors in order; the first that stops the event decides."""
    for interceptor in interceptors:
        name = (interceptor.get("ref") or {}).get("name", "")
        check = INTERCEPTORS.get(name)
        if check is None:
            return Verdict(False, f"interceptor {name!r} is not supported locally")
        try:
            verdict = check(event, interceptor.get("params") or [], secrets)
        except ValueError as exc:
            return Verdict(False, f"{name} interceptor: {exc}")
        if not verdict.proceed:
            return Verdict(False, f"{name}: {verdict.reason}")
    return Verdict(True)


def json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ValueError("the body is not JSON") from None
