"""Shadow traffic: live requests copied to a candidate, its answers recorded, never returned.

As with Istio's mirroring, the copy is fire-and-forget: the client's answer is the
live version's, sent before the copy leaves; copies wait in a bounded queue for a
few worker threads, and when the queue is full a copy is dropped and counted rather
than slowing anyone down. The copy's Host gets a ``-shadow`` suffix (before the
port), as Envoy marks mirrored requests.

Each copy answered (or failed) is one JSON line in the records file::

    {"time": 1767225600.123, "id": "...", "live": "v1", "mirror": "v2",
     "live_status": 200, "mirror_status": 200, "live_ms": 1.21, "mirror_ms": 1.35,
     "agree": true, "dropped": 0}

``agree`` is true when both answered 200 with the same outputs (names, shapes,
datatypes, and data equal, floats within 1e-6), false when they differ or the mirror
failed, null when the live answer was not a 200 (nothing to compare against).
``mirror_status`` is null when the mirror could not be reached (``mirror_error``
says why). ``dropped`` counts copies dropped since the previous line.

Example::

    summarize(Path("table.mirror.jsonl"))["agreement_rate"]    # 0.998
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tekton_mlops.serving.wire import Pool, UpstreamError

TOLERANCE = 1e-6
log = logging.getLogger("tekton_mlops.route")
_ids = itertools.count(1)


@dataclass(frozen=True)
class Copy:
    """One live request and its answer, waiting to be sent to the mirror."""

    request_id: str
    live: str
    mirror: str
    pool: Pool
    request: bytes  # the whole request for the mirror, Host already marked
    method: str
    live_status: int
    live_ms: float
    live_body: bytes


def shadow_host(host: bytes) -> bytes:
    """``name:port`` as ``name-shadow:port``, how Envoy marks a mirrored request."""
    name, colon, port = host.rpartition(b":")
    if colon and port.isdigit():
        return name + b"-shadow:" + port
    return host + b"-shadow"


def request_id(given: bytes | None) -> str:
    """The client's x-request-id, else one unique in this router's life."""
    if given:
        return given.decode("latin-1")[:200]
    return f"{os.getpid():x}-{next(_ids)}"


class Mirrorer:
    """Worker threads that send queued copies and append a record for each."""

    def __init__(self, records: Path, workers: int = 2, capacity: int = 1000) -> None:
        self.records = records
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._unrecorded_drops = 0
        self._queue: queue.Queue[Copy | None] = queue.Queue(capacity)
        self._lock = threading.Lock()
        self._file: Any = None
        self._threads = [
            threading.Thread(target=self._work, name=f"mirror-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def offer(self, copy: Copy) -> None:
        """Queue a copy; when the queue is full it is dropped and counted (never waited for)."""
        try:
            self._queue.put_nowait(copy)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                self._unrecorded_drops += 1

    def close(self, seconds: float) -> None:
        """Let the queued copies go for at most ``seconds``, then stop the workers."""
        deadline = time.monotonic() + seconds
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _work(self) -> None:
        while (copy := self._queue.get()) is not None:
            try:
                self._send(copy)
            except Exception as exc:  # noqa: BLE001 - a worker must outlive one bad copy
                log.warning("mirror to %s: internal error: %s: %s", copy.mirror,
                            type(exc).__name__, exc)  # fmt: skip

    def _send(self, copy: Copy) -> None:
        status: int | None = None
        error = ""
        mirror_ms: float | None = None
        agree: bool | None = None
        try:
            reply = copy.pool.exchange(copy.request, copy.method)
            status, mirror_ms = reply.status, round(reply.seconds * 1000, 3)
            if copy.live_status == 200:
                agree = status == 200 and same_outputs(copy.live_body, reply.body)
        except UpstreamError as exc:
            error = f"{exc} ({copy.pool.url})"
            agree = False if copy.live_status == 200 else None
        record: dict[str, Any] = {
            "time": round(time.time(), 3),
            "id": copy.request_id,
            "live": copy.live,
            "mirror": copy.mirror,
            "live_status": copy.live_status,
            "mirror_status": status,
            "live_ms": round(copy.live_ms, 3),
            "mirror_ms": mirror_ms,
            "agree": agree,
        }
        if error:
            record["mirror_error"] = error
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self.sent += 1
            self.failed += status != 200
            record_drops, self._unrecorded_drops = self._unrecorded_drops, 0
            if self._file is None:
                self._file = self.records.open("a", encoding="utf-8")
            # The count goes on the line written now, so the file alone tells how many were lost.
            self._file.write(line[:-1] + f',"dropped":{record_drops}}}\n')
            self._file.flush()


def _outputs(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    outputs = document.get("outputs") if isinstance(document, dict) else None
    if not isinstance(outputs, list):
        return None
    found = {}
    for output in outputs:
        if not isinstance(output, dict) or "name" not in output:
            return None
        found[output["name"]] = output
    return found


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            return False
        return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    return bool(a == b)


def same_outputs(live: bytes, mirror: bytes) -> bool:
    """Whether two V2 inference answers hold the same outputs (floats within 1e-6)."""
    first, second = _outputs(live), _outputs(mirror)
    if first is None or second is None or first.keys() != second.keys():
        return False
    return all(
        first[name].get("datatype") == second[name].get("datatype")
        and first[name].get("shape") == second[name].get("shape")
        and _same(first[name].get("data"), second[name].get("data"))
        for name in first
    )


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest rank, as check-slo's summary: a value some request took, never interpolated."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return round(ordered[rank - 1], 3)


def summarize(
    records: Path, keep: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """What the mirror records say: agreement, the mirror's error rate, both sides' latency.

    ``requests`` counts copies sent; ``agreement_rate`` is over the copies whose live
    answer was a 200 (None when there were none); ``mirror_error_rate`` over all copies
    sent; latencies are of answers with status 200, in ms; ``latency_ratio_p50`` is the
    mirror's p50 over the live one's (None without both). ``keep`` selects records
    (e.g. one mirror version).
    """
    lines = records.read_text(encoding="utf-8").splitlines() if records.is_file() else []
    return summarize_lines(lines, keep)


def summarize_lines(
    lines: Iterable[str], keep: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """:func:`summarize` of records already read, one JSON object per line."""
    return summarize_rows([json.loads(line) for line in lines if line.strip()], keep)


def summarize_rows(
    rows: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """:func:`summarize` of records as objects, e.g. made from payload logs
    (serving/mirror_pairs.py) rather than written by the router."""
    dropped = sum(int(r.get("dropped", 0)) for r in rows)
    if keep is not None:
        rows = [r for r in rows if keep(r)]
    compared = [r for r in rows if r.get("agree") is not None]
    errors = [r for r in rows if r.get("mirror_status") != 200]
    live_ms = [r["live_ms"] for r in rows if r.get("live_status") == 200]
    mirror_ms = [r["mirror_ms"] for r in rows if r.get("mirror_status") == 200]
    live_p50, mirror_p50 = _percentile(live_ms, 0.5), _percentile(mirror_ms, 0.5)
    return {
        "requests": len(rows),
        "live_versions": sorted({r["live"] for r in rows}),
        "mirror_versions": sorted({r["mirror"] for r in rows}),
        "compared": len(compared),
        "agreement_rate": (
            round(sum(1 for r in compared if r["agree"]) / len(compared), 6) if compared else None
        ),
        "mirror_error_rate": round(len(errors) / len(rows), 6) if rows else None,
        "dropped": dropped,
        "live_latency_ms": {"p50": live_p50, "p95": _percentile(live_ms, 0.95)},
        "mirror_latency_ms": {"p50": mirror_p50, "p95": _percentile(mirror_ms, 0.95)},
        # Whether the candidate would slow users down; None when a side has no latency.
        "latency_ratio_p50": (
            round(mirror_p50 / live_p50, 6) if live_p50 and mirror_p50 is not None else None
        ),
    }
