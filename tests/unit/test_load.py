"""check-slo's statistics on fixed latency lists with known answers, and the load that feeds them.

Percentiles are nearest-rank (the value below which that share of the requests fall, never
interpolated), so 1..100 ms has p50 = 50, p95 = 95 and p99 = 99 exactly.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
from collections.abc import Iterator

import pytest

from tekton_mlops.errors import SourceError
from tekton_mlops.serving.load import (
    HIGHER_IS_BETTER,
    SLO_METRICS,
    Measured,
    drive,
    drive_rounds,
    fetch_json,
    infer_path,
    rounds_for,
    sample_request,
    split_endpoint,
)
from tests.unit.delay_endpoint import DelayEndpoint


def shuffled(values: list[float]) -> list[float]:
    copy = list(values)
    random.Random(3).shuffle(copy)  # the order requests finish in is not the order of size
    return copy


def test_one_to_a_hundred_ms() -> None:
    measured = Measured(latencies_ms=shuffled([float(v) for v in range(1, 101)]), seconds=2.0)
    assert measured.summary() == {
        "requests": 100,
        "latency_mean_ms": 50.5,
        "latency_p50_ms": 50.0,
        "latency_p95_ms": 95.0,
        "latency_p99_ms": 99.0,
        "error_rate": 0.0,
        "throughput_rps": 50.0,  # 100 answers in 2 s
    }


def test_errors_count_in_the_rate_and_not_in_latency_or_throughput() -> None:
    measured = Measured(
        latencies_ms=shuffled([float(v) for v in range(1, 101)]), errors=25, seconds=2.0
    )
    summary = measured.summary()
    assert measured.requests == 125
    assert summary["requests"] == 125
    assert summary["error_rate"] == 0.2  # 25 of 125
    assert summary["throughput_rps"] == 50.0  # successful answers only
    assert summary["latency_p50_ms"] == 50.0


@pytest.mark.parametrize(
    ("count", "p50", "p95", "p99"),
    [(10, 5.0, 10.0, 10.0), (20, 10.0, 19.0, 20.0), (200, 100.0, 190.0, 198.0), (3, 2.0, 3.0, 3.0)],
)
def test_nearest_rank_percentiles(count: int, p50: float, p95: float, p99: float) -> None:
    summary = Measured(latencies_ms=shuffled([float(v) for v in range(1, count + 1)])).summary()
    assert (summary["latency_p50_ms"], summary["latency_p95_ms"], summary["latency_p99_ms"]) == (
        p50,
        p95,
        p99,
    )


def test_one_request_is_every_percentile_and_values_keep_3_decimals() -> None:
    summary = Measured(latencies_ms=[7.77777], seconds=0.5).summary()
    assert summary == {
        "requests": 1,
        "latency_mean_ms": 7.778,
        "latency_p50_ms": 7.778,
        "latency_p95_ms": 7.778,
        "latency_p99_ms": 7.778,
        "error_rate": 0.0,
        "throughput_rps": 2.0,
    }


def test_rounding_of_rates() -> None:
    summary = Measured(latencies_ms=[1.0, 2.0], errors=1, seconds=3.0).summary()
    assert summary["error_rate"] == 0.333333
    assert summary["throughput_rps"] == 0.67
    assert summary["latency_mean_ms"] == 1.5


def test_nothing_succeeded() -> None:
    summary = Measured(errors=3, seconds=1.0).summary()
    assert summary == {
        "requests": 3,
        "latency_mean_ms": None,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "latency_p99_ms": None,
        "error_rate": 1.0,
        "throughput_rps": 0.0,
    }


def test_nothing_sent_is_a_total_failure_not_a_perfect_score() -> None:
    summary = Measured().summary()
    assert summary["requests"] == 0
    assert summary["error_rate"] == 1.0
    assert summary["throughput_rps"] == 0.0
    # A run that took no measurable time has no throughput to report rather than infinity.
    assert Measured(latencies_ms=[1.0], seconds=0.0).summary()["throughput_rps"] == 0.0


def test_which_metrics_are_better_higher() -> None:
    assert SLO_METRICS == (
        "latency_mean_ms",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "error_rate",
        "throughput_rps",
    )
    assert {"throughput_rps"} == HIGHER_IS_BETTER


# The load generator against an endpoint of known latency ------------------------------------


@pytest.fixture
def slow() -> Iterator[DelayEndpoint]:
    with DelayEndpoint(delay=0.05) as endpoint:
        yield endpoint


BODY = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 1], "data": [0]}]})


def test_drive_sends_the_budget_with_the_concurrency_asked(slow: DelayEndpoint) -> None:
    measured = drive(slow.url, "iris", BODY.encode(), requests=16, concurrency=4)
    assert (measured.requests, measured.errors, len(measured.latencies_ms)) == (16, 0, 16)
    assert len(slow.requests) == 16
    assert slow.most_in_flight == 4
    assert len(slow.clients) == 4  # one kept-alive connection per worker
    # Each request took the server's 50 ms at least, as the client timed it.
    assert min(measured.latencies_ms) >= 50
    # Four at a time: about 4 x 50 ms, far below the 800 ms of one at a time.
    assert 0.2 <= measured.seconds < 0.6
    assert measured.summary()["throughput_rps"] == round(16 / measured.seconds, 2)


def test_drive_posts_the_body_to_the_v2_infer_path(slow: DelayEndpoint) -> None:
    drive(slow.url + "/base/", "a b/c", BODY.encode(), requests=2, concurrency=1)
    for method, path, headers, body in slow.requests:
        assert (method, path) == ("POST", "/base/v2/models/a%20b%2Fc/infer")
        assert headers["Content-Type"] == "application/json"
        assert headers["Content-Length"] == str(len(BODY))
        assert body == BODY.encode()


def test_drive_stops_when_the_duration_runs_out() -> None:
    with DelayEndpoint(delay=0.02) as endpoint:
        measured = drive(endpoint.url, "m", b"{}", requests=1_000_000, concurrency=2, duration=0.3)
    assert 2 <= measured.requests < 100
    assert 0.3 <= measured.seconds < 1.5


def test_answers_other_than_200_are_errors_with_samples() -> None:
    with DelayEndpoint(status=500, body={"error": "x" * 300}) as endpoint:
        measured = drive(endpoint.url, "m", b"{}", requests=12, concurrency=2)
    assert (measured.requests, measured.errors, list(measured.latencies_ms)) == (12, 12, [])
    # A few examples, not one per request: five in all, however the workers' share falls.
    assert len(measured.error_samples) == 5
    sample = measured.error_samples[0]
    assert sample.startswith('HTTP 500 {"error": "xxx')
    assert len(sample) == len("HTTP 500 ") + 120
    assert measured.summary()["error_rate"] == 1.0


def test_a_refused_connection_is_an_error_not_a_crash() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
        url = f"http://127.0.0.1:{holder.getsockname()[1]}"
        measured = drive(url, "m", b"{}", requests=3, concurrency=1)
    assert (measured.requests, measured.errors) == (3, 3)
    assert all(s.startswith("ConnectionRefusedError") for s in measured.error_samples)


def test_a_request_slower_than_the_timeout_is_an_error() -> None:
    with DelayEndpoint(delay=1.0) as endpoint:
        measured = drive(endpoint.url, "m", b"{}", requests=2, concurrency=1, timeout=0.2)
    assert (measured.requests, measured.errors) == (2, 2)
    assert all("timed out" in s for s in measured.error_samples)
    assert measured.seconds < 0.9  # the timeout ended each wait, not the server


def test_fetch_json_reads_metadata_and_names_failures() -> None:
    with DelayEndpoint() as endpoint:
        endpoint.metadata = {"name": "iris", "inputs": [{"name": "X"}]}
        assert fetch_json(endpoint.url + "/", "/v2/models/iris") == endpoint.metadata
        assert endpoint.requests[-1][:2] == ("GET", "/v2/models/iris")
        with pytest.raises(SourceError, match=r"/v2/models/missing: HTTP 404 .*no such model"):
            fetch_json(endpoint.url, "/v2/models/missing")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{holder.getsockname()[1]}"
        with pytest.raises(SourceError, match=f"{url}: cannot reach the endpoint"):
            fetch_json(url, "/v2/models/iris")


def test_endpoint_urls() -> None:
    assert split_endpoint("https://models.example:8443/serving/") == (
        http.client.HTTPSConnection,
        "models.example:8443",
        "/serving",
    )
    assert split_endpoint("http://127.0.0.1:8080") == (
        http.client.HTTPConnection,
        "127.0.0.1:8080",
        "",
    )
    assert split_endpoint("http://h/models/X/") == (http.client.HTTPConnection, "h", "/models/X")
    for wrong in ("ftp://models.example/", "http://", "models.example:8080"):
        with pytest.raises(SourceError, match="not an http\\(s\\):// endpoint"):
            split_endpoint(wrong)
    assert infer_path("iris") == "/v2/models/iris/infer"


def test_a_sample_request_from_metadata() -> None:
    metadata = {
        "name": "m",
        "inputs": [
            {"name": "X", "datatype": "FP32", "shape": [-1, 2, 3]},
            {"name": "flags", "datatype": "BOOL", "shape": [2]},
            {"name": "words", "datatype": "BYTES", "shape": [1, -1]},
        ],
    }
    assert sample_request(metadata) == {
        "inputs": [
            {"name": "X", "datatype": "FP32", "shape": [1, 2, 3], "data": [0] * 6},
            {"name": "flags", "datatype": "BOOL", "shape": [2], "data": [False, False]},
            {"name": "words", "datatype": "BYTES", "shape": [1, 1], "data": [""]},
        ]
    }
    # Booleans as JSON booleans, not 0 (which Python's == would let pass).
    assert json.dumps(sample_request(metadata)["inputs"][1]["data"]) == "[false, false]"
    assert sample_request({}) == {"inputs": []}


def test_undecodable_error_bodies_are_shown_not_fatal() -> None:
    with DelayEndpoint(status=502, body=b"bad gateway \xff\xfe") as endpoint:
        measured = drive(endpoint.url, "m", b"{}", requests=2, concurrency=1)
        assert measured.error_samples == ["HTTP 502 bad gateway \ufffd\ufffd"] * 2
        with pytest.raises(SourceError, match="HTTP 502 bad gateway \ufffd\ufffd"):
            fetch_json(endpoint.url, "/v2/models/m")


def test_a_long_error_body_is_cut_in_the_message() -> None:
    with DelayEndpoint(status=500) as endpoint:
        endpoint.metadata = {"error": "y" * 400}
        with pytest.raises(SourceError) as failed:
            fetch_json(endpoint.url, "/v2/models/m")
    shown = str(failed.value).split("HTTP 500 ", 1)[1]
    assert shown == json.dumps(endpoint.metadata)[:200]


def test_metadata_slower_than_the_timeout_is_unreachable() -> None:
    with (
        DelayEndpoint(delay=1.0) as endpoint,
        pytest.raises(SourceError, match="cannot reach the endpoint .*timed out"),
    ):
        fetch_json(endpoint.url, "/v2/models/m", timeout=0.2)


def test_without_a_duration_the_whole_budget_is_sent() -> None:
    # No duration means no time limit: 30 requests of 40 ms one at a time take 1.2 s.
    with DelayEndpoint(delay=0.04) as endpoint:
        measured = drive(endpoint.url, "m", b"{}", requests=30, concurrency=1)
    assert measured.requests == 30
    assert measured.seconds >= 1.2


# Several endpoints under the same load, in rounds ----------------------------------------------


class Arrivals(list):  # type: ignore[type-arg]
    """An endpoint's request list that also notes, in one list shared by several endpoints,
    which endpoint each request reached: the order the load visited them in."""

    def __init__(self, name: str, shared: list[str]) -> None:
        super().__init__()
        self.name, self.shared = name, shared

    def append(self, item: object) -> None:
        super().append(item)
        self.shared.append(self.name)


def runs(names: list[str]) -> list[tuple[str, int]]:
    """``a a b b b`` -> ``[(a, 2), (b, 3)]``."""
    out: list[tuple[str, int]] = []
    for name in names:
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1] + 1)
        else:
            out.append((name, 1))
    return out


def test_rounds_are_as_many_as_keep_each_worker_busy() -> None:
    # At least 5 requests per worker and round, at most 10 rounds, at least 1.
    assert rounds_for(30, 1) == 6
    assert rounds_for(200, 4) == 10
    assert rounds_for(12, 2) == 1
    assert rounds_for(1, 256) == 1
    assert rounds_for(1_000_000, 1) == 10


def test_rounds_rotate_the_order_and_share_the_budget_evenly() -> None:
    order: list[str] = []
    with DelayEndpoint() as a, DelayEndpoint() as b, DelayEndpoint() as c:
        for name, endpoint in (("a", a), ("b", b), ("c", c)):
            endpoint.requests = Arrivals(name, order)
        measured = drive_rounds([a.url, b.url, c.url], "m", b"{}", requests=32, concurrency=1)
    # 32 requests one at a time: 6 rounds of 6, 6, 5, 5, 5, 5; round r starts with r mod 3.
    assert runs(order) == [
        ("a", 6), ("b", 6), ("c", 6),
        ("b", 6), ("c", 6), ("a", 6),
        ("c", 5), ("a", 5), ("b", 5),
        ("a", 5), ("b", 5), ("c", 5),
        ("b", 5), ("c", 5), ("a", 5),
        ("c", 5), ("a", 5), ("b", 5),
    ]  # fmt: skip
    assert [m.requests for m in measured] == [32, 32, 32]
    assert all(len(m.latencies_ms) == 32 and m.errors == 0 for m in measured)
    # Every latency is kept, 8 bytes each (a C double array, not Python floats).
    assert all(m.latencies_ms.itemsize == 8 for m in measured)  # type: ignore[attr-defined]


def test_each_endpoint_gets_the_whole_duration_spread_over_the_rounds() -> None:
    with DelayEndpoint(delay=0.01) as a, DelayEndpoint(delay=0.01) as b:
        measured = drive_rounds(
            [a.url, b.url], "m", b"{}", requests=1_000_000, concurrency=1, duration=0.4
        )
    # 10 rounds of 0.04 s per endpoint: each drove for about 0.4 s in all, not 0.4 s a round.
    for m in measured:
        assert 0.4 <= m.seconds < 0.8
        assert 10 <= m.requests <= 45  # about 0.4 s / 10 ms, far from the budget


def test_rounds_add_up_errors_and_keep_five_examples() -> None:
    with DelayEndpoint(status=503) as failing, DelayEndpoint() as fine:
        bad, good = drive_rounds([failing.url, fine.url], "m", b"{}", requests=40, concurrency=2)
    assert (bad.requests, bad.errors, len(bad.latencies_ms)) == (40, 40, 0)
    assert len(bad.error_samples) == 5
    assert bad.summary()["error_rate"] == 1.0
    assert (good.requests, good.errors) == (40, 0)


def _under_drift(a: DelayEndpoint, b: DelayEndpoint, drive_both) -> float:  # type: ignore[no-untyped-def]
    """How much slower b looked than a (relative gap of the mean latencies) on a "machine"
    that slows down as it works: every request either endpoint answers adds 0.2 ms to the
    delay of both, from 0.5 ms up.

    The drift follows the count of requests, not the clock, so the delays themselves are
    the same in every run and only the timers' noise varies. Means, not medians: rotation
    balances a linear drift in the sum of the latencies.
    """
    import statistics

    order: list[str] = []

    class Slower(Arrivals):
        def append(self, item: object) -> None:
            super().append(item)  # under the endpoint's lock, before it sleeps its delay
            a.delay = b.delay = 0.0005 + 0.0002 * len(order)

    a.delay = b.delay = 0.0005
    a.requests, b.requests = Slower("a", order), Slower("b", order)
    first, second = drive_both()
    slow, fast = statistics.mean(second.latencies_ms), statistics.mean(first.latencies_ms)
    return float((slow - fast) / slow)


def test_rounds_keep_a_slow_drift_of_the_machine_from_favouring_one_endpoint() -> None:
    for sequential_first in (True, False):
        with DelayEndpoint() as a, DelayEndpoint() as b:
            if sequential_first:
                # One after the other: b gets the slower second half of the run.
                gap = _under_drift(
                    a, b, lambda: (drive(a.url, "m", b"{}", 40, 1), drive(b.url, "m", b"{}", 40, 1))
                )
                assert gap > 0.4  # about 0.6: 5 ms against 13 ms on average
            else:
                # 8 rounds of 5, a first in every other one: the drift falls on both alike.
                gap = _under_drift(a, b, lambda: drive_rounds([a.url, b.url], "m", b"{}", 40, 1))
                assert abs(gap) < 0.1  # about 0.01: what is left is the timers' noise
