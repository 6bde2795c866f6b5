"""tekton-mlops route: the router in front of real ``tekton-mlops serve`` processes.

Every server and router is a real process on 127.0.0.1 that binds port 0 and writes
its URL to its --ready-file. Three versions are served for the whole module: v1 and v2
the same logistic regression, v3 a random forest (so its answers differ).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tekton_mlops.cli import main
from tests.conftest import CLI, refused_url
from tests.integration.routing import infer_body, train

pytestmark = pytest.mark.integration


class Process:
    """A ``tekton-mlops`` server process; its URL is what it wrote to its ready file."""

    def __init__(self, args: list[str], folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "log"
        ready = folder / "url"
        ready.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [CLI, *args, f"--ready-file={ready}"], stdout=log, stderr=subprocess.STDOUT
            )
        self.ready = ready

    def wait(self, seconds: float = 60) -> Process:
        deadline = time.monotonic() + seconds
        while not self.ready.is_file():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.02)  # a poll interval: what is waited for is the ready file
        self.url = self.ready.read_text().strip()
        return self

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def serve(model: Path, version: str, folder: Path) -> Process:
    args = ["serve", f"--model-path={model}", "--model-name=iris", f"--model-version={version}",
            "--port=0"]  # fmt: skip
    return Process(args, folder)


@pytest.fixture(scope="module")
def servers(datasets, tmp_path_factory) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """v1 and v2: the same logistic regression; v3: a random forest."""
    root = tmp_path_factory.mktemp("router-models")
    same = train(datasets["iris"], root / "lr", "logistic-regression", '{"max_iter": 500}')
    other = train(datasets["iris"], root / "forest", "random-forest-classifier",
                  '{"n_estimators": 20}')  # fmt: skip
    started = [serve(same, "v1", root / "v1"), serve(same, "v2", root / "v2"),
               serve(other, "v3", root / "v3")]  # fmt: skip
    try:
        yield {f"v{n}": process.wait().url for n, process in enumerate(started, 1)}
    finally:
        for process in started:
            process.kill()


class Router:
    """A ``tekton-mlops route serve`` process on a table file."""

    def __init__(self, table: Path, process: Process) -> None:
        self.table = table
        self.process = process
        self.url = process.url
        parts = urllib.parse.urlsplit(self.url)
        self.address = (parts.hostname or "", parts.port or 0)

    @property
    def log(self) -> str:
        return self.process.log.read_text()

    @property
    def records(self) -> Path:
        return self.table.with_suffix(".mirror.jsonl")

    def status(self) -> dict[str, Any]:
        status, _, document = call(self.address, "GET", "/router/status")
        assert status == 200
        return document  # type: ignore[no-any-return]

    def wait_in_force(self) -> float:
        """Wait until the router routes by the table file as it is now; when it did."""
        import hashlib

        digest = "sha256:" + hashlib.sha256(self.table.read_bytes()).hexdigest()
        deadline = time.monotonic() + 10
        while self.status()["table_digest"] != digest:
            assert time.monotonic() < deadline, "the router never took the new table"
            time.sleep(0.005)  # a poll interval: what is waited for is the digest above
        return time.monotonic()

    def wait_records(self, count: int) -> list[dict[str, Any]]:
        """The mirror's records once there are ``count`` (copies are sent in the background)."""
        deadline = time.monotonic() + 20
        while True:
            lines = self.records.read_text().splitlines() if self.records.exists() else []
            if len(lines) >= count or time.monotonic() > deadline:
                return [json.loads(line) for line in lines]
            time.sleep(0.02)  # a poll interval: the records come from other threads


def table_document(backends: dict[str, str], weights: dict[str, int], **extra: Any) -> str:
    return json.dumps({"model": "iris", "backends": backends, "weights": weights, **extra})


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Callable[..., Router]]:
    """Start routers on tables written here; each is stopped at the end."""
    started: list[Process] = []

    def start(document: str, *options: str) -> Router:
        folder = tmp_path / f"router-{len(started)}"
        folder.mkdir()
        table = folder / "table.json"
        table.write_text(document)
        process = Process(["route", "serve", f"--table={table}", "--port=0", *options], folder)
        started.append(process)
        return Router(table, process.wait())

    try:
        yield start
    finally:
        for process in started:
            process.kill()


class Client:
    """One kept-alive connection, as a load balancer or an SDK would hold it."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.connection = http.client.HTTPConnection(*address, timeout=30)

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str | None, Any]:
        self.connection.request(method, path, body=body, headers=headers or {})
        response = self.connection.getresponse()
        data = response.read()
        return response.status, response.getheader("x-model-version"), json.loads(data or b"null")

    def infer(
        self, row: int = 0, headers: dict[str, str] | None = None
    ) -> tuple[int, str | None, Any]:
        return self.send("POST", "/v2/models/iris/infer", infer_body(row), headers)

    def close(self) -> None:
        self.connection.close()


def call(address: tuple[str, int], method: str, path: str, body: bytes | None = None):  # type: ignore[no-untyped-def]
    client = Client(address)
    try:
        return client.send(method, path, body)
    finally:
        client.close()


def route_set(table: Path, *options: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["route", "set", f"--table={table}", *options])


# Weights and sticky routing ------------------------------------------------------------------


def test_weights_split_traffic_within_statistical_bounds(servers, router) -> None:  # type: ignore[no-untyped-def]
    routed = router(table_document(servers, {"v1": 70, "v2": 30, "v3": 0}), "--seed=7")
    client = Client(routed.address)
    served: Counter[str] = Counter()
    for n in range(1000):
        status, version, answer = client.infer(n)
        assert status == 200
        # The header names the version that really answered: its server says so too.
        assert answer["model_version"] == version
        served[version] += 1
    client.close()
    assert served["v3"] == 0  # deployed at weight 0: no traffic at all
    # 30% of 1000, within 4.5 standard deviations of a binomial draw.
    assert abs(served["v2"] - 300) <= 4.5 * math.sqrt(1000 * 0.3 * 0.7), served
    assert served["v1"] + served["v2"] == 1000
    assert routed.status()["served"] == {"v1": served["v1"], "v2": served["v2"]}


def test_sticky_header_keeps_each_user_on_one_version(servers, router) -> None:  # type: ignore[no-untyped-def]
    routed = router(table_document(servers, {"v1": 50, "v2": 50}, sticky_header="X-User"))
    client = Client(routed.address)

    def versions_of_users() -> dict[str, str]:
        seen: dict[str, set[str | None]] = {}
        for user in range(100):
            for attempt in range(3):
                status, version, _ = client.infer(attempt, {"x-user": f"user-{user}"})
                assert status == 200
                seen.setdefault(f"user-{user}", set()).add(version)
        assert all(len(v) == 1 for v in seen.values()), seen  # the same version, always
        return {user: next(iter(v)) for user, v in seen.items()}  # type: ignore[misc]

    before = versions_of_users()
    assert 25 <= Counter(before.values())["v1"] <= 75  # users spread over both versions
    # Without the header a request is still answered, by the weights.
    assert client.infer()[0] == 200

    changed = route_set(routed.table, "--weights=v1=60,v2=40")
    assert changed.exit_code == 0, changed.output
    routed.wait_in_force()
    after = versions_of_users()
    moved = {user for user in before if before[user] != after[user]}
    # v1's share grew: some users moved from v2 to v1, and nobody the other way.
    assert moved
    assert all(before[user] == "v2" and after[user] == "v1" for user in moved)
    client.close()


# Blue-green ----------------------------------------------------------------------------------


def test_blue_green_switch_under_load_fails_nothing(servers, router) -> None:  # type: ignore[no-untyped-def]
    routed = router(table_document(servers, {"v1": 100, "v2": 0}))
    answers: list[tuple[float, float, int, str | None]] = []  # start, end, status, version
    running = threading.Event()
    running.set()

    def load() -> None:
        client = Client(routed.address)
        while running.is_set():
            started = time.monotonic()
            status, version, _ = client.infer(len(answers))
            answers.append((started, time.monotonic(), status, version))
        client.close()

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    renamed = time.monotonic()
    switched = route_set(routed.table, "--weights=v2=100")
    assert switched.exit_code == 0, switched.output
    in_force = routed.wait_in_force()
    time.sleep(0.5)
    running.clear()
    for worker in workers:
        worker.join()

    assert answers
    assert [a for a in answers if a[2] != 200] == []  # not one request failed
    assert {a[3] for a in answers if a[1] < renamed} == {"v1"}
    # Once the new table is in force, v1 (now at weight 0) answers nothing.
    after = [a[3] for a in answers if a[0] > in_force]
    assert after
    assert set(after) == {"v2"}
    assert in_force - renamed < 1.0  # the router checks its table every 50 ms
    assert "in force: v1=0 v2=100" in routed.log


# Mirroring -----------------------------------------------------------------------------------


def test_mirror_of_the_same_model_agrees_and_clients_see_only_live(servers, router) -> None:  # type: ignore[no-untyped-def]
    routed = router(table_document(servers, {"v1": 100, "v2": 0},
                                   mirror={"version": "v2", "percent": 100}))  # fmt: skip
    client = Client(routed.address)
    for n in range(50):
        status, version, answer = client.infer(n, {"x-request-id": f"r{n}"})
        assert (status, version, answer["model_version"]) == (200, "v1", "v1")
    client.close()
    records = routed.wait_records(50)
    assert len(records) == 50
    assert {r["id"] for r in records} == {f"r{n}" for n in range(50)}
    assert all(r["live"] == "v1" and r["mirror"] == "v2" for r in records)
    assert all(r["mirror_status"] == 200 and r["agree"] is True for r in records)
    summary = CliRunner().invoke(main, ["route", "mirror-summary", f"--table={routed.table}"])
    assert summary.exit_code == 0, summary.output
    figures = json.loads(summary.output)
    assert figures["requests"] == 50
    assert figures["agreement_rate"] == 1.0
    assert figures["mirror_error_rate"] == 0.0
    assert figures["dropped"] == 0
    for side in ("live_latency_ms", "mirror_latency_ms"):
        assert 0 < figures[side]["p50"] <= figures[side]["p95"]


def test_mirror_of_another_model_disagrees(servers, router) -> None:  # type: ignore[no-untyped-def]
    routed = router(table_document(servers, {"v1": 100, "v3": 0},
                                   mirror={"version": "v3", "percent": 100}))  # fmt: skip
    client = Client(routed.address)
    for n in range(24):
        status, version, _ = client.infer(n)
        assert (status, version) == (200, "v1")
    client.close()
    assert len(routed.wait_records(24)) == 24
    summary = CliRunner().invoke(
        main, ["route", "mirror-summary", f"--table={routed.table}", "--version=v3"]
    )
    figures = json.loads(summary.output)
    assert figures["requests"] == 24
    assert figures["mirror_error_rate"] == 0.0  # v3 answered every copy ...
    assert figures["agreement_rate"] < 1.0  # ... and not always as v1 did


def test_mirror_samples_the_percent_of_requests(servers, router) -> None:  # type: ignore[no-untyped-def]
    quarter = table_document(servers, {"v1": 100, "v2": 0}, mirror={"version": "v2", "percent": 25})
    routed = router(quarter, "--seed=3")
    client = Client(routed.address)
    for n in range(400):
        assert client.infer(n)[0] == 200
    client.close()
    time.sleep(0.5)  # copies still queued are sent by then; none will follow
    mirrored = len(routed.wait_records(0))
    assert abs(mirrored - 100) <= 4.5 * math.sqrt(400 * 0.25 * 0.75), mirrored


def test_a_killed_mirror_never_affects_clients(servers, router, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    shadow = serve(train(datasets["iris"], tmp_path / "m", "logistic-regression", "{}"), "v9",
                   tmp_path / "v9").wait()  # fmt: skip
    try:
        backends = {"v1": servers["v1"], "v9": shadow.url}
        routed = router(table_document(backends, {"v1": 100, "v9": 0},
                                       mirror={"version": "v9", "percent": 100}))  # fmt: skip
        client = Client(routed.address)
        for n in range(10):
            assert client.infer(n)[:2] == (200, "v1")
        assert len(routed.wait_records(10)) == 10
        shadow.kill()
        for n in range(40):
            assert client.infer(n)[:2] == (200, "v1")
        client.close()
    finally:
        shadow.kill()
    records = routed.wait_records(50)
    assert len(records) == 50
    failed = records[10:]
    assert all(r["mirror_status"] is None and r["agree"] is False for r in failed)
    assert all("refused" in r["mirror_error"] or "failed" in r["mirror_error"] for r in failed)
    summary = CliRunner().invoke(main, ["route", "mirror-summary", f"--table={routed.table}"])
    assert json.loads(summary.output)["mirror_error_rate"] == 0.8


# Failures and health --------------------------------------------------------------------------


def test_a_backend_that_refuses_is_a_502_naming_it_never_retried(servers, router) -> None:  # type: ignore[no-untyped-def]
    with refused_url() as dead:
        routed = router(table_document({"v1": dead, "v2": servers["v2"]}, {"v1": 50, "v2": 50}))
        client = Client(routed.address)
        seen = Counter()
        for n in range(40):
            status, version, answer = client.infer(n)
            seen[(status, version)] += 1
            if status == 502:
                assert version == "v1"
                assert answer["error"].startswith(f"version v1 ({dead}): connection refused")
        # A request sent to v1 is not sent again to v2: the client gets the 502.
        assert set(seen) == {(502, "v1"), (200, "v2")}, seen
        client.close()
        only_dead = router(table_document({"v1": dead, "v2": servers["v2"]}, {"v1": 100}))
        assert call(only_dead.address, "GET", "/v2/health/live")[0] == 200
        # v2 is up, but has no traffic: the deployment is not ready.
        assert call(only_dead.address, "GET", "/v2/health/ready")[::2] == (503, {"ready": False})
        assert call(only_dead.address, "GET", "/v2/models/iris/ready")[0] == 503


def test_health_and_metadata_answer_from_the_live_side(servers, router) -> None:  # type: ignore[no-untyped-def]
    routed = router(table_document(servers, {"v1": 0, "v2": 100}))
    status, version, metadata = call(routed.address, "GET", "/v2/models/iris")
    assert (status, version, metadata["versions"]) == (200, "v2", ["v2"])
    assert call(routed.address, "GET", "/v2/models/iris/ready")[::2] == (
        200, {"name": "iris", "ready": True}
    )  # fmt: skip
    assert call(routed.address, "GET", "/v2/health/ready")[::2] == (200, {"ready": True})


def test_chunked_and_continue_requests_are_relayed(servers, router) -> None:  # type: ignore[no-untyped-def]
    routed = router(table_document(servers, {"v1": 100}))
    connection = http.client.HTTPConnection(*routed.address, timeout=10)
    connection.request("POST", "/v2/models/iris/infer", body=iter([infer_body()[:20],
                       infer_body()[20:]]), encode_chunked=True)  # fmt: skip
    response = connection.getresponse()
    assert (response.status, response.getheader("x-model-version")) == (200, "v1")
    assert json.loads(response.read())["outputs"]
    connection.close()
    import socket

    with socket.create_connection(routed.address, timeout=10) as sock:
        body = infer_body()
        sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))  # fmt: skip
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        reply = b""
        while b'"outputs"' not in reply:
            reply += sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")


# The table: bad input changes nothing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        (["--weights=v1=90,v2=20"], "--weights='v1=90,v2=20': the weights sum to 110, not 100"),
        (["--weights=v1=50,v9=50"], "--weights='v9=50': unknown version (known: v1, v2)"),
        (["--weights=v1=50.5,v2=49.5"], "--weights='v1=50.5,v2=49.5': each item is VERSION"),
        (["--mirror=v9:10"], "--mirror='v9:10': unknown version"),
        (["--mirror=v1:10"], "v1 has weight 100: a mirror gets copies only"),
        (["--mirror=v2:150"], "--mirror='v2:150': the percent is a number from 0 to 100"),
        (["--mirror=v2"], "--mirror='v2': must be VERSION:PERCENT"),
        (["--sticky-header=x user"], "--sticky-header='x user': must be empty or a header"),
        (["--backend=v3=https://127.0.0.1:1"], "--backend='v3=https://127.0.0.1:1'"),
        ([], "give at least one of --weights"),
    ],
)
def test_bad_route_set_exits_2_and_leaves_the_table_as_it_was(
    tmp_path: Path, options: list[str], phrase: str
) -> None:
    table = tmp_path / "table.json"
    table.write_text(
        table_document({"v1": "http://127.0.0.1:1", "v2": "http://127.0.0.1:2"}, {"v1": 100})
    )
    before = (table.read_bytes(), os.stat(table).st_ino, os.stat(table).st_mtime_ns)
    refused = route_set(table, *options)
    assert refused.exit_code == 2, refused.output
    assert phrase in refused.output
    assert (table.read_bytes(), os.stat(table).st_ino, os.stat(table).st_mtime_ns) == before
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]  # no temporary left


def test_route_set_rewrites_the_table_whole(tmp_path: Path) -> None:
    table = tmp_path / "table.json"
    table.write_text(table_document({"v1": "http://127.0.0.1:1"}, {"v1": 100}))
    changed = route_set(table, "--backend=v2=http://127.0.0.1:2", "--weights=v1=90,v2=10",
                        "--sticky-header=x-user")  # fmt: skip
    assert changed.exit_code == 0, changed.output
    assert json.loads(table.read_text()) == {
        "model": "iris",
        "backends": {"v1": "http://127.0.0.1:1", "v2": "http://127.0.0.1:2"},
        "weights": {"v1": 90, "v2": 10},
        "sticky_header": "x-user",
        "mirror": None,
    }
    mirrored = route_set(table, "--weights=v1=100", "--mirror=v2:12.5")
    assert mirrored.exit_code == 0, mirrored.output
    assert json.loads(table.read_text())["mirror"] == {"version": "v2", "percent": 12.5}


def test_a_bad_table_stops_the_router_from_starting_or_changing(servers, router, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.json"
    bad.write_text(table_document(servers, {"v1": 60, "v2": 60}))
    started = subprocess.run(
        [CLI, "route", "serve", f"--table={bad}", "--port=0"], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert started.returncode == 2
    assert "--weights='v1=60,v2=60': the weights sum to 120, not 100" in started.stderr

    routed = router(table_document(servers, {"v1": 100}))
    digest = routed.status()["table_digest"]
    routed.table.write_text('{"model": "iris", "backends": {}')  # cut short, as by a bad editor
    os.kill(routed.process.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "keeping the table in force" not in routed.log:
        assert time.monotonic() < deadline, routed.log
        time.sleep(0.02)  # a poll interval: what is waited for is the log line
    assert routed.status()["table_digest"] == digest
    assert call(routed.address, "POST", "/v2/models/iris/infer", infer_body())[:2] == (200, "v1")
