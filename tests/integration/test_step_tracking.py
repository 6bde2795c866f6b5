"""train-model, evaluate-model and tune-model logging to a real MLflow server, read back
with MLflow's own client: what a data scientist sees in MLflow after a pipeline ran."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import refused_url
from tests.integration.mlflow_server import MlflowServer, running_mlflow

pytestmark = pytest.mark.integration

EXPERIMENT = "iris-loop"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture
def tekton_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEKTON_MLOPS_INVOCATION_ID", "loop-1-train-model")
    monkeypatch.setenv("TEKTON_MLOPS_PIPELINE_RUN", "loop-1")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train(run_step, data: Path, model: Path, *extra: str, estimator: str = "logistic-regression"):  # type: ignore[no-untyped-def]
    return run_step(
        "train-model",
        f"--data={data}",
        "--target-column=target",
        f"--output={model}",
        f"--estimator={estimator}",
        *extra,
    )


def tracked(server: MlflowServer) -> list[str]:
    return [f"--mlflow-tracking-uri={server.uri}", f"--mlflow-experiment={EXPERIMENT}"]


def test_train_then_evaluate_are_two_runs_with_the_models_digest(  # type: ignore[no-untyped-def]
    run_step, datasets, tmp_path, mlflow_server, tekton_env
) -> None:
    model = tmp_path / "model"
    trained = train(
        run_step,
        datasets["iris"],
        model,
        '--hyperparameters={"n_estimators": 10, "max_depth": 3}',
        *tracked(mlflow_server),
        estimator="random-forest-classifier",
    )
    assert trained.exit_code == 0, trained.output
    run_id = trained.results["mlflow-run-id"]
    seen = mlflow_server.read("run", run_id=run_id)
    assert seen["status"] == "FINISHED"
    assert seen["experiment"] == EXPERIMENT
    assert seen["params"] == {
        "estimator": "random-forest-classifier",
        "seed": "42",
        "test_size": "0.2",
        "n_estimators": "10",
        "max_depth": "3",
    }
    assert seen["metrics"] == pytest.approx(json.loads(trained.results["metrics"]))
    tags = seen["tags"]
    assert tags["tekton-mlops.model.root-digest"] == trained.results["model-root-digest"]
    assert tags["tekton-mlops.dataset.digest"].startswith("sha256:")
    assert tags["tekton.dev/pipelineRun"] == "loop-1"
    assert tags["tekton-mlops.step"] == "train-model"
    # The model directory as it was written, file for file and byte for byte.
    for name in ("model.onnx", "metadata.json", "metrics.json"):
        assert seen["artifacts"][f"model/{name}"]["sha256"] == sha256(model / name)

    report = tmp_path / "evaluation"
    evaluated = run_step(
        "evaluate-model",
        f"--model-path={model}",
        f"--data={datasets['iris']}",
        f"--output={report}",
        '--thresholds={"accuracy": ">=0.5"}',
        "--report=report",
        *tracked(mlflow_server),
    )
    assert evaluated.exit_code == 0, evaluated.output
    seen = mlflow_server.read("run", run_id=evaluated.results["mlflow-run-id"])
    assert seen["status"] == "FINISHED"
    assert seen["metrics"] == pytest.approx(json.loads(evaluated.results["metrics"]))
    assert seen["params"] == {"threshold.accuracy": ">=0.5"}
    assert seen["tags"]["tekton-mlops.passed"] == "true"
    # The same model, by digest, in both runs: MLflow's view joins them.
    assert seen["tags"]["tekton-mlops.model.root-digest"] == trained.results["model-root-digest"]
    assert seen["artifacts"]["report/report.html"]["sha256"] == sha256(
        report / "report" / "report.html"
    )
    assert "evaluation/evaluation.json" in seen["artifacts"]


def test_a_failed_threshold_ends_the_evaluation_run_failed(  # type: ignore[no-untyped-def]
    run_step, datasets, tmp_path, mlflow_server, tekton_env
) -> None:
    model = tmp_path / "model"
    trained = train(run_step, datasets["iris"], model)
    assert trained.exit_code == 0, trained.output
    assert trained.results["mlflow-run-id"] == ""  # not asked to track: nothing tracked
    evaluated = run_step(
        "evaluate-model",
        f"--model-path={model}",
        f"--data={datasets['iris']}",
        f"--output={tmp_path / 'evaluation'}",
        '--thresholds={"accuracy": ">=1.01"}',
        "--fail-on-threshold=true",
        *tracked(mlflow_server),
    )
    assert evaluated.exit_code == 1
    run_ids = [
        line.split("run ", 1)[1].split()[0]
        for line in evaluated.output.splitlines()
        if "tracking to MLflow run" in line
    ]
    assert len(run_ids) == 1, evaluated.output
    seen = mlflow_server.read("run", run_id=run_ids[0])
    assert seen["status"] == "FAILED"
    assert seen["tags"]["tekton-mlops.passed"] == "false"


def test_tuning_is_a_parent_run_with_a_child_run_per_trial(  # type: ignore[no-untyped-def]
    run_step, datasets, tmp_path, mlflow_server, tekton_env
) -> None:
    out = tmp_path / "tuning"
    space = {"C": {"low": 0.01, "high": 100, "log": True}, "max_iter": {"choices": [500]}}
    tuned = run_step(
        "tune-model",
        f"--data={datasets['iris']}",
        "--target-column=target",
        f"--output={out}",
        "--estimator=logistic-regression",
        f"--search-space={json.dumps(space)}",
        "--n-trials=4",
        "--cv-folds=3",
        *tracked(mlflow_server),
    )
    assert tuned.exit_code == 0, tuned.output
    parent = tuned.results["mlflow-run-id"]
    seen = mlflow_server.read("run", run_id=parent)
    assert seen["status"] == "FINISHED"
    best = json.loads(tuned.results["best-params"])
    assert seen["params"]["best.C"] == str(best["C"])
    assert seen["metrics"]["best_accuracy"] == pytest.approx(float(tuned.results["best-score"]))
    assert seen["artifacts"]["tuning/trials.csv"]["sha256"] == sha256(out / "trials.csv")
    children = mlflow_server.read("children", run_id=parent)
    assert sorted(c["run_name"] for c in children) == [f"trial-{n}" for n in range(4)]
    assert max(c["metrics"]["accuracy"] for c in children) == pytest.approx(
        float(tuned.results["best-score"])
    )


def test_a_tracking_server_that_is_down_fails_training_before_anything_is_written(  # type: ignore[no-untyped-def]
    run_step, datasets, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("TEKTON_MLOPS_MLFLOW_RETRIES", "1")
    model = tmp_path / "model"
    with refused_url() as url:
        trained = train(run_step, datasets["iris"], model, f"--mlflow-tracking-uri={url}")
    assert trained.exit_code == 1
    assert f"MLflow tracking server {url}" in trained.output
    assert "Connection refused" in trained.output
    assert not model.exists()
