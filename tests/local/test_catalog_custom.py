"""train-custom's catalog test (tests/run.yaml) and sample, through the local executor.

The training step's image is the runtime image here, as in the YAML: the process runner
runs it as this installation, whose python3 has numpy and onnx, so the sample's script
trains without a download.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.local.test_catalog_runs import CATALOG, catalog_file, write_iris

pytestmark = pytest.mark.integration

TASK = "task/train-custom/0.1"


def test_train_custom_tests_run_yaml(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = tekton(catalog_file(f"{TASK}/tests/run.yaml"), "--catalog", str(CATALOG))
    assert run.exit_code == 0, run.log
    assert run.condition["reason"] == "Succeeded"
    train = run.taskrun(tmp_path / "runs", "train")
    assert [(s["name"], s["terminated"]["exitCode"]) for s in train["status"]["steps"]] == [
        ("prepare", 0),
        ("train", 0),
        ("finish", 0),
    ]
    results = {r["name"]: r["value"] for r in train["status"]["results"]}
    assert results["model-digest"].startswith("sha256:")
    assert results["file-count"] == "2"  # model.onnx and the metadata.json written for it


def test_sample_trains_a_model_the_evaluate_sample_passes(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    claim = tmp_path / "pvcs" / "ml-workspace"
    write_iris(claim / "dataset" / "iris.csv")
    train = tekton(
        catalog_file(f"{TASK}/samples/train-numpy-logistic-regression.yaml"),
        "--catalog",
        str(CATALOG),
    )
    assert train.exit_code == 0, train.log
    assert train.results["model-root-digest"].startswith("sha256:")
    metadata = json.loads((claim / "model" / "metadata.json").read_text())
    assert (metadata["estimator"], metadata["classes"]) == ("custom", [0, 1, 2])
    evaluate = tekton(
        catalog_file("task/evaluate-model/0.1/samples/evaluate-with-thresholds.yaml"),
        "--catalog",
        str(CATALOG),
    )
    assert evaluate.exit_code == 0, evaluate.log
    assert evaluate.results["passed"] == "true"


REFUSED = """
apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: refused
spec:
  taskRef:
    name: train-custom
  params:
    - {name: target-column, value: species}
    - {name: image, value: IMAGE}
    - name: command
      value: >-
        ["sh", "-c", "if [ -e /workspace/data/iris.csv ]; then exit 3; fi;
        printf planted > /workspace/model/planted 2>/dev/null;
        printf 'not a model' > \\"$MODEL_DIR/model.onnx\\""]
  workspaces:
    - name: data
      persistentVolumeClaim: {claimName: ml-workspace}
      subPath: dataset
    - name: model
      persistentVolumeClaim: {claimName: ml-workspace}
      subPath: model
"""


def test_a_refused_output_fails_the_taskrun_and_publishes_nothing(tekton, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The training step sees neither workspace (no dataset file, no model workspace to write
    into); what it wrote to MODEL_DIR is refused, and nothing lands."""
    claim = tmp_path / "pvcs" / "ml-workspace"
    write_iris(claim / "dataset" / "iris.csv")
    (claim / "model").mkdir()
    image = (CATALOG / "runtime-image.txt").read_text().strip()
    run = tekton(REFUSED.replace("IMAGE", image), "--catalog", str(CATALOG))
    assert run.exit_code == 1
    assert run.condition["reason"] == "Failed"
    ended = {s["name"]: s["terminationReason"] for s in run.object["status"]["steps"]}
    assert ended == {"prepare": "Completed", "train": "Completed", "finish": "Error"}
    assert "model.onnx: not a valid ONNX model" in run.log
    # Nothing published, and the training step's write to /workspace/model did not land in
    # the model workspace: that step does not mount it.
    assert list((claim / "model").iterdir()) == []


def test_the_sample_and_the_catalog_test_train_with_the_same_script() -> None:
    def script(relative: str) -> str:
        documents = yaml.safe_load_all((CATALOG / relative).read_text())
        config_map = next(d for d in documents if d["kind"] == "ConfigMap")
        return str(config_map["data"]["train.py"])

    assert script(f"{TASK}/tests/run.yaml") == script(
        f"{TASK}/samples/train-numpy-logistic-regression.yaml"
    )
