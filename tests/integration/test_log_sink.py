"""tekton-mlops log-sink: KServe's payload-logger CloudEvents in, payload-log lines out.

The sink is a real process on 127.0.0.1; events are posted over HTTP exactly as KServe's
agent posts them (tests/integration/kserve_logger.py); the lines are read from the files it
wrote, or from the moto S3 server it uploaded them to, after SIGTERM.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI
from tests.integration.kserve_logger import (
    REQUEST,
    RESPONSE,
    Sink,
    answer,
    event_headers,
    go_time,
    post,
)
from tests.integration.routing import infer_body
from tests.integration.test_payload_log import line_problems

pytestmark = pytest.mark.integration

#: What serve --log-payloads writes for every record, and what KServe adds beside it.
SERVE_ENVELOPE = {
    "specversion", "id", "type", "source", "time", "datacontenttype",
    "inferenceservicename", "endpoint", "data",
}  # fmt: skip
KSERVE_EXTRA = {"namespace", "component", "metadata"}
SECRETS = {"Authorization": "Bearer tok-9c1e77a0", "Cookie": "session=ck-42b1d0"}
T0 = 1_800_000_000.25


@pytest.fixture
def sinks() -> Any:
    started: list[Sink] = []

    def start(target: str | Path, *options: str) -> Sink:
        started.append(Sink(str(target), *options))
        return started[-1]

    yield start
    for sink in started:
        sink.kill()


def records(folder: Path) -> list[dict[str, Any]]:
    """Every record of the closed files, in file order; each file must end with a whole line."""
    found = []
    for path in sorted(folder.glob("*.jsonl")):
        text = path.read_text()
        assert text.endswith("\n"), f"{path.name} ends mid-line"
        found += [json.loads(line) for line in text.splitlines()]
    return found


def test_binary_and_structured_events_become_payload_log_lines(sinks, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "logs"
    sink = sinks(folder)
    metadata = {"X-Request-Id": ["7d0c9f5e-live-1"]}
    request = event_headers(REQUEST, "ev-1", "iris-blue", T0, metadata)
    assert post(sink.url, infer_body(2), {**request, **SECRETS}) == (202, {})
    response = event_headers(RESPONSE, "ev-1", "iris-blue", T0 + 0.002, metadata)
    reply = answer([0.1, 0.2, 0.7], 2)
    assert post(sink.url, reply, response)[0] == 202
    structured = {
        "specversion": "1.0", "id": "ev-2", "type": REQUEST, "source": "http://localhost:9081/",
        "time": "2027-01-15T08:00:00.5+01:00", "datacontenttype": "application/json",
        "inferenceservicename": "iris-green", "metadata": '{"X-Request-Id":["7d0c9f5e-live-1"]}',
        "data": json.loads(infer_body(2)),
    }  # fmt: skip
    headers = {"Content-Type": "application/cloudevents+json; charset=utf-8", **SECRETS}
    assert post(sink.url, json.dumps(structured).encode(), headers)[0] == 202
    # A payload that is not JSON is kept as the bytes it is.
    binary = event_headers(REQUEST, "ev-3", "iris-blue", T0 + 1, {})
    assert post(sink.url, b"\x00\xffraw", {**binary, "Content-Type": "application/octet-stream"}
                )[0] == 202  # fmt: skip
    assert sink.stop() == 143
    assert "stopped: 4 event(s) accepted, 0 refused" in sink.log

    assert not list(folder.glob("*.partial"))
    first, second, third, fourth = records(folder)
    assert set(first) == SERVE_ENVELOPE | KSERVE_EXTRA
    assert (first["id"], first["type"], first["inferenceservicename"]) == (
        "ev-1", REQUEST, "iris-blue",
    )  # fmt: skip
    assert first["time"] == go_time(T0)  # as the agent stamped it, nanoseconds and all
    assert first["metadata"] == metadata  # percent-decoded, an object again
    assert (first["namespace"], first["component"], first["endpoint"]) == (
        "models", "predictor", "default",
    )  # fmt: skip
    assert first["data"] == json.loads(infer_body(2))
    assert (second["type"], second["data"]) == (RESPONSE, json.loads(reply))
    assert (third["inferenceservicename"], third["time"]) == ("iris-green", structured["time"])
    assert third["metadata"] == metadata
    assert fourth["data_base64"] == "AP9yYXc="
    assert "data" not in fourth
    written = b"".join(p.read_bytes() for p in folder.iterdir())
    for name, value in SECRETS.items():
        assert value.encode() not in written
        assert name.lower().encode() not in written.lower()
    assert "tok-9c1e77a0" not in sink.log


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"Ce-Id": None}, "missing attribute(s): id"),
        ({"Ce-Inferenceservicename": None, "Ce-Source": None},
         "missing attribute(s): source, inferenceservicename"),
        ({"Ce-Type": "com.example.other"}, "type: 'com.example.other' is neither"),
        ({"Ce-Specversion": "0.3"}, "specversion: '0.3' is not 1.0"),
        ({"Ce-Time": "yesterday"}, "time: 'yesterday' is not an RFC 3339 timestamp"),
        ({"Ce-Time": "2027-01-15T08:00:00"}, "has no time zone"),
        ({"Ce-Metadata": "X-Request-Id=1"}, "metadata: not JSON"),
        ({"Ce-Metadata": "[1]"}, "metadata: not a JSON object"),
    ],
)  # fmt: skip
def test_a_malformed_event_is_refused_naming_what_is_wrong(  # type: ignore[no-untyped-def]
    sinks, tmp_path, change, named
) -> None:
    folder = tmp_path / "logs"
    sink = sinks(folder)
    headers = event_headers(REQUEST, "ev-1", "iris-blue", T0, {"X-Request-Id": ["r1"]})
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    status, reply = post(sink.url, infer_body(), headers)
    assert status == 400
    assert named in reply["error"]
    assert sink.stop() == 143
    assert records(folder) == []


def test_structured_events_that_are_not_events_are_refused(sinks, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sink = sinks(tmp_path / "logs")
    structured = {"Content-Type": "application/cloudevents+json"}
    status, reply = post(sink.url, b"[1, 2]", structured)
    assert (status, reply["error"]) == (400, "not a KServe logger event: the body is not a JSON "
                                             "object (application/cloudevents+json)")  # fmt: skip
    event = {"specversion": "1.0", "id": "e", "type": REQUEST, "source": "s", "data": {}}
    status, reply = post(sink.url, json.dumps(event).encode(), structured)
    assert (status, reply["error"]) == (
        400, "not a KServe logger event: missing attribute(s): inferenceservicename",
    )  # fmt: skip
    assert sink.stop() == 143
    assert records(tmp_path / "logs") == []


def test_bodies_are_bounded_and_need_a_length(sinks, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import http.client

    sink = sinks(tmp_path / "logs", "--max-bytes=1000")
    headers = event_headers(REQUEST, "ev-1", "iris-blue", T0, {})
    status, reply = post(sink.url, b"{" + b" " * 2000 + b"}", headers)
    assert status == 413
    assert reply["error"] == "an event of 2002 bytes is over the limit of 1000"
    host, port = sink.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("POST", "/", body=iter([b"{}"]), headers=headers, encode_chunked=True)
    chunked = connection.getresponse()
    assert chunked.status == 411
    connection.close()
    assert post(sink.url, b"{}", headers)[0] == 202  # still serving
    assert sink.stop() == 143
    assert [r["id"] for r in records(tmp_path / "logs")] == ["ev-1"]


def test_rotation_keeps_whole_lines_while_agents_post_at_once(sinks, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "logs"
    sink = sinks(folder, "--rotate-bytes=4000")
    problems: list[str] = []
    done = threading.Event()

    def reader() -> None:
        # A reader meanwhile, as check-mirror polls: a closed file is always whole.
        while not done.is_set():
            for path in folder.glob("*.jsonl"):
                problems.extend(line_problems(path))

    def agent(service: str) -> None:
        for i in range(30):
            headers = event_headers(REQUEST, f"{service}-{i}", service, T0 + i, {})
            assert post(sink.url, infer_body(i), headers)[0] == 202

    watcher = threading.Thread(target=reader)
    watcher.start()
    agents = [threading.Thread(target=agent, args=(f"iris-{n}",)) for n in range(4)]
    for thread in agents:
        thread.start()
    for thread in agents:
        thread.join()
    assert sink.stop() == 143
    done.set()
    watcher.join()

    assert problems == []
    files = sorted(folder.glob("*.jsonl"))
    assert len(files) >= 5
    assert all(p.stat().st_size <= 4000 for p in files)
    assert sorted(r["id"] for r in records(folder)) == sorted(
        f"iris-{n}-{i}" for n in range(4) for i in range(30)
    )
    assert "payload log: 120 record(s) written, 0 dropped" in sink.log


def test_events_are_uploaded_under_an_s3_prefix(  # type: ignore[no-untyped-def]
    sinks, s3, s3_server, bucket, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the files are staged
    sink = sinks(f"s3://{bucket}/payloads/kserve", "--rotate-bytes=1000")
    for i in range(12):
        headers = event_headers(
            REQUEST, f"ev-{i}", "iris-blue", T0 + i, {"X-Request-Id": [f"r{i}"]}
        )
        assert post(sink.url, infer_body(i), headers)[0] == 202
    assert sink.stop() == 143

    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert len(keys) >= 3
    assert all(re.fullmatch(r"payloads/kserve/payloads-\d{8}T\d{12}Z-\d+-\d{6}\.jsonl", k)
               for k in keys)  # fmt: skip
    lines = []
    for key in keys:
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        assert text.endswith("\n")
        lines += [json.loads(line) for line in text.splitlines()]
    assert [r["metadata"]["X-Request-Id"] for r in lines] == [[f"r{i}"] for i in range(12)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("tekton-mlops-payloads-")]


def test_a_target_that_cannot_be_written_exits_2_naming_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    blocker = tmp_path / "file"
    blocker.write_text("a file where the log folder should be")
    for target, named in ((blocker / "logs", "is a file, not a directory"),
                          ("s3:///prefix", "no bucket in the S3 URI")):  # fmt: skip
        done = subprocess.run([CLI, "log-sink", f"--dir={target}", "--port=0"],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "--dir" in done.stderr
        assert named in done.stderr
