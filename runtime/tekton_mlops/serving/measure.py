"""Peak memory and time of one large request against a running V2 server (Linux).

The server's resident-memory peak comes from ``/proc/<pid>/status`` (``VmHWM``);
it is reset first through ``/proc/<pid>/clear_refs`` where the caller may, so
the peak is this request's alone (else it is the process's lifetime peak).

Example::

    body = repeated_rows_request("X", [[5.1, 3.5, 1.4, 0.2]], 50 << 20)
    figures = measure_large_request("http://127.0.0.1:8080", "iris", body, server_pid)
    figures.peak_rss_bytes, figures.seconds
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from tekton_mlops.serving.load import infer_path


@dataclass(frozen=True)
class LargeRequest:
    body_bytes: int
    status: int
    seconds: float  # from the first byte sent to the last byte of the reply
    reply_bytes: int
    rss_before_bytes: int
    peak_rss_bytes: int  # VmHWM after the request
    peak_is_this_request: bool  # False: VmHWM could not be reset, it is the lifetime peak

    @property
    def growth_bytes(self) -> int:
        return self.peak_rss_bytes - self.rss_before_bytes


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) * 1024
    return figures


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset the peak RSS to the current
        return True
    except OSError:
        return False


def repeated_rows_request(
    input_name: str,
    rows: list[list[float]],
    target_bytes: int,
    datatype: str = "FP32",
    nested: bool = True,
) -> bytes:
    """A valid V2 request of about ``target_bytes``: ``rows`` repeated, nested as
    ``[[...], ...]`` (as ``features.tolist()`` sends them) or flat."""
    one = ",".join(json.dumps(row) if nested else json.dumps(row)[1:-1] for row in rows)
    repeats = max(1, target_bytes // (len(one) + 1))
    head = json.dumps(
        {"id": "large", "inputs": [{"name": input_name, "datatype": datatype,
                                     "shape": [len(rows) * repeats, len(rows[0])]}]}
    )[:-3]  # fmt: skip
    return f'{head}, "data": [{",".join([one] * repeats)}]}}]}}'.encode()


def measure_large_request(
    url: str, model: str, body: bytes, pid: int, timeout: float = 600.0
) -> LargeRequest:
    """POST ``body`` to the model's /infer on ``url`` (served by process ``pid``)."""
    parts = urllib.parse.urlsplit(url)
    before = _status(pid)
    fresh = _reset_peak(pid)
    connection = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        start = time.perf_counter()
        connection.request(
            "POST", parts.path.rstrip("/") + infer_path(model), body=body,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        response = connection.getresponse()
        reply = response.read()
        seconds = time.perf_counter() - start
    finally:
        connection.close()
    after = _status(pid)
    return LargeRequest(
        body_bytes=len(body),
        status=response.status,
        seconds=seconds,
        reply_bytes=len(reply),
        rss_before_bytes=before["VmRSS"],
        peak_rss_bytes=after["VmHWM"],
        peak_is_this_request=fresh,
    )
