"""Pairing payload-log events by x-request-id: the cases the sink-based tests do not reach."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tekton_mlops.serving.mirror import summarize_rows
from tekton_mlops.serving.mirror_pairs import REQUEST, RESPONSE, event_of, live_services, pair

ANSWER = {"outputs": [{"name": "p", "datatype": "FP32", "shape": [1], "data": [0.5]}]}


def record(kind: str, service: str, event_id: str, at: str, metadata: Any = None,
           data: Any = None) -> dict[str, Any]:  # fmt: skip
    found: dict[str, Any] = {"specversion": "1.0", "id": event_id, "type": kind, "source": "s",
                             "time": at, "inferenceservicename": service}  # fmt: skip
    if metadata is not None:
        found["metadata"] = metadata
    if data is not None:
        found["data"] = data
    return found


def exchange(service: str, event_id: str, rid: Any, start: str, end: str) -> list[Any]:
    metadata = {"X-Request-Id": rid} if rid is not None else None
    return [
        event_of(record(REQUEST, service, event_id, start, metadata, {"inputs": []})),
        event_of(record(RESPONSE, service, event_id, end, metadata, ANSWER)),
    ]


def test_the_request_id_is_found_whatever_its_case_and_shape() -> None:
    assert event_of(record(REQUEST, "a", "1", "2027-01-01T00:00:00Z",
                           {"x-request-id": "r"})).request_id == "r"  # fmt: skip
    assert event_of(record(REQUEST, "a", "1", "2027-01-01T00:00:00Z",
                           {"X-REQUEST-ID": ["r"]})).request_id == "r"  # fmt: skip
    # Two values of the header: no certain id, so the event is not paired.
    assert event_of(record(REQUEST, "a", "1", "2027-01-01T00:00:00Z",
                           {"X-Request-Id": ["r", "s"]})).request_id == ""  # fmt: skip


@pytest.mark.parametrize(
    ("changed", "problem"),
    [
        ({"type": "other"}, "type 'other' is neither"),
        ({"id": ""}, "no id"),
        ({"time": "2027-01-01T00:00:00"}, "has no time zone"),
        ({"inferenceservicename": None}, "no inferenceservicename"),
    ],
)
def test_a_record_that_cannot_be_paired_says_why(changed: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        event_of({**record(REQUEST, "a", "1", "2027-01-01T00:00:00Z"), **changed})


def test_a_response_stamped_before_its_request_takes_no_time() -> None:
    # The agent's senders stamp events as they send them, in any order.
    events = exchange("live", "l1", ["r1"], "2027-01-01T00:00:00.010Z", "2027-01-01T00:00:00.008Z")
    events += exchange("cand", "c1", ["r1"], "2027-01-01T00:00:00.011Z", "2027-01-01T00:00:00.014Z")
    paired = pair(events, "live", "cand")
    assert [(r["live_ms"], r["mirror_ms"], r["agree"]) for r in paired.records] == [
        (0.0, 3.0, True)
    ]
    summary = summarize_rows(paired.records)
    assert summary["latency_ratio_p50"] is None  # a 0 ms live p50 is no base for a ratio


def test_an_id_seen_twice_on_a_side_is_counted_not_paired() -> None:
    events = exchange("live", "l1", ["r1"], "2027-01-01T00:00:00Z", "2027-01-01T00:00:01Z")
    events += exchange("live", "l2", ["r1"], "2027-01-01T00:00:02Z", "2027-01-01T00:00:03Z")
    events += exchange("cand", "c1", ["r1"], "2027-01-01T00:00:00Z", "2027-01-01T00:00:01Z")
    paired = pair(events, "live", "cand")
    assert paired.records == []
    assert (paired.unidentified, paired.unpaired_candidate) == (2, 1)


def test_the_live_service_is_the_one_sharing_request_ids() -> None:
    events = exchange("blue", "l1", ["r1"], "2027-01-01T00:00:00Z", "2027-01-01T00:00:01Z")
    events += exchange("green", "c1", ["r1"], "2027-01-01T00:00:00Z", "2027-01-01T00:00:01Z")
    events += exchange("wine", "w1", ["w"], "2027-01-01T00:00:00Z", "2027-01-01T00:00:01Z")
    assert live_services(events, "green") == ["blue"]
    events += exchange("red", "x1", ["r1"], "2027-01-01T00:00:00Z", "2027-01-01T00:00:01Z")
    assert live_services(events, "green") == ["blue", "red"]


def test_a_base64_answer_is_compared_as_its_bytes() -> None:
    import base64

    events = exchange("live", "l1", ["r1"], "2027-01-01T00:00:00Z", "2027-01-01T00:00:01Z")
    answer = base64.b64encode(json.dumps(ANSWER).encode()).decode()
    events += [
        event_of(record(REQUEST, "cand", "c1", "2027-01-01T00:00:00Z", {"X-Request-Id": ["r1"]})),
        event_of({**record(RESPONSE, "cand", "c1", "2027-01-01T00:00:01Z",
                           {"X-Request-Id": ["r1"]}), "data_base64": answer}),
    ]  # fmt: skip
    assert [r["agree"] for r in pair(events, "live", "cand").records] == [True]


def test_a_missing_answer_is_awaited_then_counted_as_a_failure() -> None:
    live = exchange("live", "l1", ["r1"], "2027-01-01T00:00:00Z", "2027-01-01T00:00:01Z")
    copy = [event_of(record(REQUEST, "cand", "c1", "2027-01-01T00:00:00Z",
                            {"X-Request-Id": ["r1"]}))]  # fmt: skip
    start = copy[0].time
    waiting = pair(live + copy, "live", "cand", now=start + 29)
    assert (waiting.records, waiting.pending) == ([], 1)
    failed = pair(live + copy, "live", "cand", now=start + 31)
    assert [(r["mirror_status"], r["agree"]) for r in failed.records] == [(None, False)]
    assert summarize_rows(failed.records)["mirror_error_rate"] == 1.0
