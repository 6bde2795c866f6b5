"""Mirror records from payload logs: a live version's and a candidate's events, paired.

On KServe, Istio mirrors a request to the candidate and drops its answer; what is left are
the payload-logger events both InferenceServices post (``tekton-mlops log-sink`` writes
them as JSON lines, serving/cloudevents.py). Each side's request and response events share
the event ``id``, but the ids of the two sides differ: each agent makes its own. What the
two sides share is the request's ``x-request-id``, which Envoy keeps on the copy and the
logger copies into ``metadata`` (``metadataHeaders``). So:

1. Per InferenceService, a request event and the response event of its id are one
   exchange: answered (200) when the response is there, its latency the time between the
   two events, in ms (the times KServe's agent stamps when it sends them).
2. A candidate exchange and the live exchange with its x-request-id are one pair, turned
   into the record the local router writes (serving/mirror.py), so ``summarize_rows``
   judges both the same way: agreement of the outputs (floats within 1e-6), the
   candidate's error rate (no 200 response), both latencies.

Counted, never judged: exchanges of either side without a counterpart (mirroring copies
``mirror-percent`` of the requests; a copy the candidate never received leaves a live
exchange alone), exchanges without an x-request-id or whose x-request-id comes twice on
one side (no certain pair), and pairs whose answer may still come (a side without a
response, ``pending_seconds`` after its request; a 500 is never logged, so after that the
missing answer counts as a failure).

Example::

    events = [event_of(json.loads(line)) for line in lines]
    paired = pair(events, "iris-blue", "iris-green", since=0.0, now=time.time())
    summarize_rows(paired.records)["agreement_rate"]
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tekton_mlops.serving.mirror import same_outputs

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
REQUEST_ID = "x-request-id"
#: How long after a request its answer may still be on its way to the log (the sink closes
#: a file every 10 s by default; the agent sends within moments).
PENDING_SECONDS = 30.0


@dataclass(frozen=True)
class Event:
    """What pairing needs of one logged event."""

    service: str  # inferenceservicename
    kind: str  # REQUEST or RESPONSE
    id: str  # joins a request and its response on one side
    request_id: str  # the x-request-id in metadata; "" without one
    time: float  # epoch seconds
    data: bytes | None = None  # a response's body (JSON text)


def _request_id(metadata: Any) -> str:
    """The x-request-id among the selected headers, whatever its case (KServe keys them by
    the canonical name, X-Request-Id), as a string or KServe's list of values."""
    if not isinstance(metadata, Mapping):
        return ""
    for name, value in metadata.items():
        if str(name).lower() == REQUEST_ID:
            if isinstance(value, list):
                return str(value[0]) if len(value) == 1 else ""  # several: no certain id
            return str(value)
    return ""


def _body(record: Mapping[str, Any]) -> bytes:
    if "data_base64" in record:
        return base64.b64decode(str(record["data_base64"]))
    data = record.get("data")
    return data.encode() if isinstance(data, str) else json.dumps(data).encode()


def event_of(record: Any) -> Event:
    """The Event of one payload-log record. Raises ValueError saying what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    kind = record.get("type")
    if kind not in (REQUEST, RESPONSE):
        raise ValueError(f"type {kind!r} is neither {REQUEST} nor {RESPONSE}")
    for name in ("id", "time", "inferenceservicename"):
        if not isinstance(record.get(name), str) or not record[name]:
            raise ValueError(f"no {name}")
    moment = datetime.fromisoformat(record["time"])
    if moment.tzinfo is None:
        raise ValueError(f"time {record['time']!r} has no time zone")
    return Event(
        record["inferenceservicename"],
        kind,
        record["id"],
        _request_id(record.get("metadata")),
        moment.timestamp(),
        _body(record) if kind == RESPONSE else None,
    )


@dataclass(frozen=True)
class _Exchange:
    request_id: str
    start: float
    end: float | None  # the response's time; None: no 200 answer logged
    answer: bytes | None

    @property
    def ms(self) -> float | None:
        # Both times come from one agent's clock; the events go out from a pool of senders,
        # so a response may be stamped a moment before its request: that is no time at all.
        return None if self.end is None else round(max(0.0, self.end - self.start) * 1000, 3)


def _exchanges(events: Iterable[Event], service: str) -> list[_Exchange]:
    requests: dict[str, Event] = {}
    responses: dict[str, Event] = {}
    for event in events:
        if event.service == service:
            chosen = requests if event.kind == REQUEST else responses
            chosen.setdefault(event.id, event)
    found = []
    for event_id, request in requests.items():
        response = responses.get(event_id)
        found.append(
            _Exchange(
                request.request_id,
                request.time,
                None if response is None else response.time,
                None if response is None else response.data,
            )
        )
    return found


@dataclass
class Pairing:
    """The records of the pairs judged, and the counts of what could not be paired."""

    live: str
    candidate: str
    records: list[dict[str, Any]] = field(default_factory=list)
    live_requests: int = 0
    candidate_requests: int = 0
    unpaired_live: int = 0  # live exchanges no copy of which reached the candidate's log
    unpaired_candidate: int = 0  # candidate exchanges with no live exchange of their id
    unidentified: int = 0  # without an x-request-id, or one seen twice on a side
    pending: int = 0  # paired, an answer perhaps still on its way

    def counts(self) -> dict[str, int]:
        return {
            "live_requests": self.live_requests,
            "candidate_requests": self.candidate_requests,
            "paired": len(self.records),
            "pending": self.pending,
            "unpaired_live": self.unpaired_live,
            "unpaired_candidate": self.unpaired_candidate,
            "unidentified": self.unidentified,
        }


def _by_request_id(exchanges: list[_Exchange]) -> tuple[dict[str, _Exchange], int]:
    """Exchanges by x-request-id, and how many have none or share theirs."""
    seen = Counter(e.request_id for e in exchanges)
    unique = {e.request_id: e for e in exchanges if e.request_id and seen[e.request_id] == 1}
    return unique, len(exchanges) - len(unique)


def live_services(events: Iterable[Event], candidate: str) -> list[str]:
    """The other InferenceServices whose requests share an x-request-id with the
    candidate's: the live version it mirrors (more than one means the logs cannot say)."""
    events = list(events)
    copied = {e.request_id for e in events if e.service == candidate and e.request_id}
    return sorted(
        {
            e.service
            for e in events
            if e.service != candidate and e.kind == REQUEST and e.request_id in copied
        }
    )


def pair(
    events: Iterable[Event],
    live: str,
    candidate: str,
    since: float = 0.0,
    now: float | None = None,
    pending_seconds: float = PENDING_SECONDS,
) -> Pairing:
    """Pair the candidate's exchanges with the live ones logged since ``since`` (epoch
    seconds); at ``now`` (default: the time now), an answer missing for less than
    ``pending_seconds`` is awaited."""
    now = time.time() if now is None else now
    recent = [e for e in events if e.time >= since and e.service in (live, candidate)]
    live_all, candidate_all = _exchanges(recent, live), _exchanges(recent, candidate)
    lives, live_unknown = _by_request_id(live_all)
    copies, copy_unknown = _by_request_id(candidate_all)
    pairing = Pairing(live, candidate, live_requests=len(live_all),
                      candidate_requests=len(candidate_all))  # fmt: skip
    pairing.unidentified = live_unknown + copy_unknown
    pairing.unpaired_live = sum(1 for rid in lives if rid not in copies)
    for rid, copy in sorted(copies.items(), key=lambda item: item[1].start):
        original = lives.get(rid)
        if original is None:
            pairing.unpaired_candidate += 1
            continue
        waiting = [e for e in (original, copy) if e.end is None]
        if any(now - e.start < pending_seconds for e in waiting):
            pairing.pending += 1
            continue
        pairing.records.append(_record(rid, live, candidate, original, copy))
    return pairing


def _record(
    rid: str, live: str, candidate: str, original: _Exchange, copy: _Exchange
) -> dict[str, Any]:
    """The pair as the router's mirror record (serving/mirror.py)."""
    answered = original.answer is not None
    agree: bool | None = None
    if answered:
        assert original.answer is not None
        agree = copy.answer is not None and same_outputs(original.answer, copy.answer)
    return {
        "time": round(copy.start, 3),
        "id": rid,
        "live": live,
        "mirror": candidate,
        "live_status": 200 if answered else None,
        "mirror_status": 200 if copy.answer is not None else None,
        "live_ms": original.ms,
        "mirror_ms": copy.ms,
        "agree": agree,
    }
