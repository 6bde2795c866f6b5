"""Go durations (Tekton's timeout format) and Kubernetes timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d*)?)(ms|us|µs|ns|h|m|s)")


def parse_duration(text: str) -> float:
    """``1h30m`` -> 5400.0; ``0`` -> 0.0 (no timeout); ``-1s`` -> -1.0 (Go allows a sign)."""
    text = str(text).strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body in ("0", ""):
        return 0.0
    parts = _PART.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        raise ValueError(f"invalid duration {text!r}")
    return sign * sum(float(number) * _UNITS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """Go's Duration.String(): ``3600`` -> ``1h0m0s``, ``90`` -> ``1m30s``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    fraction = seconds - whole
    sec_text = f"{secs + fraction:g}s" if fraction else f"{secs}s"
    if hours:
        return f"{hours}h{minutes}m{sec_text}"
    if minutes:
        return f"{minutes}m{sec_text}"
    return sec_text


def timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> float | None:
    """The inverse of :func:`timestamp`, for times read from files a run wrote: epoch
    seconds, or None for anything that is not an RFC 3339 time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
