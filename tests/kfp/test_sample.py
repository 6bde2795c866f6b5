"""The sample (examples/kfp/train_evaluate.py) and ``kfp run`` as a user calls it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.kfp.conftest import CLI

SAMPLE = REPO / "examples" / "kfp" / "train_evaluate.py"

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def test_the_sample_trains_evaluates_and_picks_the_best_model(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            CLI,
            "kfp",
            "run",
            f"{SAMPLE}:train_evaluate",
            "--run-dir",
            str(tmp_path / "runs"),
            "--param",
            "min_accuracy=0.9",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    finished, shown = list(yaml.safe_load_all(done.stdout))
    assert finished["kind"] == "PipelineRun"
    assert finished["status"]["conditions"][0]["reason"] == "Succeeded"
    outputs = shown["outputs"]["parameters"]
    name = finished["metadata"]["name"]
    store = tmp_path / "runs" / name / "workspaces" / "kfp" / name
    # What each iteration measured, read back from the store: the pipeline chose their best.
    scores = {}
    for index in range(3):
        record = json.loads((store / "read-accuracy" / str(index) / "outputs.json").read_text())
        metrics = record["artifacts"]["metrics"][0]["metadata"]
        scores[metrics["C"]] = record["parameters"]["Output"]
        assert metrics["accuracy"] == record["parameters"]["Output"]
    best = max(scores.values())
    assert outputs["best_accuracy"] == best
    assert scores[outputs["best_c"]] == best
    assert best >= 0.9
    # The models are the catalog's: ONNX written by tekton-mlops train-model.
    assert list((store / "train" / "0" / "artifacts" / "model").glob("model.onnx"))
    report = json.loads((store / "write-report" / "outputs.json").read_text())
    # The URI is the artifact's path in the steps' mount of the workspace.
    assert report["artifacts"]["report"][0]["uri"].endswith(
        f"/{name}/write-report/artifacts/report"
    )
    markdown = (store / "write-report" / "artifacts" / "report").read_text()
    assert f"C={outputs['best_c']} reached accuracy {best:.4f}" in markdown


def test_run_prints_the_pipeline_run_then_the_outputs(tmp_path: Path) -> None:
    pipeline = tmp_path / "hello.py"
    pipeline.write_text(
        "from kfp import dsl\n"
        "@dsl.component(base_image='python:3.11')\n"
        "def greet(name: str, times: int, out: dsl.Output[dsl.Dataset]) -> str:\n"
        "    open(out.path, 'w').write(name * times)\n"
        "    return f'hello {name}'\n"
        "@dsl.pipeline(name='Hello World')\n"
        "def hello(name: str, times: int = 2) -> dsl.Dataset:\n"
        "    return greet(name=name, times=times).outputs['out']\n"
    )
    done = subprocess.run(
        [CLI, "kfp", "run", f"{pipeline}:hello", "--param", "name=ab", "--run-dir", "runs"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    finished, shown = list(yaml.safe_load_all(done.stdout))
    assert finished["metadata"]["name"].startswith("hello-world-")
    artifact = Path(shown["outputs"]["artifacts"]["Output"])
    assert artifact.read_text() == "abab"
    assert artifact.is_relative_to(tmp_path / "runs")
    assert (tmp_path / ".tekton-mlops" / "kfp" / "hello-world.yaml").is_file() is False
    assert (tmp_path / "kfp" / "hello-world.yaml").is_file()

    missing = subprocess.run(
        [CLI, "kfp", "run", f"{pipeline}:hello", "--param", "nme=x", "--run-dir", "runs"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert missing.returncode == 2
    assert "the pipeline has no input nme (inputs: name, times)" in missing.stderr
