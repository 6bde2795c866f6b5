"""Bounded load against a V2 inference endpoint, and what it measured.

Each worker thread keeps one HTTP/1.1 connection alive and sends the same
request until the request budget or the duration runs out; latency is timed
around each request and reply as a client sees it. A request counts as an error
when it fails to connect, times out, or is answered with anything but 200.

Example::

    measured = drive("http://127.0.0.1:8080", "iris", body, requests=500, concurrency=4)
    measured.summary()["latency_p99_ms"]
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from tekton_mlops.errors import SourceError

#: What an SLO can name; for the first four lower is better, for throughput higher.
SLO_METRICS = (
    "latency_mean_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "error_rate",
    "throughput_rps",
)
HIGHER_IS_BETTER = {"throughput_rps"}


@dataclass
class Measured:
    latencies_ms: list[float] = field(default_factory=list)  # of successful requests
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + self.errors

    def summary(self) -> dict[str, float | None]:
        """The SLO metrics; latencies are None when no request succeeded."""
        ordered = sorted(self.latencies_ms)

        def percentile(q: float) -> float | None:
            if not ordered:
                return None
            # Nearest rank: the value below which q of the requests fall, never interpolated.
            rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
            return round(ordered[rank - 1], 3)

        return {
            "requests": self.requests,
            "latency_mean_ms": round(sum(ordered) / len(ordered), 3) if ordered else None,
            "latency_p50_ms": percentile(0.50),
            "latency_p95_ms": percentile(0.95),
            "latency_p99_ms": percentile(0.99),
            "error_rate": round(self.errors / self.requests, 6) if self.requests else 1.0,
            "throughput_rps": round(len(ordered) / self.seconds, 2) if self.seconds else 0.0,
        }


def infer_path(model: str) -> str:
    return f"/v2/models/{urllib.parse.quote(model, safe='')}/infer"


def _split(url: str) -> tuple[type[http.client.HTTPConnection], str, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourceError(f"{url}: not an http(s):// endpoint")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return kind, parts.netloc, parts.path.rstrip("/")


def fetch_json(url: str, path: str, timeout: float = 10) -> Any:
    """GET a JSON document (model metadata) from the endpoint."""
    kind, netloc, base = _split(url)
    connection = kind(netloc, timeout=timeout)
    try:
        connection.request("GET", base + path)
        response = connection.getresponse()
        body = response.read()
    except OSError as exc:
        raise SourceError(f"{url}: cannot reach the endpoint ({exc})") from None
    finally:
        connection.close()
    if response.status != 200:
        raise SourceError(
            f"{url}{path}: HTTP {response.status} {body[:200].decode(errors='replace')}"
        )
    return json.loads(body)


def sample_request(metadata: dict[str, Any]) -> dict[str, Any]:
    """A valid one-row request built from model metadata: zeros, free dimensions as 1."""
    inputs = []
    for spec in metadata.get("inputs", []):
        shape = [d if d > 0 else 1 for d in spec["shape"]]
        count = 1
        for d in shape:
            count *= d
        value: Any = {"BOOL": False, "BYTES": ""}.get(spec["datatype"], 0)
        inputs.append({**spec, "shape": shape, "data": [value] * count})
    return {"inputs": inputs}


def drive(
    url: str,
    model: str,
    body: bytes,
    requests: int,
    concurrency: int,
    duration: float = 0.0,
    timeout: float = 10.0,
) -> Measured:
    """Send ``requests`` requests (or until ``duration`` seconds) from ``concurrency`` threads."""
    kind, netloc, base = _split(url)
    path = base + infer_path(model)
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    measured = Measured()
    lock = threading.Lock()
    budget = iter(range(requests))
    deadline = time.monotonic() + duration if duration else float("inf")

    def worker() -> None:
        connection = kind(netloc, timeout=timeout)
        latencies: list[float] = []
        errors: list[str] = []
        while time.monotonic() < deadline:
            with lock:
                if next(budget, None) is None:
                    break
            start = time.perf_counter()
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                reply = response.read()
                ok = response.status == 200
                problem = f"HTTP {response.status} {reply[:120].decode(errors='replace')}"
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                connection = kind(netloc, timeout=timeout)
                ok, problem = False, f"{type(exc).__name__}: {exc}"
            took = (time.perf_counter() - start) * 1000
            if ok:
                latencies.append(took)
            else:
                errors.append(problem)
        connection.close()
        with lock:
            measured.latencies_ms.extend(latencies)
            measured.errors += len(errors)
            measured.error_samples.extend(errors[: max(0, 5 - len(measured.error_samples))])

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    measured.seconds = time.perf_counter() - started
    return measured
