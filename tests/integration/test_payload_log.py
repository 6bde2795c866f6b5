"""serve --log-payloads: request and response records as KServe's logger emits them.

Every server is a real ``tekton-mlops serve`` process; records are read from the files it
wrote (or from the moto S3 server it uploaded to) after SIGTERM, the way a drift job
or a mirroring comparison reads them.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import resource
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_serving import Server, train

pytestmark = pytest.mark.integration

ENVELOPE = {
    "specversion", "id", "type", "source", "time", "datacontenttype",
    "inferenceservicename", "endpoint", "data",
}  # fmt: skip
REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
ROW = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}


@pytest.fixture(scope="module")
def model(datasets, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("payload-model")
    return train(datasets["iris"], root / "model", "logistic-regression", root / "r")


@pytest.fixture
def start(model) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    started: list[Server] = []

    def run(*options: str) -> Server:
        started.append(Server(model, "iris", *options))
        return started[-1]

    try:
        yield run
    finally:
        for server in started:
            server.kill()


def post(server: Server, body: Any, headers: dict[str, str] | None = None,
         path: str = "/v2/models/iris/infer") -> tuple[int, Any]:  # fmt: skip
    connection = http.client.HTTPConnection(*server.address, timeout=30)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection.request("POST", path, body=raw,
                       headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data)


def records(folder: Path) -> list[dict[str, Any]]:
    """Every record of the closed files, in file order; each line must be whole JSON."""
    found = []
    for path in sorted(folder.glob("*.jsonl")):
        text = path.read_text()
        assert text.endswith("\n"), f"{path.name} ends mid-line"
        found += [json.loads(line) for line in text.splitlines()]
    return found


def stopped(server: Server) -> str:
    assert server.stop() == 143
    return server.log


def test_requests_and_responses_are_recorded_with_their_ids(start, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "payloads"
    server = start(f"--log-payloads={folder}")
    began = time.time()
    replies = {}
    for i in range(5):
        replies[f"req-{i}"] = post(server, {**ROW, "id": f"body-{i}"}, {"X-Request-Id": f"req-{i}"})
    replies["ce-7"] = post(server, ROW, {"Ce-Id": "ce-7"})
    replies[""] = post(server, ROW)  # no id header: a new uuid4
    versioned = post(server, ROW, {"x-request-id": "v1"}, path="/v2/models/iris/versions/1/infer")
    refused = post(server, {"inputs": [{"name": "Y"}]}, {"x-request-id": "bad"})
    assert refused[0] == 400
    assert post(server, b"not json", {"x-request-id": "garbage"})[0] == 400
    log = stopped(server)
    ended = time.time()

    assert not list(folder.glob("*.partial")), "a file was left open"
    found = records(folder)
    assert all(set(r) == ENVELOPE for r in found)
    assert {(r["specversion"], r["source"], r["datacontenttype"], r["inferenceservicename"])
            for r in found} == {("1.0", server.url + "/", "application/json", "iris")}  # fmt: skip
    for r in found:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", r["time"])
        assert began <= datetime.fromisoformat(r["time"]).timestamp() <= ended
    by_id: dict[str, dict[str, Any]] = {}
    for r in found:
        assert r["type"] not in by_id.setdefault(r["id"], {}), "a record twice"
        by_id[r["id"]][r["type"]] = r
    generated = [i for i in by_id if i.count("-") == 4]
    assert len(generated) == 1
    assert uuid.UUID(generated[0]).version == 4
    for rid, (status, reply) in replies.items():
        pair = by_id[rid or generated[0]]
        assert status == 200
        assert pair[REQUEST]["data"] == (
            {**ROW, "id": f"body-{rid[4:]}"} if rid.startswith("req") else ROW
        )
        assert pair[RESPONSE]["data"] == reply
        assert pair[REQUEST]["endpoint"] == pair[RESPONSE]["endpoint"] == "/v2/models/iris/infer"
    assert by_id["v1"][RESPONSE]["data"] == versioned[1]
    assert by_id["v1"][REQUEST]["endpoint"] == "/v2/models/iris/versions/1/infer"
    # A request the model refused is recorded, its 400 answer is not; a body that is not
    # JSON is not a V2 request and leaves no record.
    assert set(by_id["bad"]) == {REQUEST}
    assert "garbage" not in by_id
    assert len(found) == 2 * 8 + 1
    assert "payload log: 17 record(s) written, 0 dropped (queue full), 0 skipped" in log


def kept(record_id: str, rate: float) -> bool:
    """The documented sampling rule, worked out here: sha256 of the id, first 8 bytes."""
    return int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:8], "big") < rate * 2**64


def test_sampling_and_modes(start, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sampled = start(f"--log-payloads={tmp_path / 'sampled'}", "--log-sample-rate=0.25")
    requests_only = start(f"--log-payloads={tmp_path / 'requests'}", "--log-mode=request")
    responses_only = start(f"--log-payloads={tmp_path / 'responses'}", "--log-mode=response")
    ids = [f"id-{i}" for i in range(400)]
    for rid in ids:
        post(sampled, ROW, {"x-request-id": rid})
    for rid in ids[:10]:
        post(requests_only, ROW, {"x-request-id": rid})
        post(responses_only, ROW, {"x-request-id": rid})
    for server in (sampled, requests_only, responses_only):
        stopped(server)

    found = records(tmp_path / "sampled")
    logged = {r["id"] for r in found}
    assert logged == {rid for rid in ids if kept(rid, 0.25)}
    assert 70 <= len(logged) <= 130  # 400 x 0.25 = 100, a binomial spread of about 9
    assert sorted(r["type"] for r in found if r["id"] == min(logged)) == [REQUEST, RESPONSE]
    assert [r["type"] for r in records(tmp_path / "requests")] == [REQUEST] * 10
    assert [r["type"] for r in records(tmp_path / "responses")] == [RESPONSE] * 10


def test_no_header_but_the_request_id_is_ever_written(start, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "payloads"
    server = start(f"--log-payloads={folder}")
    secrets = {
        "Authorization": "Bearer tok-3f9a1c7e5b",
        "Cookie": "session=ck-77d0e2b1a4",
        "X-Api-Key": "key-c0ffee1234",
        "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
    }
    for i in range(3):
        assert post(server, ROW, {**secrets, "x-request-id": f"r{i}"})[0] == 200
    stopped(server)
    written = b"".join(p.read_bytes() for p in folder.iterdir())
    assert written.count(b'"id":"r') == 6
    for name, value in secrets.items():
        assert value.encode() not in written
        assert value.split()[-1].split("=")[-1].encode() not in written
        assert name.lower().encode() not in written.lower()


def line_problems(path: Path) -> list[str]:
    """What makes a closed log file not whole: a last line cut off, a line not JSON."""
    text = path.read_text()
    problems = [] if text.endswith("\n") else [f"{path.name} ends mid-line"]
    for line in text.splitlines():
        try:
            json.loads(line)
        except ValueError as exc:
            problems.append(f"{path.name}: {exc}")
    return problems


def test_rotation_keeps_whole_lines_and_skips_large_records(start, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "payloads"
    server = start(f"--log-payloads={folder}", "--log-rotate-bytes=3000", "--log-max-bytes=4000")
    seen_closed: list[str] = []
    problems: list[str] = []
    stop_reading = threading.Event()

    def reader() -> None:
        # A reader running meanwhile, as a drift job would: a closed file is always whole.
        while not stop_reading.is_set():
            for path in folder.glob("*.jsonl"):
                problems.extend(line_problems(path))
                seen_closed.append(path.name)

    watcher = threading.Thread(target=reader)
    watcher.start()

    def client(offset: int) -> None:
        for i in range(25):
            assert post(server, ROW, {"x-request-id": f"c{offset}-{i}"})[0] == 200

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    big = {**ROW, "parameters": {"note": "x" * 5000}}  # a large request, a small reply
    assert post(server, big, {"x-request-id": "big"})[0] == 200
    log = stopped(server)
    stop_reading.set()
    watcher.join()

    assert problems == []
    assert seen_closed, "no file was closed while the server ran"
    found = records(folder)
    assert len(found) == 200 + 1  # the big request's small reply is logged, not it
    assert {r["id"] for r in found if r["type"] == REQUEST} == {
        f"c{n}-{i}" for n in range(4) for i in range(25)
    }
    files = sorted(folder.glob("*.jsonl"))
    assert len(files) >= 10
    assert all(p.stat().st_size <= 3000 for p in files)
    assert "payload log: 201 record(s) written, 0 dropped (queue full), 1 skipped" in log


def test_records_are_uploaded_to_s3(start, s3, s3_server, bucket, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the files are staged
    server = start(f"--log-payloads=s3://{bucket}/payloads/iris", "--log-rotate-bytes=2000")
    for i in range(20):
        assert post(server, ROW, {"x-request-id": f"s{i}"})[0] == 200
    log = stopped(server)

    listed = s3.list_objects_v2(Bucket=bucket, Prefix="payloads/iris/")["Contents"]
    keys = sorted(item["Key"] for item in listed)
    assert len(keys) >= 5
    assert all(
        re.fullmatch(r"payloads/iris/payloads-\d{8}T\d{12}Z-\d+-\d{6}\.jsonl", k) for k in keys
    )
    lines = []
    for key in keys:
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        assert text.endswith("\n")
        lines += [json.loads(line) for line in text.splitlines()]
    assert sorted(r["id"] for r in lines if r["type"] == RESPONSE) == sorted(
        f"s{i}" for i in range(20)
    )
    assert "file(s) not uploaded" not in log
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("tekton-mlops-payloads-")]


def test_an_unwritable_directory_stops_the_log_not_serving(start, tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the log directory's parent should be")
    folder = blocker / "payloads"
    server = start(f"--log-payloads={folder}")
    # Over two retry periods: the failure is found on the first record and retried.
    deadline = time.monotonic() + 2.5
    sent = 0
    while time.monotonic() < deadline:
        assert post(server, ROW, {"x-request-id": f"u{sent}"})[0] == 200
        sent += 1
    server.wait_for("payload log: cannot write to")
    # The directory becomes writable: records go out again, and that is said once.
    blocker.unlink()
    folder.mkdir(parents=True)
    time.sleep(1.1)  # past the retry period, so the next record is tried
    for i in range(3):
        assert post(server, ROW, {"x-request-id": f"w{i}"})[0] == 200
    server.wait_for("payload log: writing to")
    log = stopped(server)
    assert log.count("payload log: cannot write to") == 1, log
    assert "(Not a directory)" in log
    assert log.count("payload log: writing to") == 1
    found = records(folder)
    assert {r["id"] for r in found} >= {"w0", "w1", "w2"}
    # Every record of the failing time is lost, and counted (one still queued when the
    # directory came back may have made it).
    late = sum(r["id"].startswith("u") for r in found)
    lost = int(re.search(r"(\d+) lost to write failures", log)[1])  # type: ignore[index]
    assert lost + late == 2 * sent
    assert lost >= 2 * sent - 2


def test_a_full_disk_leaves_whole_lines(start, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "payloads"
    server = start(f"--log-payloads={folder}")
    # A file size limit on the server: its writes fail with EFBIG past 5000 bytes, as they
    # would with ENOSPC on a full volume (Python ignores SIGXFSZ, so write() fails instead).
    resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (5000, 5000))
    for i in range(40):
        assert post(server, ROW, {"x-request-id": f"f{i}"})[0] == 200
        time.sleep(0.01)  # records in several writes, the way traffic comes
    log = stopped(server)
    assert log.count("payload log: cannot write to") == 1, log
    assert "File too large" in log
    found = records(folder)  # whole lines only: a cut line would not parse
    assert 0 < len(found) < 80
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 5000
    assert f"{len(found)} record(s) written" in log
    lost = int(re.search(r"(\d+) lost to write failures", log)[1])  # type: ignore[index]
    assert len(found) + lost == 80
