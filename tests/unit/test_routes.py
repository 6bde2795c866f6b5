"""The router's pure parts: the table's rules and buckets, HTTP heads, mirror agreement."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tekton_mlops.serving.mirror import same_outputs, shadow_host, summarize
from tekton_mlops.serving.routes import (
    BUCKETS,
    Mirror,
    TableError,
    bucket_of,
    parse_table,
    read_table,
    write_table,
)
from tekton_mlops.serving.wire import HttpError, Reader, body_length

BACKENDS = {"v1": "http://127.0.0.1:8001", "v2": "http://127.0.0.1:8002"}


def table(weights: dict[str, int], **extra: object):  # type: ignore[no-untyped-def]
    return parse_table({"model": "iris", "backends": BACKENDS, "weights": weights, **extra})


def test_buckets_are_dealt_cumulatively_so_a_change_moves_only_the_changed_ones() -> None:
    before, after = table({"v1": 90, "v2": 10}), table({"v1": 80, "v2": 20})
    moved = [b for b in range(BUCKETS) if before.version_for(b) != after.version_for(b)]
    assert moved == list(range(80, 90))
    assert all(before.version_for(b) == "v1" and after.version_for(b) == "v2" for b in moved)


def test_a_users_bucket_is_the_same_in_every_process() -> None:
    # sha256, not Python's hash(), which changes with PYTHONHASHSEED from run to run.
    assert bucket_of("user-42") == 29  # fixed by the value alone
    assert len({bucket_of(f"user-{n}") for n in range(1000)}) == BUCKETS


def test_a_version_at_weight_0_gets_no_bucket() -> None:
    assert set(table({"v1": 100}).slots) == {"v1"}
    assert table({"v1": 100, "v2": 0}).live == ("v1",)


@pytest.mark.parametrize(
    ("document", "phrase"),
    [
        ({"weights": {"v1": 60, "v2": 60}}, "--weights='v1=60,v2=60': the weights sum to 120"),
        ({"weights": {"v1": True}}, "--weights='v1=True': a weight is an integer"),
        ({"weights": {"v3": 100}}, "--weights='v3=100': unknown version (known: v1, v2)"),
        ({"weights": {"v1": 100}, "mirror": {"version": "v1", "percent": 5}}, "v1 has weight 100"),
        ({"weights": {"v1": 100}, "mirror": {"version": "v2"}}, 'must be null or {"version"'),
        ({"weights": {"v1": 100}, "sticky_header": "a:b"}, "--sticky-header='a:b'"),
        ({"weights": {"v1": 100}, "extra": 1}, "--table='extra': unknown field"),
        ({"weights": {"v1": 100}, "backends": {"v1": "http://h:1/path"}}, "no path"),
        ({"weights": {"v1": 100}, "model": "a/b"}, "--model='a/b'"),
    ],
)
def test_a_table_that_breaks_a_rule_is_refused_naming_it(
    document: dict[str, object], phrase: str
) -> None:
    with pytest.raises(TableError) as refused:
        parse_table({"model": "iris", "backends": BACKENDS, **document})
    assert refused.value.exit_code == 2
    assert phrase in str(refused.value)


def test_write_table_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "table.json"
    digest = write_table(path, table({"v1": 100}, mirror={"version": "v2", "percent": 2.5}))
    loaded, read_digest = read_table(path)
    assert read_digest == digest
    assert loaded.mirror == Mirror("v2", 2.5)
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]


def reader(data: bytes) -> Reader:
    left, right = socket.socketpair()
    left.sendall(data)
    left.close()
    return Reader(right)


def test_a_head_is_read_whole_and_hop_by_hop_fields_are_dropped() -> None:
    incoming = reader(
        b"\r\nPOST /v2/models/iris/infer HTTP/1.1\r\nHost: r\r\nConnection: close, X-Hop\r\n"
        b"X-Hop: 1\r\nX-User: Ann\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    head = incoming.head()
    assert head is not None
    assert head.start == b"POST /v2/models/iris/infer HTTP/1.1"
    assert head.get(b"x-user") == b"Ann"  # the value as sent, not lowered
    assert head.wants_close(b"HTTP/1.1")
    assert head.end_to_end() == b"Host: r\r\nX-User: Ann\r\n"
    assert body_length(head) is None  # chunked


def test_bare_lf_heads_are_accepted_and_passed_on_as_crlf() -> None:
    head = reader(b"GET / HTTP/1.1\nHost: r\nX-A: 1\n\n").head()
    assert head is not None
    assert head.fields == b"Host: r\r\nX-A: 1\r\n"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: r\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
    ],
)
def test_malformed_heads_are_refused(data: bytes, status: int) -> None:
    with pytest.raises(HttpError) as refused:
        reader(data).head()
    assert refused.value.status == status


@pytest.mark.parametrize(
    "fields",
    [
        b"Content-Length: 3\r\nContent-Length: 4\r\n",
        b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
    ],
)
def test_ambiguous_framing_is_refused(fields: bytes) -> None:
    head = reader(b"POST / HTTP/1.1\r\n" + fields + b"\r\n").head()
    assert head is not None
    with pytest.raises(HttpError):
        body_length(head)


def answer(*outputs: tuple[str, list[object]]) -> bytes:
    return json.dumps(
        {"model_name": "iris", "outputs": [
            {"name": n, "datatype": "FP32", "shape": [len(d)], "data": d} for n, d in outputs
        ]}
    ).encode()  # fmt: skip


def test_answers_agree_on_outputs_with_floats_within_1e_6() -> None:
    assert same_outputs(answer(("p", [0.5, 0.25])), answer(("p", [0.5000001, 0.25])))
    assert not same_outputs(answer(("p", [0.5, 0.25])), answer(("p", [0.501, 0.25])))
    assert not same_outputs(answer(("p", [1])), answer(("q", [1])))
    assert not same_outputs(answer(("p", [1])), b"not json")


def test_the_shadow_host_is_marked_before_the_port() -> None:
    assert shadow_host(b"iris.example:8080") == b"iris.example-shadow:8080"
    assert shadow_host(b"iris") == b"iris-shadow"


def test_summary_of_records(tmp_path: Path) -> None:
    records = tmp_path / "table.mirror.jsonl"
    lines = [
        {"live": "v1", "mirror": "v2", "live_status": 200, "mirror_status": 200, "live_ms": 1.0,
         "mirror_ms": 2.0, "agree": True, "dropped": 0},
        {"live": "v1", "mirror": "v2", "live_status": 200, "mirror_status": 200, "live_ms": 3.0,
         "mirror_ms": 4.0, "agree": False, "dropped": 2},
        {"live": "v1", "mirror": "v2", "live_status": 200, "mirror_status": None, "live_ms": 5.0,
         "mirror_ms": None, "agree": False, "dropped": 0},
        {"live": "v1", "mirror": "v2", "live_status": 500, "mirror_status": 200, "live_ms": 7.0,
         "mirror_ms": 8.0, "agree": None, "dropped": 0},
    ]  # fmt: skip
    records.write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = summarize(records)
    assert summary["requests"] == 4
    assert summary["compared"] == 3
    assert summary["agreement_rate"] == round(1 / 3, 6)
    assert summary["mirror_error_rate"] == 0.25
    assert summary["dropped"] == 2
    assert summary["live_latency_ms"] == {"p50": 3.0, "p95": 5.0}
    assert summary["mirror_latency_ms"] == {"p50": 4.0, "p95": 8.0}
    assert summarize(tmp_path / "none.jsonl")["agreement_rate"] is None
