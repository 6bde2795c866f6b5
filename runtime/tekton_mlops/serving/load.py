"""Bounded load against a V2 inference endpoint, and what it measured.

Each worker thread keeps one HTTP/1.1 connection alive and sends the same
request until the request budget or the duration runs out; latency is timed
around each request and reply as a client sees it. A request counts as an error
when it fails to connect, times out, or is answered with anything but 200.

Every successful request's latency is kept (not only the percentiles), so the
samples of two endpoints can be compared with a test (:mod:`.abtest`). Memory is
bounded by the request budget: 8 bytes a request in a C double array, 8 MB for
the largest budget (1,000,000 requests) per endpoint, and a few times that, for one
endpoint at a time, while percentiles and tests are computed. Errors are kept as a count and
five examples: for comparing error rates, how many of how many requests failed is
all a test needs.

:func:`drive_rounds` drives several endpoints under the same load in rounds, the
order rotating from round to round, so a machine that slowly gets faster or
slower over the run does not favour the endpoint that happened to go first.

Example::

    measured = drive("http://127.0.0.1:8080", "iris", body, requests=500, concurrency=4)
    measured.summary()["latency_p99_ms"]
    a, b = drive_rounds(["http://a:8080", "http://b:8080"], "iris", body, 500, 4)
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from array import array
from collections.abc import MutableSequence, Sequence
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


#: At most this many rounds in :func:`drive_rounds`, and at least this many requests per
#: worker in each round, so that ramping up and down stays a small part of every round.
MAX_ROUNDS = 10
REQUESTS_PER_WORKER_AND_ROUND = 5


def _doubles() -> array[float]:
    return array("d")


@dataclass
class Measured:
    # Of successful requests, in the order they finished; 8 bytes each in drive's array.
    latencies_ms: MutableSequence[float] = field(default_factory=_doubles)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0  # time spent driving this endpoint (summed over rounds)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + self.errors

    def add(self, other: Measured) -> None:
        """Take in another stretch of load against the same endpoint (a later round)."""
        self.latencies_ms.extend(other.latencies_ms)
        self.errors += other.errors
        self.error_samples.extend(other.error_samples[: max(0, 5 - len(self.error_samples))])
        self.seconds += other.seconds

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


def split_endpoint(url: str) -> tuple[type[http.client.HTTPConnection], str, str]:
    """The connection class, host:port and base path of an http(s) endpoint URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourceError(f"{url}: not an http(s):// endpoint")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return kind, parts.netloc, parts.path.rstrip("/")


def fetch_json(url: str, path: str, timeout: float = 10) -> Any:
    """GET a JSON document (model metadata) from the endpoint."""
    kind, netloc, base = split_endpoint(url)
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
    kind, netloc, base = split_endpoint(url)
    path = base + infer_path(model)
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    measured = Measured()
    lock = threading.Lock()
    budget = iter(range(requests))
    deadline = time.monotonic() + duration if duration else float("inf")

    def worker() -> None:
        connection = kind(netloc, timeout=timeout)
        latencies = _doubles()
        errors = 0
        samples: list[str] = []  # a few examples: one string per error would grow unbounded
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
                errors += 1
                if len(samples) < 5:
                    samples.append(problem)
        connection.close()
        with lock:
            measured.latencies_ms.extend(latencies)
            measured.errors += errors
            measured.error_samples.extend(samples[: max(0, 5 - len(measured.error_samples))])

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    measured.seconds = time.perf_counter() - started
    return measured


def rounds_for(requests: int, concurrency: int) -> int:
    """How many rounds :func:`drive_rounds` splits a budget into (1 to :data:`MAX_ROUNDS`)."""
    return max(1, min(MAX_ROUNDS, requests // (REQUESTS_PER_WORKER_AND_ROUND * concurrency)))


def drive_rounds(
    urls: Sequence[str],
    model: str,
    body: bytes,
    requests: int,
    concurrency: int,
    duration: float = 0.0,
    timeout: float = 10.0,
) -> list[Measured]:
    """Drive every endpoint with the same load, one endpoint at a time, in rounds.

    Each endpoint gets ``requests`` requests (and ``duration`` seconds) in all, split evenly
    over :func:`rounds_for` rounds; round ``r`` starts with endpoint ``r mod n``, so each
    endpoint goes first, second, ... about equally often and a drift of the machine's
    speed over the run is spread over all of them. One endpoint at a time rather than all
    at once: endpoints that share a node or this client's CPU do not slow each other down.
    Each round opens its connections anew, so the first request of every worker and round
    carries a TCP handshake: the same number of them for every endpoint.
    """
    rounds = rounds_for(requests, concurrency)
    totals = [Measured() for _ in urls]
    for r in range(rounds):
        share = requests // rounds + (1 if r < requests % rounds else 0)
        for k in range(len(urls)):
            i = (r + k) % len(urls)
            totals[i].add(
                drive(urls[i], model, body, share, concurrency, duration / rounds, timeout)
            )
    return totals
