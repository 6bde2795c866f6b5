"""tekton-mlops serve: the Open Inference Protocol over onnxruntime, end to end over HTTP.

Every server is a real ``tekton-mlops serve`` process on 127.0.0.1 with port 0,
its URL read back from its log; the log is collected line by line, so a test
waits for the line it expects instead of sleeping, and can check that each
hostile request cost exactly one line and never a traceback.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from tekton_mlops.cli import main
from tekton_mlops.serving.measure import measure_large_request, repeated_rows_request
from tests.conftest import CLI

pytestmark = pytest.mark.integration


def train(data: Path, out: Path, estimator: str, results: Path) -> Path:
    outcome = CliRunner().invoke(
        main,
        ["train-model", f"--data={data}", "--target-column=target", f"--output={out}",
         f"--estimator={estimator}", '--hyperparameters={"n_estimators": 20}'
         if "forest" in estimator else "--hyperparameters={}", f"--results-dir={results}"],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    return out


@pytest.fixture(scope="session")
def iris_model(datasets, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("served")
    return train(datasets["iris"], root / "model", "random-forest-classifier", root / "r")


@pytest.fixture(scope="session")
def log_model(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """Y = log(X): NaN for a negative input, -inf for 0, finite elsewhere."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Log", ["X"], ["Y"])], "log",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 2])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("log") / "model.onnx"
    onnx.save(model, str(path))
    return path


class Server:
    """A ``tekton-mlops serve`` process; its log is read into ``lines`` as it comes."""

    def __init__(self, model: Path, name: str, *options: str) -> None:
        self.process = subprocess.Popen(
            [CLI, "serve", f"--model-path={model}", f"--model-name={name}", "--port=0",
             "--model-version=1", *options],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.lines: list[str] = []
        self.ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            started = self.wait_for(" at http://")
        except BaseException:
            self.kill()
            raise
        self.url = re.search(r"(http://[^/]+)/v2", started)[1]  # type: ignore[index]
        self.address = ("127.0.0.1", int(self.url.rsplit(":", 1)[1]))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, fragment: str, since: int = 0, timeout: float = 60.0) -> str:
        """The first log line from index ``since`` on that holds ``fragment``."""

        def found() -> str | None:
            return next((line for line in self.lines[since:] if fragment in line), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self.ended, timeout)
            line = found()
        if line is None:
            raise AssertionError(f"{fragment!r} was never logged:\n{self.log}")
        return line

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None):  # type: ignore[no-untyped-def]
        connection = http.client.HTTPConnection(*self.address, timeout=30)
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, json.loads(data) if data else None

    def stop(self, timeout: float = 60.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start(iris_model) -> Iterator[Callable[..., Server]]:  # type: ignore[no-untyped-def]
    """Start servers with options; each is stopped (killed if it must be) at the end."""
    started: list[Server] = []

    def run(*options: str, model: Path = iris_model, name: str = "iris") -> Server:
        started.append(Server(model, name, *options))
        return started[-1]

    try:
        yield run
    finally:
        for running in started:
            running.kill()


@pytest.fixture(scope="module")
def server(iris_model) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    running = Server(iris_model, "iris")
    try:
        yield running
    finally:
        running.kill()
    # Whatever the tests sent, the server never printed a traceback.
    assert "Traceback" not in running.log, running.log


def rows(datasets, count: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    table = np.genfromtxt(datasets["iris"], delimiter=",", skip_header=1)
    return table[:count, :-1].astype(np.float32)


def request(features: np.ndarray, input_name: str = "X") -> dict[str, Any]:
    return {
        "id": "req-1",
        "inputs": [
            {"name": input_name, "datatype": "FP32", "shape": list(features.shape),
             "data": features.reshape(-1).tolist()}
        ],
    }  # fmt: skip


def strict_json(data: bytes) -> Any:
    """json.loads, but NaN and Infinity (which json.loads accepts) are errors."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(data, parse_constant=refuse)


def exchange(server: Server, payload: bytes, ending: str = "") -> tuple[int | None, Any]:
    """Send raw bytes on a new connection; read until the server closes it.

    ``ending``: "" keeps the connection open, "close" shuts the writing side,
    "reset" aborts it with a TCP reset. Returns the status (None when no HTTP
    status line came) and the JSON body (None when there was none).
    """
    with socket.create_connection(server.address, timeout=30) as sock:
        sock.sendall(payload)
        if ending == "close":
            sock.shutdown(socket.SHUT_WR)
        elif ending == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return None, None
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    if not received:
        return None, None
    if not received.startswith(b"HTTP/"):  # http.server answers an unparseable line bare
        return None, strict_json(received)

    class Replay:
        def makefile(self, *_: Any) -> io.BytesIO:
            return io.BytesIO(received)

    response = http.client.HTTPResponse(Replay())  # type: ignore[arg-type]
    response.begin()
    body = response.read()
    return response.status, strict_json(body) if body else None


def test_health_and_metadata(server) -> None:  # type: ignore[no-untyped-def]
    assert server.call("GET", "/v2/health/live") == (200, {"live": True})
    assert server.call("GET", "/v2/health/ready") == (200, {"ready": True})
    assert server.call("GET", "/v2/models/iris/ready") == (200, {"name": "iris", "ready": True})
    status, metadata = server.call("GET", "/v2/models/iris")
    assert status == 200
    assert metadata["name"] == "iris"
    assert metadata["versions"] == ["1"]
    assert metadata["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ]


def test_predictions_equal_onnxruntime_in_process(server, iris_model, datasets) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    features = rows(datasets, 150)
    status, reply = server.call("POST", "/v2/models/iris/infer", request(features))
    assert status == 200, reply
    assert reply["model_name"] == "iris"
    assert reply["id"] == "req-1"
    outputs = {o["name"]: o for o in reply["outputs"]}
    # The server runs one intra-op thread per request; a session with the same setting gives
    # bit-identical results (more threads may sum a tree ensemble in another order, ~1e-7).
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(iris_model / "model.onnx"), options)
    labels, probabilities = session.run(["label", "probabilities"], {"X": features})
    assert outputs["label"]["datatype"] == "INT64"
    assert outputs["label"]["shape"] == [150]
    assert outputs["label"]["data"] == labels.tolist()
    assert outputs["probabilities"]["shape"] == [150, 3]
    served = np.asarray(outputs["probabilities"]["data"], dtype=np.float32).reshape(150, 3)
    np.testing.assert_array_equal(served, probabilities)
    # Asked for one output, only that one comes back; nested data is accepted too, short
    # (parsed by json) and long (decoded straight from the request text).
    for count in (2, 150):
        nested = request(features[:count])
        nested["inputs"][0]["data"] = features[:count].tolist()
        nested["outputs"] = [{"name": "label"}]
        status, reply = server.call("POST", "/v2/models/iris/infer", nested)
        assert status == 200
        assert [o["name"] for o in reply["outputs"]] == ["label"]
        assert reply["outputs"][0]["data"] == labels[:count].tolist()


def test_large_requests_decode_exactly_and_replies_stream(server, iris_model, datasets) -> None:  # type: ignore[no-untyped-def]
    """Over 64 KiB the request is parsed by the bounded parser; over 1 MiB the reply
    goes out chunked. Both give what json and onnxruntime give."""
    import onnxruntime as ort

    features = np.resize(rows(datasets, 150), (30000, 4))
    features[::7] *= -1.5  # negative values, and more digits than the CSV has
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(iris_model / "model.onnx"), options)
    labels, probabilities = session.run(["label", "probabilities"], {"X": features})
    for data in (features.reshape(-1).tolist(), features.tolist()):
        body = {"id": "big", "inputs": [{"name": "X", "datatype": "FP32",
                                         "shape": [30000, 4], "data": data}]}  # fmt: skip
        payload = json.dumps(body).encode()
        assert len(payload) > 1 << 20
        request_line = b"POST /v2/models/iris/infer HTTP/1.1\r\nConnection: close\r\n"
        status, reply = exchange(
            server, request_line + b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload)
        )
        assert status == 200, reply
        outputs = {o["name"]: o for o in reply["outputs"]}
        assert outputs["label"]["data"] == labels.tolist()
        served = np.asarray(outputs["probabilities"]["data"], dtype=np.float32)
        np.testing.assert_array_equal(served.reshape(30000, 3), probabilities)


BAD_REQUESTS = {
    # case: (path, body or raw bytes, status, phrase in the error)
    "unknown model": ("/v2/models/nope/infer", request(np.zeros((1, 4), np.float32)), 404,
                      "unknown model 'nope'"),
    "wrong shape": ("/v2/models/iris/infer", request(np.zeros((1, 3), np.float32)), 400,
                    "shape [1, 3], the model takes [-1, 4]"),
    "wrong rank": ("/v2/models/iris/infer", request(np.zeros((4,), np.float32)), 400,
                   "shape [4], the model takes [-1, 4]"),
    "wrong datatype": ("/v2/models/iris/infer",
                       {"inputs": [{"name": "X", "datatype": "INT64", "shape": [1, 4],
                                    "data": [1, 2, 3, 4]}]}, 400,
                       "datatype 'INT64', the model takes FP32"),
    "data count": ("/v2/models/iris/infer",
                   {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 4],
                                "data": [1.0, 2.0, 3.0, 4.0]}]}, 400, "4 values for shape [2, 4]"),
    "data count, long": ("/v2/models/iris/infer",
                         {"inputs": [{"name": "X", "datatype": "FP32", "shape": [5000, 4],
                                      "data": [1.5] * 20004}]}, 400,
                         "20004 values for shape [5000, 4] (20000 expected)"),
    "strings as FP32": ("/v2/models/iris/infer",
                        {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],
                                     "data": ["a", "b", "c", "d"]}]}, 400,
                        "FP32 data must be numbers"),
    "booleans as FP32, long": ("/v2/models/iris/infer",
                               {"inputs": [{"name": "X", "datatype": "FP32", "shape": [5000, 4],
                                            "data": [True] * 20000}]}, 400,
                               "FP32 data must be numbers"),
    "unknown input": ("/v2/models/iris/infer", request(np.zeros((1, 4), np.float32), "input"),
                      400, "unknown input 'input' (the model takes X)"),
    "no inputs": ("/v2/models/iris/infer", {"inputs": []}, 400, "'inputs' must be a non-empty"),
    "not JSON": ("/v2/models/iris/infer", b"{oops", 400, "the body is not JSON"),
    "not JSON, long": ("/v2/models/iris/infer",
                       b'{"inputs": [' + b"1.5, " * 20000 + b"1.5 1.5]}", 400,
                       "the body is not JSON: Expecting ',' delimiter"),
    "not UTF-8": ("/v2/models/iris/infer", b'{"id": "\xff\xfe"}', 400, "the body is not UTF-8"),
    "JSON not an object": ("/v2/models/iris/infer", [1, 2], 400, "must be a JSON object"),
    "id not a string": ("/v2/models/iris/infer", {**request(np.zeros((1, 4), np.float32)),
                                                  "id": [1]}, 400, "'id' must be a string"),
    "unknown output": ("/v2/models/iris/infer",
                       {**request(np.zeros((1, 4), np.float32)), "outputs": [{"name": "x"}]},
                       400, "unknown output(s) ['x']"),
    "output asked twice": ("/v2/models/iris/infer",
                           {**request(np.zeros((1, 4), np.float32)),
                            "outputs": [{"name": "label"}] * 2}, 400,
                           "an output is asked for more than once"),
    "shape over int64": ("/v2/models/iris/infer",
                         {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2**62, 4],
                                      "data": []}]}, 413,
                         f"hold {2**64} elements, over the limit of 16777216"),
    "unknown endpoint": ("/v2/models/iris/predict", {}, 404, "no such endpoint"),
    "unknown version": ("/v2/models/iris/versions/9/infer", request(np.zeros((1, 4), np.float32)),
                        404, "has no version '9'"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_malformed_requests_get_a_4xx_and_the_server_keeps_serving(server, case) -> None:  # type: ignore[no-untyped-def]
    path, body, expected, phrase = BAD_REQUESTS[case]
    raw = body if isinstance(body, bytes) else None
    status, reply = server.call("POST", path, None if raw else body, raw=raw)
    assert status == expected
    assert phrase in reply["error"]
    assert server.process.poll() is None
    assert server.call("GET", "/v2/health/ready")[0] == 200


def test_concurrent_requests_all_answered_correctly(server, datasets) -> None:  # type: ignore[no-untyped-def]
    features = rows(datasets, 150)
    _, expected = server.call("POST", "/v2/models/iris/infer", request(features))
    failures: list[str] = []

    def client(index: int) -> None:
        for _ in range(25):
            status, reply = server.call("POST", "/v2/models/iris/infer", request(features))
            if status != 200 or reply["outputs"] != expected["outputs"]:
                failures.append(f"client {index}: {status}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_deep_nesting_is_a_400_and_one_log_line(server) -> None:  # type: ignore[no-untyped-def]
    """Once a RecursionError that dropped the connection and printed a traceback."""
    tensor = b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": '
    for payload in (
        b"[" * 100_000,  # the bounded parser
        b"[" * 150 + b"]" * 150,  # a small body, but too many brackets for json's own parser
        tensor + b"[" * 100_000 + b"]" * 100_000 + b"}]}",
        b'{"a": ' * 5000 + b"1" + b"}" * 5000,
    ):
        since = len(server.lines)
        status, reply = server.call("POST", "/v2/models/iris/infer", raw=payload)
        assert (status, reply) == (400, {"error": "the JSON is nested deeper than 100 levels"})
        line = server.wait_for("nested deeper than 100 levels", since)
        assert line.startswith("serve: ")
        assert "-> 400" in line
    assert server.call("GET", "/v2/health/ready")[0] == 200
    assert "Traceback" not in server.log


def test_non_finite_outputs_are_null_and_every_reply_is_strict_json(start, log_model) -> None:  # type: ignore[no-untyped-def]
    """Written as bare NaN (not JSON) before; now as null, as KServe's server writes them."""
    running = start(model=log_model, name="log")
    # log(-1) = NaN, log(0) = -inf, log(NaN) = NaN, log(Infinity) = inf, 1e39 overflows FP32
    # to inf: every one of them is null; NaN and Infinity are accepted on the way in, as
    # Python's json and KServe accept them.
    small = b"[[-1.0, 0.0], [1.0, NaN], [Infinity, 1e39], [-Infinity, 1.0]]"
    expected = [None, None, 0.0, None, None, None, None, 0.0]
    # The bounded parser's path, and a reply over 1 MiB, sent chunked.
    long = b"[" + b", ".join([small[1:-1]] * 40000) + b"]"
    for data, repeat in ((small, 1), (long, 40000)):
        body = b'{"inputs": [{"name": "X", "datatype": "FP32", "shape": [%d, 2], "data": %b}]}'
        payload = body % (4 * repeat, data)
        status, reply = exchange(
            running,
            b"POST /v2/models/log/infer HTTP/1.1\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload),
        )
        assert status == 200, reply  # and strict_json parsed it
        (output,) = reply["outputs"]
        assert output["shape"] == [4 * repeat, 2]
        assert output["data"] == expected * repeat
    assert "Traceback" not in running.log
    assert "RuntimeWarning" not in running.log


def test_request_size_limits_are_413_before_the_body_is_read(start) -> None:  # type: ignore[no-untyped-def]
    running = start("--max-request-bytes=65536", "--max-elements=1000")
    # A gigabyte announced and never sent: the answer comes without waiting for it.
    status, reply = exchange(
        running, b"POST /v2/models/iris/infer HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n"
    )
    assert status == 413
    assert reply["error"] == (
        "the body is 1000000000 bytes, over the limit of 65536 (--max-request-bytes)"
    )
    # Asked first (Expect: 100-continue, as curl asks for large bodies): no go-ahead.
    status, reply = exchange(
        running,
        b"POST /v2/models/iris/infer HTTP/1.1\r\nExpect: 100-continue\r\n"
        b"Content-Length: 65537\r\n\r\n",
    )
    assert status == 413
    assert reply["error"].startswith("the body is 65537 bytes, over the limit of 65536")
    chunked = b"POST /v2/models/iris/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, reply = exchange(running, chunked + b"10001\r\n" + b" " * 1000)
    assert (status, reply) == (
        413, {"error": "the body is over the limit of 65536 bytes (--max-request-bytes)"}
    )  # fmt: skip
    # Elements are counted from the shapes, before any data is decoded.
    tensor = {"name": "X", "datatype": "FP32", "shape": [1_000_000, 4], "data": [1.0]}
    status, reply = running.call("POST", "/v2/models/iris/infer", {"inputs": [tensor]})
    assert status == 413
    assert reply["error"] == (
        "the request's tensors hold 4000000 elements, over the limit of 1000 (--max-elements)"
    )
    assert running.call("POST", "/v2/models/iris/infer", request(np.ones((250, 4))))[0] == 200
    assert running.call("POST", "/v2/models/iris/infer", request(np.ones((251, 4))))[0] == 413
    assert "Traceback" not in running.log


def test_a_large_request_costs_about_twice_its_size_in_memory(server, datasets) -> None:  # type: ignore[no-untyped-def]
    """A 20 MiB request of iris rows grew the server by 8x its size (json.loads made a
    Python object of every number, 24x with the CSV's short numbers); now by about 2x."""
    body = repeated_rows_request("X", rows(datasets, 150).tolist(), 20 << 20)
    measured = measure_large_request(server.url, "iris", body, server.process.pid)
    assert measured.status == 200
    assert measured.growth_bytes < 4 * measured.body_bytes, measured


def test_slow_clients_time_out_with_one_log_line(start) -> None:  # type: ignore[no-untyped-def]
    running = start("--read-timeout=0.5")
    # A body announced and stalled: 408 after the read timeout, and the connection closes.
    since = len(running.lines)
    stalled = b"POST /v2/models/iris/infer HTTP/1.1\r\nContent-Length: 100\r\n\r\n{}"
    assert exchange(running, stalled) == (408, {"error": "no data from the client for 0.5 s"})
    line = running.wait_for("-> 408", since)
    # A connection that never sends a request is closed too.
    since = len(running.lines)
    assert exchange(running, b"") == (None, None)
    assert "no request within 0.5 s" in running.wait_for("no request", since)
    # Headers that stop halfway: http.server's own timeout, logged on one line as well.
    since = len(running.lines)
    assert exchange(running, b"GET /v2/health/ready HTTP/1.1\r\nHost:") == (None, None)
    assert "timed out" in running.wait_for("timed out", since)
    assert running.call("GET", "/v2/health/ready")[0] == 200
    assert "Traceback" not in running.log, line


def test_sigterm_lets_requests_in_flight_finish_and_exits_143(start) -> None:  # type: ignore[no-untyped-def]
    running = start("--drain-seconds=30")
    # An idle keep-alive connection: closed as soon as the drain begins.
    idle = http.client.HTTPConnection(*running.address, timeout=30)
    idle.request("GET", "/v2/health/ready")
    assert idle.getresponse().read() == b'{"ready":true}'
    # A request in flight: its headers are read (the server said 100 Continue), its body
    # is still to come when SIGTERM arrives.
    busy = socket.create_connection(running.address, timeout=30)
    body = json.dumps(request(np.ones((1, 4), np.float32))).encode()
    busy.sendall(
        b"POST /v2/models/iris/infer HTTP/1.1\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    interim = b""
    while not interim.endswith(b"\r\n\r\n"):
        interim += busy.recv(1)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    since = len(running.lines)
    running.process.send_signal(signal.SIGTERM)
    running.wait_for("SIGTERM: draining", since)
    assert idle.sock is not None
    assert idle.sock.recv(1) == b""
    busy.sendall(body)
    response = http.client.HTTPResponse(busy)
    response.begin()
    assert response.status == 200
    assert response.getheader("Connection") == "close"
    assert strict_json(response.read())["outputs"][0]["name"] == "label"
    busy.close()
    assert running.process.wait(60) == 143
    running.wait_for("stopped", since)
    assert "still busy" not in running.log
    assert "Traceback" not in running.log


def test_sigterm_with_stalled_clients_exits_at_the_drain_deadline(start) -> None:  # type: ignore[no-untyped-def]
    """50 clients that announce a body and stall kept SIGTERM from ever exiting."""
    running = start("--drain-seconds=1", "--read-timeout=600")
    stalled = []
    try:
        for _ in range(50):
            sock = socket.create_connection(running.address, timeout=60)
            sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
            stalled.append(sock)
        # Connections are accepted in order: once a later one is answered, all 50 are in.
        assert running.call("GET", "/v2/health/ready")[0] == 200
        since = len(running.lines)
        started = time.monotonic()
        assert running.stop(timeout=60) == 143
        took = time.monotonic() - started
        assert took < 30, f"exited {took:.1f} s after SIGTERM"
        assert "connection(s) still busy at the deadline were closed" in running.wait_for(
            "stopped", since
        )
        for sock in stalled:  # every stalled client sees its connection end
            assert sock.recv(100) == b""
    finally:
        for sock in stalled:
            sock.close()
    assert "Traceback" not in running.log


def test_a_second_signal_ends_the_drain_at_once(start) -> None:  # type: ignore[no-untyped-def]
    running = start("--drain-seconds=600")
    with socket.create_connection(running.address, timeout=60) as stalled:
        stalled.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        assert running.call("GET", "/v2/health/ready")[0] == 200  # the stalled one is in
        running.process.send_signal(signal.SIGTERM)
        running.wait_for("SIGTERM: draining")
        running.process.send_signal(signal.SIGINT)
        assert running.process.wait(60) == 130
    assert "second signal; exiting now" in running.wait_for("second signal")


def _chunked(payload: bytes) -> bytes:
    half = len(payload) // 2
    return b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (half, payload[:half], len(payload) - half,
                                                  payload[half:])  # fmt: skip


_INFER = b"POST /v2/models/iris/infer HTTP/1.1\r\n"
_VALID = json.dumps(request(np.ones((2, 4), np.float32))).encode()
HOSTILE = {
    # case: (bytes sent, how the client ends, status (None: no HTTP reply), the log lines)
    "Content-Length not a number": (_INFER + b"Content-Length: abc\r\n\r\n{}", "", 400,
                                    ["invalid Content-Length 'abc'"]),
    "Content-Length negative": (_INFER + b"Content-Length: -5\r\n\r\n{}", "", 400,
                                ["invalid Content-Length '-5'"]),
    "two Content-Lengths": (_INFER + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", "",
                            400, ["invalid Content-Length '2, 3'"]),
    "no Content-Length": (_INFER + b"\r\n{}", "", 411, ["a Content-Length header is required"]),
    "Content-Length over the body, then closed": (
        _INFER + b"Content-Length: 100\r\n\r\n{}", "close", None,
        ["the client closed the connection after 2 of 100 bytes"]),
    "Content-Length under the body": (
        _INFER + b"Content-Length: 2\r\n\r\n{}garbage", "close", 400,
        ["'inputs' must be a non-empty list", "Bad request syntax ('garbage')"]),
    "reset mid-body": (_INFER + b"Content-Length: 100\r\n\r\n{}", "reset", None,
                       ["connection ended: Connection reset by peer"]),
    "chunked": (_INFER + b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                + _chunked(_VALID), "", 200, []),
    "chunked, bad size": (_INFER + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
                          "", 400, ["invalid chunk size b'zz'"]),
    "chunked, longer than its size": (
        _INFER + b"Transfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n", "", 400,
        ["a chunk is longer than its size"]),
    "chunked, closed mid-body": (_INFER + b"Transfer-Encoding: chunked\r\n\r\n10\r\n{", "close",
                                 None, ["the client closed the connection mid-body"]),
    "chunked and Content-Length": (
        _INFER + b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}", "", 400,
        ["both Transfer-Encoding and Content-Length are set"]),
    "gzip transfer coding": (_INFER + b"Transfer-Encoding: gzip\r\n\r\n", "", 501,
                             ["unsupported Transfer-Encoding 'gzip'"]),
    "garbage bytes": (b"\x00\xff\x13 \x80garbage \x81\x82\r\n\r\n", "", None,
                      ["Bad request version"]),
    "binary noise, closed": (bytes(range(256)) * 4, "close", None, ["Bad request"]),
    "request line too long": (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", "", 414,
                              ["414 Request-URI Too Long"]),
    "header line too long": (b"GET /v2 HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", "",
                             431, ["431 Line too long"]),
    "too many headers": (b"GET /v2 HTTP/1.1\r\n" + b"X-A: b\r\n" * 150 + b"\r\n", "", 431,
                         ["431 Too many headers"]),
    "unknown method": (b"BREW /v2 HTTP/1.1\r\n\r\n", "", 501, ["Unsupported method ('BREW')"]),
    "HTTP/1.0": (b"GET /v2/health/ready HTTP/1.0\r\n\r\n", "", 200, []),
    "connect and close": (b"", "close", None, []),
}  # fmt: skip


def test_hostile_requests_cost_one_log_line_each_and_no_traceback(server) -> None:  # type: ignore[no-untyped-def]
    """Each case, then a marker request whose line is known: the lines between two
    markers are what the case cost."""
    for index, case in enumerate(HOSTILE):
        payload, ending, status, expected = HOSTILE[case]
        since = len(server.lines)
        got, reply = exchange(server, payload, ending)
        assert got == status, (case, reply)
        if status and status >= 400:
            assert isinstance(reply["error"], str), case
        for fragment in expected:  # a reset or close is seen by the server in its own time
            server.wait_for(fragment, since)
        marker = f"/v2/marker-{index}"
        assert server.call("GET", marker)[0] == 404
        server.wait_for(marker, since)
        with server._changed:
            lines = server.lines[since:]
        lines = lines[: next(i for i, line in enumerate(lines) if marker in line)]
        assert len(lines) == len(expected), (case, lines)
        for line, fragment in zip(lines, expected, strict=True):
            assert fragment in line, (case, lines)
            assert line.startswith("serve: "), (case, lines)
    assert "Traceback" not in server.log


def test_serve_refuses_what_it_cannot_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    outcome = subprocess.run(
        [CLI, "serve", f"--model-path={tmp_path}", "--model-name=x", "--port=0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert outcome.returncode == 1
    assert "not a loadable ONNX model" in outcome.stderr
