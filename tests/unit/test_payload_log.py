"""serving/payload_log.py without a server: ids, sampling, the bounded queue, one line a record.

The served end (real servers, files, S3, failures) is tests/integration/test_payload_log.py.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest

from tekton_mlops.serving.payload_log import (
    REQUEST,
    LogSettings,
    PayloadLog,
    _Record,
    request_id,
    sampled,
)


def test_the_id_comes_from_x_request_id_then_ce_id_else_is_new() -> None:
    assert request_id({"x-request-id": "a", "ce-id": "b"}) == "a"
    assert request_id({"ce-id": "b"}) == "b"
    for headers in ({}, {"x-request-id": "x" * 257}, {"x-request-id": "a\tb"}):
        assert uuid.UUID(request_id(headers)).version == 4


def test_sampling_keeps_about_the_rate_and_the_same_ids_every_time() -> None:
    ids = [f"request-{i}" for i in range(20000)]
    kept = [i for i in ids if sampled(i, 0.1)]
    assert 1800 <= len(kept) <= 2200  # 2000 expected, a binomial spread of about 42
    assert kept == [i for i in ids if sampled(i, 0.1)]
    assert set(kept) <= {i for i in ids if sampled(i, 0.5)}  # a higher rate keeps a superset
    assert all(sampled(i, 1.0) for i in ids[:100])
    assert not any(sampled(i, 0.0) for i in ids[:100])


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    # Not started: nothing takes from the queue, as when the writer falls behind.
    settings = LogSettings(str(tmp_path), max_bytes=400, queue_bytes=1000)
    payloads = PayloadLog(settings, "http://h:1/", "m", logging.getLogger("test"))
    body = '{"inputs":"' + "x" * 288 + '"}'
    for i in range(4):
        payloads.request({"x-request-id": f"r{i}"}, "/v2/models/m/infer", body)
    payloads.request({"x-request-id": "big"}, "/v2/models/m/infer", body + " " * 200)
    assert (payloads.dropped_full, payloads.skipped_large) == (1, 1)
    # A response over max-bytes is passed on whole and counted, not held.
    parts = list(payloads.response("r0", "/e", [b"{" + b" " * 300, b" " * 300 + b"}"]))
    assert len(b"".join(parts)) == 602
    assert payloads.skipped_large == 2


def test_a_record_is_one_line_of_json_whatever_the_body(tmp_path: Path) -> None:
    payloads = PayloadLog(LogSettings(str(tmp_path)), "http://h:1/", "m", logging.getLogger("t"))
    body = '{\n  "inputs": [{"name": "t", "data": ["a\u2028b"]}],\r\n  "id": "x"\n}'
    line = payloads._line(_Record(REQUEST, 'q"1', 1767268800.25, "/v2/models/m/infer", body))
    assert line.endswith(b"\n")
    assert len(line.decode().splitlines()) == 1
    assert json.loads(line) == {
        "specversion": "1.0",
        "id": 'q"1',
        "type": REQUEST,
        "source": "http://h:1/",
        "time": "2026-01-01T12:00:00.250000Z",
        "datacontenttype": "application/json",
        "inferenceservicename": "m",
        "endpoint": "/v2/models/m/infer",
        "data": json.loads(body),
    }


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode must be one of all, request, response"):
        PayloadLog(LogSettings(str(tmp_path), mode="both"), "http://h:1/", "m", logging.getLogger())
