"""One 50 MiB inference request: the server's peak memory and time, ours against KServe's.

The request is valid: iris rows nested as ``features.tolist()`` sends them, about
9 million FP32 elements. Each side is measured on a fresh server process (its peak
resident memory, VmHWM, reset before the request), alternating, median of three.
KServe's Python ``ModelServer`` runs the same onnxruntime session
(``benchmarks/kserve_onnx_server.py``, from ``.bench/kserve-venv``, which
``hack/system-deps.sh --bench`` installs); without it only the row against the
request's own size is produced.

    python benchmarks/bench_serve_memory.py     # prints the rows
"""

from __future__ import annotations

import csv
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "tekton-mlops")
KSERVE_PYTHON = REPO / ".bench" / "kserve-venv" / "bin" / "python"
SIZE = 50 << 20
RUNS = 3
MIB = 1 << 20

Row = tuple[str, str, str, str, str]


def _iris_model(work: Path) -> tuple[Path, list[list[float]]]:
    from sklearn.datasets import load_iris

    data = load_iris()
    table = work / "iris.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"f{i}" for i in range(4)), "target"])
        writer.writerows(
            [*map(float, row), int(t)] for row, t in zip(data.data, data.target, strict=True)
        )
    model = work / "model"
    subprocess.run(
        [CLI, "train-model", f"--data={table}", "--target-column=target", f"--output={model}",
         "--estimator=random-forest-classifier", '--hyperparameters={"n_estimators": 100}',
         f"--results-dir={work / 'r'}"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return model, data.data.tolist()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ours(model: Path) -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [CLI, "serve", f"--model-path={model}", "--model-name=iris", "--port=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    found = re.search(r"(http://[^/]+)/v2", process.stderr.readline().decode())
    if not found:
        process.kill()
        raise SystemExit("tekton-mlops serve did not start")
    return process, found[1]


def _kserve(model: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [str(KSERVE_PYTHON), str(REPO / "benchmarks" / "kserve_onnx_server.py"),
         str(model / "model.onnx"), "iris", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1).close()
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit("KServe's model server did not start") from None
            time.sleep(0.2)


def _measure(
    start: Callable[[Path], tuple[subprocess.Popen[bytes], str]], model: Path, body: bytes
) -> tuple[float, float]:
    """Peak RSS growth (MiB) and seconds of one request on a fresh server."""
    from tekton_mlops.serving.measure import measure_large_request

    process, url = start(model)
    try:
        measured = measure_large_request(url, "iris", body, process.pid)
    finally:
        process.kill()
        process.wait()
    if measured.status != 200:
        raise SystemExit(f"{start.__name__}: HTTP {measured.status} on the large request")
    return measured.growth_bytes / MIB, measured.seconds


def rows() -> list[Row]:
    sys.path.insert(0, str(REPO / "runtime"))
    from tekton_mlops.serving.measure import repeated_rows_request

    work = Path(tempfile.mkdtemp(prefix="bench-serve-memory-"))
    try:
        model, features = _iris_model(work)
        body = repeated_rows_request("X", features, SIZE)
        sides = [_ours] + ([_kserve] if KSERVE_PYTHON.exists() else [])
        samples: list[list[tuple[float, float]]] = [[] for _ in sides]
        for _ in range(RUNS):
            for index, side in enumerate(sides):
                samples[index].append(_measure(side, model, body))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = [
        (statistics.median(m for m, _ in s), statistics.median(t for _, t in s)) for s in samples
    ]
    (memory, seconds), size = figures[0], len(body) / MIB
    table: list[Row] = [
        (
            f"serve, one {size:.0f} MiB request: peak memory growth (time)",
            f"{memory:.0f} MiB ({seconds:.1f} s)",
            "the request body itself",
            f"{size:.0f} MiB",
            f"{memory / size:.2f}x the body (goal <= 3x)",
        )
    ]
    if len(figures) > 1:
        peer_memory, peer_seconds = figures[1]
        table.append(
            (
                f"serve, one {size:.0f} MiB request: peak memory growth (time)",
                f"{memory:.0f} MiB ({seconds:.1f} s)",
                "KServe ModelServer 0.21, same model and request",
                f"{peer_memory:.0f} MiB ({peer_seconds:.1f} s)",
                f"{memory / peer_memory:.2f}x memory, {seconds / peer_seconds:.2f}x time "
                "(goal < 1x)",
            )
        )
    return table


if __name__ == "__main__":
    for row in rows():
        print("| " + " | ".join(row) + " |")
