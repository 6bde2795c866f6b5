"""What ``tekton-mlops kfp compile`` writes, and what it refuses (exit 2, nothing written).

No ``from __future__ import annotations`` here: the KFP SDK reads the annotations of the
components this module defines, and needs them as objects.
"""

import inspect
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import dsl, kubernetes
from kfp.dsl.graph_component import GraphComponent

from tekton_mlops.kfp import ir
from tekton_mlops.kfp.compiler import compile_spec
from tekton_mlops.kfp.errors import CompileError, Unsupported
from tekton_mlops.kfp.values import NONE_TEXT
from tests.kfp import pipelines as p
from tests.kfp.conftest import CLI, compile_ir, tekton_documents

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

PIPELINES = [value for _, value in inspect.getmembers(p) if isinstance(value, GraphComponent)]


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda f: f.name)
def test_every_pipeline_compiles_to_admitted_tekton(pipeline: Any) -> None:
    documents = tekton_documents(compile_ir(pipeline))
    assert [d["kind"] for d in documents] == ["Pipeline", "PipelineRun"]
    assert [d["apiVersion"] for d in documents] == ["tekton.dev/v1", "tekton.dev/v1"]


def test_a_compile_is_repeatable_and_names_are_kubernetes_safe() -> None:
    text = compile_ir(p.params_types)
    first = tekton_documents(text)
    assert tekton_documents(text) == first
    pipeline, run = first
    assert pipeline["metadata"]["name"] == "params-types"
    assert run["metadata"]["generateName"] == "params-types-"
    assert run["spec"]["pipelineRef"] == {"name": "params-types"}
    claim = run["spec"]["workspaces"][0]
    assert claim["name"] == "kfp"
    assert "volumeClaimTemplate" in claim
    params = {q["name"]: q for q in pipeline["spec"]["params"]}
    assert params["count"]["default"] == "3"  # the IR's 3.0, as KFP's launcher writes it
    assert params["flag"]["default"] == "false"
    assert params["items"]["default"] == '["x", "y"]'
    assert all(q["type"] == "string" for q in params.values())


def test_an_optional_input_without_default_defaults_to_absent() -> None:
    pipeline, _ = tekton_documents(compile_ir(p.optional_pipeline))
    params = {q["name"]: q for q in pipeline["spec"]["params"]}
    assert params["maybe"]["default"] == NONE_TEXT


def test_lightweight_components_run_in_the_runtime_image_without_pip() -> None:
    pipeline, _ = tekton_documents(compile_ir(p.loop_param))
    step = next(t for t in pipeline["spec"]["tasks"] if t["name"] == "double")["taskSpec"]["steps"][
        0
    ]
    assert step["image"].startswith("ghcr.io/tekton-mlops/runtime:")
    assert step["command"] == ["tekton-mlops", "kfp", "launch", "python"]
    assert not any("pip install" in arg for arg in step["args"])
    source = next(arg for arg in step["args"] if arg.startswith("--source="))
    assert "def double(num: int) -> int:" in source


def test_text_tekton_would_read_as_a_variable_is_carried_encoded() -> None:
    @dsl.container_component
    def dollar(out: dsl.OutputPath(str)):
        return dsl.ContainerSpec(
            image="alpine", command=["sh", "-c", 'echo "$(params.x) $(date)" > "$0"'], args=[out]
        )

    @dsl.pipeline(name="dollar")
    def dollars() -> str:
        return dollar().outputs["out"]

    pipeline, _ = tekton_documents(compile_ir(dollars))
    args = pipeline["spec"]["tasks"][0]["taskSpec"]["steps"][0]["args"]
    plan = next(arg for arg in args if arg.startswith("--plan="))
    assert plan.startswith("--plan=b64:")


def _plan(step: dict[str, Any]) -> dict[str, Any]:
    text = next(arg for arg in step["args"] if arg.startswith("--plan="))
    return dict(json.loads(text[len("--plan=") :]))


def test_retry_backoff_goes_to_the_launcher_with_the_attempt() -> None:
    @dsl.pipeline(name="backoff")
    def backoff() -> None:
        p.add(a=1, b=2).set_retry(
            3, backoff_duration="2s", backoff_factor=3.0, backoff_max_duration="10s"
        )
        p.add(a=3, b=4).set_retry(3)  # no backoff: Tekton's retries as they are

    pipeline, _ = tekton_documents(compile_ir(backoff))
    waits, at_once = [t["taskSpec"]["steps"][0] for t in pipeline["spec"]["tasks"]]
    assert _plan(waits)["backoff"] == {"duration": 2.0, "factor": 3.0, "max": 10.0}
    assert "--retry-count=$(context.task.retry-count)" in waits["args"]
    assert "backoff" not in _plan(at_once)
    assert not any(arg.startswith("--retry-count") for arg in at_once["args"])
    assert [t["retries"] for t in pipeline["spec"]["tasks"]] == [3, 3]


def test_a_retry_backoff_that_is_not_a_duration_is_refused() -> None:
    text = compile_ir(p.retries).replace("backoffDuration: 0s", "backoffDuration: 2 minutes")
    assert "2 minutes" in text
    with pytest.raises(CompileError, match=r"retryPolicy.backoffDuration '2 minutes' is not a"):
        compile_spec(ir.load(text))


def test_parallelism_slots_go_to_every_task_inside_the_loop() -> None:
    @dsl.pipeline(name="nested-limits")
    def nested(outer: list = [1, 2]) -> None:  # noqa: B006
        with dsl.ParallelFor(outer, parallelism=2) as o, dsl.ParallelFor([10, 20]) as i:
            p.add(a=o, b=i)
        p.add(a=0, b=0)

    pipeline, _ = tekton_documents(compile_ir(nested))
    tasks = {t["name"]: t for t in pipeline["spec"]["tasks"]}
    inside, outside, loop = tasks["add"], tasks["add-2"], tasks["for-loop-1"]
    assert "matrix" in inside
    # The outer loop's limit; the inner loop has none.
    assert _plan(inside["taskSpec"]["steps"][0])["slots"] == [
        {"depth": 1, "loop": "for-loop-1", "parallelism": 2}
    ]
    assert "slots" not in _plan(outside["taskSpec"]["steps"][0])
    assert "at most 2 iterations run at once" in loop["description"]
    assert "sidecars" not in inside["taskSpec"]  # a lightweight component holds its own


# Refused -----------------------------------------------------------------------------------


def _refused(pipeline: Any) -> Unsupported:
    with pytest.raises(Unsupported) as caught:
        compile_spec(ir.load(compile_ir(pipeline)))
    return caught.value


def test_google_cloud_pipeline_components_are_refused() -> None:
    @dsl.container_component
    def batch_predict(model: str):
        return dsl.ContainerSpec(
            image="gcr.io/ml-pipeline/google-cloud-pipeline-components:2.19.0",
            command=["python3", "-u", "-m", "google_cloud_pipeline_components.container.v1"],
            args=["--model", model],
        )

    @dsl.pipeline(name="gcpc")
    def gcpc() -> None:
        batch_predict(model="m")

    error = _refused(gcpc)
    assert str(error) == (
        "unsupported KFP feature Google Cloud Pipeline Components (task batch-predict): "
        "they call Google Cloud services"
    )


def test_a_gcs_importer_is_refused() -> None:
    @dsl.pipeline(name="gcs")
    def gcs() -> None:
        imported = dsl.importer(artifact_uri="gs://bucket/data.csv", artifact_class=dsl.Dataset)
        p.read_text(data=imported.output)

    assert "dsl.importer of gs:// URIs (task importer)" in str(_refused(gcs))


def test_resources_from_inputs_and_vertex_accelerators_are_refused() -> None:
    @dsl.pipeline(name="dynamic-resources")
    def dynamic(cpu: str = "1") -> None:
        p.add(a=1, b=2).set_cpu_limit(cpu)

    @dsl.pipeline(name="vertex-accelerator")
    def vertex() -> None:
        task = p.add(a=1, b=2).set_accelerator_type("NVIDIA_TESLA_T4")
        task.set_accelerator_limit(1)

    assert "resources set from a pipeline input or a task output (task add)" in str(
        _refused(dynamic)
    )
    assert "accelerator type NVIDIA_TESLA_T4 (task add)" in str(_refused(vertex))


def test_a_pvc_created_by_a_task_is_refused() -> None:
    @dsl.pipeline(name="pvc")
    def pvc() -> None:
        claim = kubernetes.CreatePVC(
            pvc_name_suffix="-x", access_modes=["ReadWriteOnce"], size="1Gi"
        )
        task = p.add(a=1, b=2)
        kubernetes.mount_pvc(task, pvc_name=claim.outputs["name"], mount_path="/data")

    assert "PVC mount whose claim comes from a task" in str(_refused(pvc))


def test_unknown_executors_are_refused() -> None:
    spec = ir.load(compile_ir(p.condition_false))
    executors = spec.data["deploymentSpec"]["executors"]
    executors[next(iter(executors))] = {"resolver": {"outputArtifactQueries": {}}}
    with pytest.raises(Unsupported, match=r"resolver executors .* \(task add"):
        compile_spec(spec)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not yaml", "is not YAML"),
        ("- a list", "is not a KFP pipeline IR"),
        ("apiVersion: tekton.dev/v1\nkind: Pipeline\n", "is Tekton YAML already"),
        ("pipelineInfo: {name: x}\nroot: {dag: {}}\nschemaVersion: 1.0.0\n", "schemaVersion 1.0.0"),
    ],
)
def test_files_that_are_not_kfp_ir_are_refused(text: str, message: str) -> None:
    with pytest.raises(CompileError, match=message):
        ir.load(text, "f.yaml")


def test_the_cli_exits_2_and_writes_nothing_when_a_feature_is_unsupported(tmp_path: Path) -> None:
    source = tmp_path / "gcs.py"
    source.write_text(
        "from kfp import dsl\n"
        "@dsl.component(base_image='python:3.11')\n"
        "def show(data: dsl.Input[dsl.Dataset]):\n"
        "    print(data.path)\n"
        "@dsl.pipeline(name='gcs')\n"
        "def gcs():\n"
        "    imported = dsl.importer(artifact_uri='gs://b/x', artifact_class=dsl.Dataset)\n"
        "    show(data=imported.output)\n"
    )
    out = tmp_path / "out.yaml"
    done = subprocess.run(
        [CLI, "kfp", "compile", f"{source}:gcs", "-o", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: unsupported KFP feature dsl.importer of gs:// URIs (task importer): fetch-data "
        "reads file, s3, http(s) and oci URIs"
    ]
    assert not out.exists()


def test_the_cli_compiles_ir_and_python_files(tmp_path: Path) -> None:
    ir_file = tmp_path / "ir.yaml"
    ir_file.write_text(compile_ir(p.loop_static))
    from_ir = subprocess.run([CLI, "kfp", "compile", str(ir_file)], capture_output=True, text=True)
    assert from_ir.returncode == 0, from_ir.stderr
    documents = list(yaml.safe_load_all(from_ir.stdout))
    assert [d["kind"] for d in documents] == ["Pipeline", "PipelineRun"]
    sample = Path(__file__).resolve().parents[2] / "examples" / "kfp" / "train_evaluate.py"
    out = tmp_path / "sample.yaml"
    from_py = subprocess.run(
        [CLI, "kfp", "compile", f"{sample}:train_evaluate", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert from_py.returncode == 0, from_py.stderr
    assert "not enforced" not in from_py.stderr
    pipeline = next(yaml.safe_load_all(out.read_text()))
    train = next(t for t in pipeline["spec"]["tasks"] if t["name"] == "train")
    # Its parallelism 2 holds: a container component's slot is held by a sidecar.
    assert [s["name"] for s in train["taskSpec"]["sidecars"]] == ["slots"]
    missing = subprocess.run([CLI, "kfp", "compile", f"{sample}"], capture_output=True, text=True)
    assert missing.returncode == 2
    assert "name the pipeline function too" in missing.stderr
