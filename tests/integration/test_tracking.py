"""Experiment tracking against a real MLflow server, read back with MLflow's own client."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tekton_mlops import tracking
from tekton_mlops.tracking.client import TrackingError, auth_header
from tests.conftest import refused_url
from tests.integration.mlflow_server import MlflowServer, running_mlflow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


SECRET = "tr4ck-s3cret-never-logged"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tekton_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a Task's environment says about the run (see catalog/task/*/0.1/*.yaml)."""
    monkeypatch.setenv("TEKTON_MLOPS_INVOCATION_ID", "train-7x2-train-model")
    monkeypatch.setenv("TEKTON_MLOPS_PIPELINE_RUN", "train-7x2")
    monkeypatch.setenv("TEKTON_MLOPS_SOURCE_URL", "https://git.example/team/iris")
    monkeypatch.setenv("TEKTON_MLOPS_SOURCE_REVISION", "0123456789abcdef0123456789abcdef01234567")


def test_run_logs_what_mlflow_reads_back(
    mlflow_server: MlflowServer, tekton_env: None, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    (model / ".mlops").mkdir(parents=True)
    onnx = os.urandom(300_000)
    (model / "model.onnx").write_bytes(onnx)
    (model / "metadata.json").write_text('{"estimator": "random-forest-classifier"}\n')
    (model / ".mlops" / "manifest.json").write_text("{}\n")
    report = tmp_path / "evaluation.json"
    report.write_text('{"passed": true}\n')
    params = {f"p{i:02d}": i for i in range(20)} | {"hyper": {"max_depth": 4, "n": [1, 2]}}
    metrics = {f"m{i:02d}": i / 7 for i in range(20)}

    with tracking.run_for(
        mlflow_server.uri,
        "iris-experiment",
        step="train-model",
        run_name="train-7x2",
        tags={tracking.DATASET_URI: "s3://data/iris.csv", tracking.DATASET_DIGEST: "sha256:ab"},
    ) as run:
        run.log_params(params)
        run.log_metrics(metrics)
        run.log_artifacts(model, "model")
        run.log_artifact(report)
        run.set_tags({tracking.MODEL_DIGEST: "sha256:cd"})
        with run.child("trial-0") as trial:
            trial.log_metrics({"loss": 0.25})
        with run.child("trial-1") as trial:
            trial.log_metrics({"loss": 0.125})
    assert run.active
    assert len(run.run_id) == 32

    seen = mlflow_server.read("run", run_id=run.run_id)
    assert seen["status"] == "FINISHED"
    assert seen["experiment"] == "iris-experiment"
    assert seen["run_name"] == "train-7x2"
    assert seen["params"] == {
        **{f"p{i:02d}": str(i) for i in range(20)},
        "hyper": '{"max_depth":4,"n":[1,2]}',
    }
    assert seen["metrics"] == pytest.approx(metrics)
    tags = seen["tags"]
    assert {k: tags[k] for k in (
        "tekton.dev/pipelineRun", "tekton.dev/taskRun", "mlflow.source.git.commit",
        "mlflow.source.git.repoURL", "tekton-mlops.step", "tekton-mlops.dataset.uri",
        "tekton-mlops.dataset.digest", "tekton-mlops.model.root-digest",
    )} == {
        "tekton.dev/pipelineRun": "train-7x2",
        "tekton.dev/taskRun": "train-7x2-train-model",
        "mlflow.source.git.commit": "0123456789abcdef0123456789abcdef01234567",
        "mlflow.source.git.repoURL": "https://git.example/team/iris",
        "tekton-mlops.step": "train-model",
        "tekton-mlops.dataset.uri": "s3://data/iris.csv",
        "tekton-mlops.dataset.digest": "sha256:ab",
        "tekton-mlops.model.root-digest": "sha256:cd",
    }  # fmt: skip
    # Every file, its layout kept, byte for byte (through the server's artifact proxy).
    metadata = b'{"estimator": "random-forest-classifier"}\n'
    assert seen["artifacts"] == {
        "model/model.onnx": {"size": 300_000, "sha256": sha256(onnx)},
        "model/metadata.json": {"size": len(metadata), "sha256": sha256(metadata)},
        "model/.mlops/manifest.json": {"size": 3, "sha256": sha256(b"{}\n")},
        "evaluation.json": {"size": 17, "sha256": sha256(b'{"passed": true}\n')},
    }  # fmt: skip
    children = mlflow_server.read("children", run_id=run.run_id)
    assert sorted((c["run_name"], c["status"], c["metrics"]["loss"]) for c in children) == [
        ("trial-0", "FINISHED", 0.25),
        ("trial-1", "FINISHED", 0.125),
    ]


def test_a_failing_step_marks_its_run_failed(mlflow_server: MlflowServer) -> None:
    def train() -> None:
        with tracking.run_for(mlflow_server.uri, "iris-experiment", step="train-model") as run:
            started.append(run.run_id)
            run.log_metrics({"loss": 1.5})
            raise ValueError("training diverged")

    started: list[str] = []
    with pytest.raises(ValueError, match="training diverged"):
        train()
    seen = mlflow_server.read("run", run_id=started[0])
    assert seen["status"] == "FAILED"
    assert seen["metrics"] == {"loss": 1.5}


def test_more_than_one_batch_holds(mlflow_server: MlflowServer) -> None:
    # MLflow takes at most 100 params, 100 tags and 1000 entries in one log-batch call.
    params = {f"p{i:03d}": i for i in range(250)}
    metrics = {f"m{i:04d}": float(i) for i in range(1200)}
    tags = {f"t{i:03d}": str(i) for i in range(150)}
    with tracking.run_for(mlflow_server.uri, "batches", step="tune-model") as run:
        run.log_params(params)
        run.log_metrics(metrics)
        run.set_tags(tags)
    seen = mlflow_server.read("run", run_id=run.run_id)
    assert seen["params"] == {k: str(v) for k, v in params.items()}
    assert seen["metrics"] == metrics
    assert {k: v for k, v in seen["tags"].items() if k in tags} == tags


def test_a_rejected_batch_fails_the_step_and_the_run(mlflow_server: MlflowServer) -> None:
    # MLflow refuses to change a logged param: the step fails with MLflow's reason and
    # the run is not left FINISHED (nor RUNNING).
    def train() -> None:
        with tracking.run_for(mlflow_server.uri, "batches", step="train-model") as run:
            started.append(run.run_id)
            run.log_params({"alpha": 1})
            run.flush()
            run.log_params({"alpha": 2})

    started: list[str] = []
    with pytest.raises(TrackingError) as caught:
        train()
    assert "runs/log-batch answered HTTP 400: INVALID_PARAMETER_VALUE" in str(caught.value)
    seen = mlflow_server.read("run", run_id=started[0])
    assert seen["status"] == "FAILED"
    assert seen["params"] == {"alpha": "1"}


def test_runs_share_the_experiment_by_name(mlflow_server: MlflowServer) -> None:
    ids = []
    for _ in range(2):
        with tracking.run_for(mlflow_server.uri, "shared-exp", step="evaluate-model") as run:
            pass
        ids.append(mlflow_server.read("run", run_id=run.run_id)["experiment_id"])
    assert ids[0] == ids[1]
    with tracking.run_for(mlflow_server.uri, "", step="evaluate-model") as run:
        pass
    assert mlflow_server.read("run", run_id=run.run_id)["experiment"] == "Default"


def test_empty_uri_tracks_nothing(tmp_path: Path) -> None:
    with tracking.run_for("", "anything", step="train-model") as run:
        run.log_params({"a": 1})
        run.log_metrics({"m": 1.0})
        run.log_artifact(tmp_path / "not-even-there")
        with run.child("trial") as trial:
            trial.log_metrics({"loss": 1.0})
    assert not run.active
    assert run.run_id == ""


def test_down_server_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ci")
    monkeypatch.setenv("TEKTON_MLOPS_MLFLOW_RETRIES", "1")
    with refused_url() as url, pytest.raises(TrackingError) as caught:  # noqa: SIM117
        with tracking.run_for(url, "exp", step="train-model"):
            pytest.fail("a run that cannot be tracked must not start")
    message = str(caught.value)
    assert message.startswith(f"MLflow tracking server {url}: GET experiments/get-by-name")
    assert "Connection refused" in message
    assert "\n" not in message
    assert SECRET not in message


def test_server_error_names_the_status(mlflow_server: MlflowServer) -> None:
    # A URI whose path is not MLflow's API: the server answers 404 for every call.
    with pytest.raises(TrackingError) as caught:  # noqa: SIM117
        with tracking.run_for(f"{mlflow_server.uri}/not-mlflow", "exp", step="train-model"):
            pytest.fail("a run that cannot be tracked must not start")
    assert str(caught.value).startswith(
        f"MLflow tracking server {mlflow_server.uri}/not-mlflow: GET experiments/get-by-name "
        "answered HTTP 404"
    )


def test_credentials_come_from_env_as_mlflow_reads_them() -> None:
    assert auth_header({}) is None
    assert auth_header({"MLFLOW_TRACKING_TOKEN": "t0k"}) == "Bearer t0k"
    basic = auth_header({"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p"})
    assert basic == "Basic dTpw"  # base64 of u:p
    # MLflow's client checks username and password first; so does this one.
    both = {"MLFLOW_TRACKING_TOKEN": "t0k", "MLFLOW_TRACKING_USERNAME": "u",
            "MLFLOW_TRACKING_PASSWORD": "p"}  # fmt: skip
    assert auth_header(both) == "Basic dTpw"


def test_tracking_off_imports_no_client(tmp_path: Path) -> None:
    """A step without a tracking URI loads neither mlflow nor the HTTP tracking client."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.onnx").write_bytes(b"onnx")
    (tmp_path / "store").mkdir()
    store = (tmp_path / "store").as_uri()
    script = (
        "import json, sys\n"
        "from tekton_mlops.cli import main\n"
        "try:\n"
        f"    main(['push-model', '--path={model}', '--destination={store}',"
        f" '--require-signature=false', '--results-dir={tmp_path / 'results'}'])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert "tekton_mlops.steps.push_model" in loaded  # the step did run
    assert not {m for m in loaded if m == "mlflow" or m.startswith("mlflow.")}
    assert "tekton_mlops.tracking.client" not in loaded
    assert (tmp_path / "results" / "mlflow-model-version").read_text() == ""
