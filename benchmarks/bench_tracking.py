"""MLflow tracking: the runtime's REST client against mlflow-skinny, and its cost in a step.

Against a real ``mlflow server`` (SQLite, artifacts served through its proxy) on
127.0.0.1, each side in a new process, as a step would be:

- the same work with both clients: find the experiment, create a run, log 20 params and
  20 metrics, upload a 1 MiB artifact, end the run; and the import each needs first;
- the overhead on a train-model-sized run: the tracking calls (create, 10 params,
  10 metrics, the model folder train-model wrote as artifacts, end) against the wall
  time of ``tekton-mlops train-model`` on a 20,000-row table (goal: under 5%).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
from pathlib import Path

from harness import (
    BENCH,
    CLI,
    PYTHON,
    REPO,
    Row,
    alternate,
    need,
    random_file,
    serving,
    timed,
    workdir,
)

ORDER = 75
RUNS = 9
MLFLOW_VENV = REPO / ".venv-mlflow"
SKINNY = BENCH / "mlflow-skinny-venv"

OURS = """
import json, sys, time
from pathlib import Path
start = time.perf_counter()
from tekton_mlops import tracking
imported = time.perf_counter()
uri, experiment, artifact, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
with tracking.run_for(uri, experiment, step="bench") as run:
    run.log_params({f"param_{i}": i for i in range(n)})
    run.log_metrics({f"metric_{i}": i / 3 for i in range(n)})
    if artifact.is_dir():
        run.log_artifacts(artifact, "model")
    else:
        run.log_artifact(artifact)
done = time.perf_counter()
print(json.dumps({"import": imported - start, "calls": done - imported}))
"""

PEER = """
import json, sys, time
from pathlib import Path
start = time.perf_counter()
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
imported = time.perf_counter()
uri, experiment, artifact, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
client = MlflowClient(tracking_uri=uri)
found = client.get_experiment_by_name(experiment)
experiment_id = found.experiment_id if found else client.create_experiment(experiment)
run_id = client.create_run(experiment_id).info.run_id
stamp = int(time.time() * 1000)
client.log_batch(run_id, params=[Param(f"param_{i}", str(i)) for i in range(n)],
                 metrics=[Metric(f"metric_{i}", i / 3, stamp, 0) for i in range(n)])
client.log_artifact(run_id, str(artifact))
client.set_terminated(run_id)
done = time.perf_counter()
print(json.dumps({"import": imported - start, "calls": done - imported}))
"""

TABLE = (
    "from sklearn.datasets import make_classification; import csv, sys\n"
    "x, y = make_classification(n_samples=20000, n_features=20, n_informative=8,"
    " n_classes=3, random_state=0)\n"
    "w = csv.writer(open(sys.argv[1], 'w', newline=''))\n"
    "w.writerow([f'f{i}' for i in range(20)] + ['target'])\n"
    "w.writerows([*map(float, r), int(t)] for r, t in zip(x, y))\n"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timings(python: str, script: str, *args: str) -> dict[str, float]:
    done = subprocess.run([python, "-c", script, *args], check=True, capture_output=True)
    # The last line: a client may print its own lines (MLflow links the run it ended).
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def rows() -> list[Row]:
    need((MLFLOW_VENV / "bin" / "mlflow").exists(), "the MLflow server venv (make bench)")
    need((SKINNY / "bin" / "python").exists(), "mlflow-skinny in .bench/mlflow-skinny-venv")
    skinny = subprocess.run(
        [str(SKINNY / "bin" / "python"), "-c", "import mlflow; print(mlflow.__version__)"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    with workdir("bench-tracking-") as work:
        command = [
            str(MLFLOW_VENV / "bin" / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
            "--artifacts-destination", str(work / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ]  # fmt: skip
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with serving(command, port, env=env, timeout=120):
            return _measure(uri, work, skinny)


def _measure(uri: str, work: Path, skinny: str) -> list[Row]:
    artifact = work / "artifact.bin"
    random_file(artifact, 1 << 20)
    samples: dict[str, list[dict[str, float]]] = {"ours": [], "peer": []}

    def ours() -> float:
        samples["ours"].append(_timings(PYTHON, OURS, uri, "bench", str(artifact), "20"))
        return samples["ours"][-1]["calls"]

    def peer() -> float:
        python = str(SKINNY / "bin" / "python")
        samples["peer"].append(_timings(python, PEER, uri, "bench", str(artifact), "20"))
        return samples["peer"][-1]["calls"]

    _timings(PYTHON, OURS, uri, "bench", str(artifact), "20")  # the experiment exists after
    calls_ours, calls_peer = alternate(RUNS, ours, peer, label="tracking calls")
    import_ours = statistics.median(s["import"] for s in samples["ours"])
    import_peer = statistics.median(s["import"] for s in samples["peer"])

    # A train-model-sized run: the model folder train-model writes, on a realistic table.
    table = work / "table.csv"
    subprocess.run([PYTHON, "-c", TABLE, str(table)], check=True)
    model = work / "model"
    train_args = [CLI, "train-model", f"--data={table}", "--target-column=target",
                  "--estimator=random-forest-classifier",
                  '--hyperparameters={"n_estimators": 50, "max_depth": 10}',
                  f"--results-dir={work / 'results'}"]  # fmt: skip
    trainings = []
    for round_ in range(3):
        trainings.append(timed([*train_args, f"--output={model}-{round_}"]))
    train = statistics.median(trainings)
    size = sum(p.stat().st_size for p in (work / "model-0").rglob("*") if p.is_file())
    overhead = [
        _timings(PYTHON, OURS, uri, "train", str(work / "model-0"), "10") for _ in range(RUNS)
    ]
    tracked = statistics.median(o["import"] + o["calls"] for o in overhead)
    return [
        (
            "tracking: create run, 20 params, 20 metrics, 1 MiB artifact, end (real MLflow server)",
            f"{calls_ours * 1000:.0f} ms",
            f"mlflow-skinny {skinny} `MlflowClient`",
            f"{calls_peer * 1000:.0f} ms",
            f"{calls_ours / calls_peer:.2f}x (goal <= 1x)",
        ),
        (
            "tracking: import of the client",
            f"{import_ours * 1000:.0f} ms (`tekton_mlops.tracking`)",
            f"mlflow-skinny {skinny} `from mlflow import MlflowClient`",
            f"{import_peer * 1000:.0f} ms",
            f"{import_ours / import_peer:.2f}x (goal <= 1x)",
        ),
        (
            f"tracking overhead: run, 10 params, 10 metrics, model folder ({size // 1024} KiB), "
            "import included",
            f"{tracked * 1000:.0f} ms",
            "`tekton-mlops train-model` (random forest, 20,000 x 20 table)",
            f"{train:.2f} s",
            f"{tracked / train * 100:.1f}% (goal < 5%)",
        ),
    ]
