"""Served requests/s and p50/p99 at concurrency 1, 4, 16: ours against KServe, MLServer, the floor.

The same ONNX model (a 100-tree random forest on iris, one row per request)
behind `tekton-mlops serve`, behind KServe's ModelServer and behind Seldon
MLServer, each peer with a model class of ours running the same onnxruntime
session (benchmarks/kserve_onnx_server.py, benchmarks/mlserver_onnx_server.py,
each in its own venv under .bench/). The floor is a responder that answers
with ours' reply bytes and does nothing else (benchmarks/floor_server.py): the
closest any server in Python can get on this loopback with this client. The
client of all four is check-slo's own load generator in this process, on the
same two cores as the servers; the servers are measured one after the other,
in a rotating order, for ROUNDS rounds, and each figure is the median.
In-process onnxruntime on the same request is the limit the p50 overhead is
measured against.
"""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from harness import BENCH, CLI, PYTHON, REPO, Row, need, serving, workdir

ORDER = 50
SECONDS = 4.0
ROUNDS = 3
CONCURRENCY = (1, 4, 16)
PORTS = {"ours": 5601, "kserve": 5602, "mlserver": 5603, "floor": 5604}
MLSERVER_GRPC_PORT = 5613
BODY = json.dumps(
    {"id": "bench", "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4],
                                "data": [5.1, 3.5, 1.4, 0.2]}]}
).encode()  # fmt: skip


def rows() -> list[Row]:
    sys.path.insert(0, str(REPO / "runtime"))
    sys.path.insert(0, str(REPO))
    from tekton_mlops.serving.load import drive
    from tests.conftest import write_csv

    kserve = BENCH / "kserve-venv" / "bin" / "python"
    mlserver = BENCH / "mlserver-venv" / "bin" / "python"
    need(kserve.exists() and mlserver.exists(), ".bench/kserve-venv and .bench/mlserver-venv")
    names = {
        "kserve": f"KServe ModelServer {_version(kserve, 'kserve')}, same model",
        "mlserver": f"Seldon MLServer {_version(mlserver, 'mlserver')}, same model",
        "floor": "loopback floor: asyncio responder, ours' reply bytes, no model",
    }
    with workdir("bench-serve-") as work:
        model = train_forest(work, write_csv)
        onnx = str(model / "model.onnx")
        servers = {
            "ours": [CLI, "serve", f"--model-path={model}", "--model-name=iris",
                     f"--port={PORTS['ours']}"],
            "kserve": [str(kserve), str(REPO / "benchmarks" / "kserve_onnx_server.py"), onnx,
                       "iris", str(PORTS["kserve"])],
            "mlserver": [str(mlserver), str(REPO / "benchmarks" / "mlserver_onnx_server.py"),
                         onnx, "iris", str(PORTS["mlserver"]), str(MLSERVER_GRPC_PORT)],
        }  # fmt: skip
        with ExitStack() as stack:
            for name, command in servers.items():
                stack.enter_context(serving(command, PORTS[name]))
            reply = work / "reply.json"
            reply.write_bytes(_reply(PORTS["ours"]))
            floor = [PYTHON, str(REPO / "benchmarks" / "floor_server.py"), str(PORTS["floor"]),
                     str(reply)]  # fmt: skip
            stack.enter_context(serving(floor, PORTS["floor"]))
            time.sleep(1.0)  # servers that report ready before their model is
            for port in PORTS.values():  # warm every server up
                warm = drive(f"http://127.0.0.1:{port}", "iris", BODY, 200, 4)
                assert warm.errors == 0, (port, warm.error_samples)
            limit = _in_process_p50(Path(onnx))
            measured = {c: _measure(drive, c) for c in CONCURRENCY}
    table: list[Row] = []
    for concurrency, figures in measured.items():
        ours = figures["ours"]
        for peer in ("kserve", "mlserver", "floor"):
            theirs = figures[peer]
            ratio = ours["throughput_rps"] / theirs["throughput_rps"]
            verdict = {
                "kserve": f"{ratio:.2f}x throughput (goal >= 1.5x)",
                "mlserver": f"{ratio:.2f}x throughput (goal >= 1x)",
                "floor": f"{ratio:.2f}x the floor's throughput (ceiling 1x)",
            }[peer]
            table.append(
                (f"serve, concurrency {concurrency}: requests/s (p50 / p99 ms)", _figure(ours),
                 names[peer], _figure(theirs), verdict)
            )  # fmt: skip
        if concurrency == 1:
            table.append(
                (
                    "serve p50 over in-process onnxruntime, concurrency 1",
                    f"{ours['latency_p50_ms']:.3f} ms",
                    "session.run in process (the limit)",
                    f"{limit:.3f} ms",
                    f"+{ours['latency_p50_ms'] - limit:.3f} ms per request",
                )
            )
    return table


def _measure(drive: Any, concurrency: int) -> dict[str, dict[str, float]]:
    """Median figures of each server over ROUNDS rounds, the order rotating each round."""
    order = list(PORTS)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in order}
    for round_ in range(ROUNDS):
        for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
            url = f"http://127.0.0.1:{PORTS[name]}"
            run = drive(url, "iris", BODY, 10**9, concurrency, SECONDS)
            assert run.errors == 0, (name, run.error_samples)
            samples[name].append(run.summary())
    medians = {
        name: {
            key: statistics.median(s[key] for s in runs)
            for key in ("throughput_rps", "latency_p50_ms", "latency_p99_ms")
        }
        for name, runs in samples.items()
    }
    for name, runs in samples.items():
        spread = ", ".join(f"{s['throughput_rps']:.0f}" for s in runs)
        print(f"  serve c={concurrency} {name}: requests/s [{spread}]", file=sys.stderr)
    return medians


def _figure(summary: dict[str, float]) -> str:
    return (
        f"{summary['throughput_rps']:.0f} ({summary['latency_p50_ms']:.2f} / "
        f"{summary['latency_p99_ms']:.2f})"
    )


def train_forest(work: Path, write_csv: Any) -> Path:
    """The served model of the serving benchmarks: a 100-tree forest on iris."""
    data = write_csv(work / "iris.csv", "load_iris")
    model = work / "model"
    subprocess.run(
        [CLI, "train-model", f"--data={data}", "--target-column=target", f"--output={model}",
         "--estimator=random-forest-classifier", '--hyperparameters={"n_estimators": 100}',
         f"--results-dir={work / 'r'}"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return model


def _reply(port: int) -> bytes:
    """What our server answers to the benchmark's request: the floor sends the same bytes."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/v2/models/iris/infer", BODY,
                           {"Content-Type": "application/json"})  # fmt: skip
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 200, body
    return body


def _version(python: Path, package: str) -> str:
    return subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def _in_process_p50(model: Path) -> float:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options)
    features = np.asarray([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
    timings = []
    for _ in range(2000):
        start = time.perf_counter()
        session.run(None, {"X": features})
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)
