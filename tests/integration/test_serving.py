"""tekton-mlops serve: the Open Inference Protocol over onnxruntime, end to end over HTTP."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from tekton_mlops.cli import main
from tests.conftest import CLI, free_port, wait_http

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


class Server:
    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process, self.url = process, url

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None):  # type: ignore[no-untyped-def]
        host = self.url.removeprefix("http://")
        connection = http.client.HTTPConnection(host, timeout=10)
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, json.loads(data) if data else None


def start_server(model: Path, name: str) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [CLI, "serve", f"--model-path={model}", f"--model-name={name}", f"--port={port}",
         "--model-version=1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/v2/health/ready")
    return Server(process, url)


@pytest.fixture(scope="module")
def server(iris_model) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    running = start_server(iris_model, "iris")
    yield running
    running.process.send_signal(signal.SIGTERM)
    running.process.wait(timeout=10)


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
    # Asked for one output, only that one comes back; nested data is accepted too.
    nested = request(features[:2])
    nested["inputs"][0]["data"] = features[:2].tolist()
    nested["outputs"] = [{"name": "label"}]
    status, reply = server.call("POST", "/v2/models/iris/infer", nested)
    assert status == 200
    assert [o["name"] for o in reply["outputs"]] == ["label"]
    assert reply["outputs"][0]["data"] == labels[:2].tolist()


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
    "strings as FP32": ("/v2/models/iris/infer",
                        {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],
                                     "data": ["a", "b", "c", "d"]}]}, 400,
                        "FP32 data must be numbers"),
    "unknown input": ("/v2/models/iris/infer", request(np.zeros((1, 4), np.float32), "input"),
                      400, "unknown input 'input' (the model takes X)"),
    "no inputs": ("/v2/models/iris/infer", {"inputs": []}, 400, "'inputs' must be a non-empty"),
    "not JSON": ("/v2/models/iris/infer", b"{oops", 400, "the body is not JSON"),
    "JSON not an object": ("/v2/models/iris/infer", [1, 2], 400, "must be a JSON object"),
    "unknown output": ("/v2/models/iris/infer",
                       {**request(np.zeros((1, 4), np.float32)), "outputs": [{"name": "x"}]},
                       400, "unknown output(s) ['x']"),
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


def test_sigterm_drains_and_exits_zero(iris_model) -> None:  # type: ignore[no-untyped-def]
    running = start_server(iris_model, "drain")
    assert running.call("GET", "/v2/models/drain/ready")[0] == 200
    running.process.send_signal(signal.SIGTERM)
    output, _ = running.process.communicate(timeout=10)
    assert running.process.returncode == 0
    assert b"stopped" in output


def test_serve_refuses_what_it_cannot_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    outcome = subprocess.run(
        [CLI, "serve", f"--model-path={tmp_path}", "--model-name=x", "--port=0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert outcome.returncode == 1
    assert "not a loadable ONNX model" in outcome.stderr
