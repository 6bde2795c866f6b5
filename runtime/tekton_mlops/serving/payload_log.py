"""Payload logging for ``serve``: each request and response as a CloudEvent-shaped record.

KServe's logger (``spec.predictor.logger``) sends one CloudEvent per request and one per
200 response, both with the request's id. ``serve --log-payloads`` writes the same
events as JSON lines, one object per line, to rotated files in a directory (or an
S3 prefix), for drift detection and for comparing mirrored traffic::

    {"specversion": "1.0", "id": "<x-request-id, Ce-Id or a new uuid4>",
     "type": "org.kubeflow.serving.inference.request",     (or ...inference.response)
     "source": "http://HOST:PORT/", "time": "2026-01-01T12:00:00.123456Z",
     "datacontenttype": "application/json", "inferenceservicename": "iris",
     "endpoint": "/v2/models/iris/infer", "data": {<the V2 JSON body>}}

Requests are recorded once their body parsed as a JSON object (whether or not the
model could run on it); responses only when the answer is 200. No header is ever
recorded but the id. Sampling goes by a hash of the id, so a request and its
response are kept or dropped together and a replay samples the same requests.

Serving never waits for the log: a request thread only hands the text it already has
to a queue bounded in bytes; a background thread formats and writes. When the queue
is full or a record is over ``max_bytes``, the record is dropped and counted; when
the directory cannot be written (full, read-only, gone), records are dropped and
counted, the failure is logged once, and writing resumes when it can.

Example::

    payloads = PayloadLog(LogSettings("/var/log/payloads"), "http://0.0.0.0:8080/", "iris",
                          logging.getLogger("serve")).start()
    request_id = payloads.request(headers, "/v2/models/iris/infer", body_text)
    parts = payloads.response(request_id, "/v2/models/iris/infer", reply.parts())
    ...
    payloads.close(timeout=5.0)
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from tekton_mlops.serving.payload_files import RotatingFiles, S3Shipper, WriteError

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
MODES = ("all", "request", "response")
#: The longest id taken from a header; a longer one gets a new id instead.
MAX_ID_CHARS = 256
#: How long writing waits after a failure before it tries again.
RETRY_SECONDS = 1.0
#: How often the writer takes what is queued: records reach the file this late at most.
WRITE_EVERY = 0.2
#: Queued bytes that wake the writer before its time.
_WAKE_BYTES = 1 << 20


@dataclass(frozen=True)
class LogSettings:
    """What ``serve``'s ``--log-*`` options set."""

    target: str  # a directory, or s3://bucket/prefix
    mode: str = "all"
    sample_rate: float = 1.0
    max_bytes: int = 1 << 20  # of one record's body
    rotate_bytes: int = 16 << 20
    rotate_seconds: float = 300.0
    #: Bodies held for the writer at most (at least two of max_bytes): room for a burst
    #: while the writer waits, bounded memory.
    queue_bytes: int = 32 << 20


class Headers(Protocol):
    """Request headers, looked up without regard to case (http.server's Message)."""

    def get(self, name: str, /) -> str | None: ...


def request_id(headers: Headers) -> str:
    """The id a request's records share: its x-request-id or Ce-Id, else a new uuid4."""
    for name in ("x-request-id", "ce-id"):
        value = (headers.get(name) or "").strip()
        if value and len(value) <= MAX_ID_CHARS and value.isprintable():
            return value
    return str(uuid.uuid4())


def sampled(record_id: str, rate: float) -> bool:
    """Whether records with this id are kept at sampling ``rate``: the first 8 bytes of
    the id's sha256 as a fraction of 2**64, below the rate."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(record_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") < rate * 2.0**64


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


# Outside JSON strings a line break is whitespace, inside them it cannot appear raw (the
# server's parser is strict), so replacing it keeps the body's meaning on one line.
# U+2028 and U+2029 end lines for str.splitlines: they are escaped, valid inside strings.
_ONE_LINE = str.maketrans({"\n": " ", "\r": " ", "\u2028": "\\u2028", "\u2029": "\\u2029"})


@dataclass(frozen=True)
class _Record:
    kind: str
    id: str
    time: float
    endpoint: str
    body: str | bytes  # JSON text of an object
    rendered: bool = False  # body is the whole line already (the log sink's events)

    @property
    def size(self) -> int:
        return len(self.body)


class _Queue:
    """Records waiting for the writer, bounded by their total size; never blocks a put."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self.items: collections.deque[_Record] = collections.deque()
        self.changed = threading.Condition()
        self.closed = False

    def put(self, record: _Record) -> bool:
        with self.changed:
            if self.closed or self.held + record.size > self.capacity:
                return False
            self.items.append(record)
            self.held += record.size
            # The writer wakes on its own every WRITE_EVERY seconds; waking it for each
            # record cost a fifth of the throughput (a thread switch and the GIL handed
            # over per request), so it is woken early only when much is waiting.
            if self.held >= _WAKE_BYTES:
                self.changed.notify()
            return True

    def take(self, timeout: float) -> list[_Record]:
        """Everything queued after ``timeout`` seconds, or sooner when much is waiting or
        the queue is closed."""
        with self.changed:
            if not self.closed and self.held < _WAKE_BYTES:
                self.changed.wait(timeout)
            taken = list(self.items)
            self.items.clear()
            self.held = 0
            return taken

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()


class PayloadLog:
    """Records requests and responses of one served model; see the module docstring."""

    def __init__(self, settings: LogSettings, source: str, model: str, log: logging.Logger) -> None:
        if settings.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.settings = settings
        self.log = log
        # The envelope before "id" and between the fields, rendered once.
        self._head = '{"specversion":"1.0","id":'
        self._fields = (
            f',"source":{json.dumps(source)},"datacontenttype":"application/json",'
            f'"inferenceservicename":{json.dumps(model)}'
        )
        self._queue = _Queue(max(settings.queue_bytes, 2 * settings.max_bytes))
        self.written = 0
        self.dropped_full = 0
        self.skipped_large = 0
        self.lost = 0  # to write failures
        self._count_lock = threading.Lock()
        self._shipper: S3Shipper | None = None
        if settings.target.startswith("s3://"):
            staging = Path(tempfile.mkdtemp(prefix="tekton-mlops-payloads-"))
            self._shipper = S3Shipper(settings.target, staging, log)
            directory = staging
        else:
            directory = Path(settings.target)
        self._files = RotatingFiles(
            directory,
            settings.rotate_bytes,
            settings.rotate_seconds,
            self._shipper.closed if self._shipper else None,
        )
        self._thread = threading.Thread(target=self._write_loop, name="payload-log", daemon=True)

    def start(self) -> PayloadLog:
        if self._shipper is not None:
            self._shipper.start()
        self._thread.start()
        return self

    # --- request threads: cheap, never blocking ----------------------------------------

    def request(self, headers: Headers, endpoint: str, body: str) -> str | None:
        """Record a request (a JSON object's text); the id its response is recorded under,
        or None when the response is not to be recorded."""
        rid = request_id(headers)
        if not sampled(rid, self.settings.sample_rate):
            return None
        if self.settings.mode != "response":
            self._put(_Record(REQUEST, rid, time.time(), endpoint, body))
        return rid if self.settings.mode != "request" else None

    def response(self, rid: str | None, endpoint: str, parts: Iterable[bytes]) -> Iterator[bytes]:
        """The reply's parts, passed on as they are sent; recorded once all went out."""
        if rid is None:
            return iter(parts)
        return self._tee(rid, endpoint, parts)

    def _tee(self, rid: str, endpoint: str, parts: Iterable[bytes]) -> Iterator[bytes]:
        kept: list[bytes] | None = []
        size = 0
        for part in parts:
            if kept is not None:
                size += len(part)
                if size > self.settings.max_bytes:
                    kept = None  # over the limit: stop holding the reply
                else:
                    kept.append(part)
            yield part
        if kept is None:
            self._count("skipped_large")
            return
        self._put(_Record(RESPONSE, rid, time.time(), endpoint, b"".join(kept)))

    def offer(self, line: bytes) -> bool:
        """Queue a record already rendered as one JSON line (``tekton-mlops log-sink``'s
        events); False when it is dropped, counted as any other record."""
        return self._put(_Record("", "", 0.0, "", line, rendered=True))

    def _put(self, record: _Record) -> bool:
        if record.size > self.settings.max_bytes:
            self._count("skipped_large")
            return False
        if not self._queue.put(record):
            self._count("dropped_full")
            return False
        return True

    def _count(self, counter: str, by: int = 1) -> None:
        with self._count_lock:
            setattr(self, counter, getattr(self, counter) + by)

    # --- the writer thread -------------------------------------------------------------

    def _line(self, record: _Record) -> bytes:
        if record.rendered:
            return record.body if isinstance(record.body, bytes) else record.body.encode()
        body = record.body.decode() if isinstance(record.body, bytes) else record.body
        return (
            f'{self._head}{json.dumps(record.id)},"type":"{record.kind}"'
            f'{self._fields},"time":"{_rfc3339(record.time)}",'
            f'"endpoint":{json.dumps(record.endpoint)},"data":{body.translate(_ONE_LINE)}}}\n'
        ).encode()

    def _write_loop(self) -> None:
        failing_since = 0.0
        while True:
            records = self._queue.take(timeout=WRITE_EVERY)
            closing = self._queue.closed and not records
            if records and failing_since and time.monotonic() - failing_since < RETRY_SECONDS:
                self._count("lost", len(records))  # still failing: do not hammer the disk
                records = []
            problem = None
            try:
                if records:
                    self._files.write([self._line(r) for r in records])
                    self._count("written", len(records))
                if closing or self._files.due():
                    self._files.rotate()
            except WriteError as exc:
                self._count("written", exc.lines)
                self._count("lost", len(records) - exc.lines)
                problem = exc.cause
            except OSError as exc:  # closing a file: its records are written
                problem = exc
            if problem is not None:
                if not failing_since:
                    self.log.warning(
                        "payload log: cannot write to %s (%s); records are dropped and "
                        "counted until it can",
                        self._files.directory,
                        problem.strerror or problem,
                    )
                failing_since = time.monotonic()
            elif failing_since and records:
                failing_since = 0.0
                self.log.info("payload log: writing to %s again", self._files.directory)
            if closing:
                return

    def close(self, timeout: float) -> None:
        """Write what is queued, close the last file (and upload it), within ``timeout``
        seconds; one log line with the counts."""
        deadline = time.monotonic() + timeout
        self._queue.close()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        left = 0
        if self._shipper is not None:
            left = self._shipper.stop(max(0.0, deadline - time.monotonic()))
            if not left:  # everything went up: no staging directory left behind
                shutil.rmtree(self._files.directory, ignore_errors=True)
        self.log.info(
            "payload log: %d record(s) written, %d dropped (queue full), %d skipped "
            "(over --log-max-bytes), %d lost to write failures%s",
            self.written,
            self.dropped_full,
            self.skipped_large,
            self.lost,
            f"; {left} file(s) not uploaded, left in {self._files.directory}" if left else "",
        )
