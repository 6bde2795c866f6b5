"""train-custom's runtime steps around a real training program, run as the Task runs it.

prepare-training and finish-training are the CLI; the training step between them is the
sample's own script (numpy logistic regression exported with onnx.helper, read from the
sample's ConfigMap), started as the Task's training step starts it: ``sh launch.sh``
with the environment the Task YAML gives it. What comes out must be a model directory
the rest of the catalog takes unchanged, and a bad output must leave nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import REPO
from tests.integration.test_deploy import lineage, root_digest_of

pytestmark = pytest.mark.integration

TASK_DIR = REPO / "catalog" / "task" / "train-custom" / "0.1"
TASK = yaml.safe_load((TASK_DIR / "train-custom.yaml").read_text())
SAMPLE = list(
    yaml.safe_load_all((TASK_DIR / "samples" / "train-numpy-logistic-regression.yaml").read_text())
)
SCRIPT = SAMPLE[0]["data"]["train.py"]
DIGEST = hashlib.sha256(b"a training image").hexdigest()
IMAGE = f"registry.example/team/trainer:1.4@sha256:{DIGEST}"
FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]


def task_step(name: str) -> dict[str, Any]:
    return next(s for s in TASK["spec"]["steps"] if s["name"] == name)  # type: ignore[no-any-return]


def substituted(text: str, values: dict[str, str]) -> str:
    for variable, value in values.items():
        text = text.replace(f"$({variable})", value)
    return text


def run_training_step(work: Path, target: str = "target", fmt: str = "onnx") -> str:
    """The Task's training step (its command and env from the YAML), as a local process
    whose ``python3`` is this environment's (numpy and onnx, as the runtime image has)."""
    step = task_step("train")
    values = {
        "params.work-dir": str(work),
        "params.target-column": target,
        "params.format": fmt,
        "workspaces.source.path": "",
    }
    env = {e["name"]: substituted(e["value"], values) for e in step["env"]}
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    done = subprocess.run(
        [substituted(part, values) for part in step["command"]],
        env={"PATH": path, "HOME": str(work), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "source" / "train.py"
    path.parent.mkdir()
    path.write_text(SCRIPT)
    return path


@pytest.fixture
def steps(run_step, datasets, script, tmp_path):  # type: ignore[no-untyped-def]
    """``steps(step, *extra)``: prepare-training or finish-training on the iris table, with the
    sample's command, in ``tmp_path/work``, publishing to ``tmp_path/out``."""

    def invoke(step: str, *extra: str):  # type: ignore[no-untyped-def]
        args = [
            f"--data={datasets['iris']}",
            "--target-column=target",
            f"--image={IMAGE}",
            json_arg("command", ["python3", str(script)]),
            json_arg("args", ["--epochs", "500"]),
            f"--work-dir={tmp_path / 'work'}",
        ]
        if step == "finish-training":
            args.append(f"--output={tmp_path / 'out'}")
        return run_step(step, *args, *extra)

    return invoke


def json_arg(name: str, value: list[str]) -> str:
    return f"--{name}={json.dumps(value)}"


@pytest.fixture(scope="module")
def sample_model(datasets, tmp_path_factory) -> bytes:  # type: ignore[no-untyped-def]
    """model.onnx as the sample's script writes it for the iris table."""
    from click.testing import CliRunner

    from tekton_mlops.cli import main

    root = tmp_path_factory.mktemp("sample")
    (root / "train.py").write_text(SCRIPT)
    prepared = CliRunner().invoke(
        main,
        ["prepare-training", f"--data={datasets['iris']}", "--target-column=target",
         f"--image={IMAGE}", json_arg("command", ["python3", str(root / "train.py")]),
         f"--work-dir={root / 'work'}", f"--results-dir={root / 'results'}"],
    )  # fmt: skip
    assert prepared.exit_code == 0, prepared.output
    run_training_step(root / "work")
    return (root / "work" / "model" / "model.onnx").read_bytes()


def infer(url: str, rows: list[list[float]]) -> dict[str, list[Any]]:
    body = {"inputs": [{"name": "X", "shape": [len(rows), 4], "datatype": "FP32", "data": rows}]}
    request = urllib.request.Request(
        f"{url}/v2/models/iris/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        outputs = json.load(answer)["outputs"]
    return {o["name"]: o["data"] for o in outputs}


def test_a_custom_script_gives_a_model_the_catalog_takes_unchanged(  # type: ignore[no-untyped-def]
    run_step, steps, datasets, keys, state, tmp_path
) -> None:
    import onnxruntime as ort

    fetched = run_step(
        "fetch-data", f"--source={datasets['iris'].as_uri()}", f"--output={tmp_path / 'data'}"
    )
    assert fetched.exit_code == 0, fetched.output
    dataset = fetched.results["dataset-digest"]
    work, out = tmp_path / "work", tmp_path / "out"
    pinned = (f"--data={tmp_path / 'data'}", f"--data-digest={dataset}")

    prepared = steps("prepare-training", *pinned)
    assert prepared.exit_code == 0, prepared.output
    assert prepared.results == {}  # finish-training writes the Task's results
    assert (work / "data" / "dataset.csv").read_bytes() == datasets["iris"].read_bytes()
    columns = json.loads((work / "data" / "columns.json").read_text())
    assert columns["feature_columns"] == FEATURES
    assert columns["target"] == {"kind": "numeric", "values": [0, 1, 2]}
    assert (columns["rows"], columns["dataset"]["digest"]) == (150, dataset)
    assert list((work / "model").iterdir()) == []
    laid_out = lineage(work, "prepare-training")
    copy = hashlib.sha256((work / "data" / "dataset.csv").read_bytes()).hexdigest()
    assert laid_out["subject"] == [{"name": "training-data", "digest": {"sha256": copy}}]
    used = laid_out["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert [d["digest"]["sha256"] for d in used] == [dataset[7:]]

    assert "training accuracy" in run_training_step(work)
    written = (work / "model" / "model.onnx").read_bytes()

    finished = steps("finish-training", *pinned)
    assert finished.exit_code == 0, finished.output
    # The training step's model, byte for byte, and the metadata.json written for it.
    assert (out / "model.onnx").read_bytes() == written
    assert finished.results["model-digest"] == "sha256:" + hashlib.sha256(written).hexdigest()
    assert finished.results["model-root-digest"] == root_digest_of(out)
    assert (finished.results["file-count"], finished.results["total-bytes"]) == (
        "2",
        str(sum(p.stat().st_size for p in (out / "model.onnx", out / "metadata.json"))),
    )
    assert json.loads(finished.results["dataset_ARTIFACT_INPUTS"])["digest"] == dataset
    metadata = json.loads((out / "metadata.json").read_text())
    assert (metadata["task"], metadata["classes"], metadata["feature_names"]) == (
        "classification",
        [0, 1, 2],
        FEATURES,
    )
    assert metadata["training"]["image"] == IMAGE
    assert metadata["training"]["dataset_digest"] == dataset

    # The lineage names the dataset, the image with its digest, and the command.
    record = lineage(out, "finish-training")
    build = record["predicate"]["buildDefinition"]
    assert build["resolvedDependencies"] == [
        # fetch-data's manifest names where the dataset came from
        {"name": "dataset", "uri": datasets["iris"].as_uri(), "digest": {"sha256": dataset[7:]}},
        {
            "name": "training-image",
            "uri": "oci://registry.example/team/trainer:1.4",
            "digest": {"sha256": DIGEST},
        },
    ]
    given = build["externalParameters"]["params"]
    assert (given["image"], given["command"][0], given["args"]) == (
        IMAGE,
        "python3",
        ["--epochs", "500"],
    )
    assert record["subject"] == [
        {"name": "model", "digest": {"sha256": hashlib.sha256(written).hexdigest()}},
        {"name": "model-dir", "digest": {"sha256": root_digest_of(out)[7:]}},
    ]
    assert list((out / ".mlops" / "lineage" / "upstream").glob("fetch-data-*.intoto.json"))

    evaluated = run_step(
        "evaluate-model", f"--model-path={out}", f"--data={tmp_path / 'data'}",
        '--thresholds={"accuracy": ">=0.9"}',
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    assert evaluated.results["passed"] == "true"

    signed = run_step("sign-artifact", f"--path={out}", f"--private-key={keys.private}")
    assert signed.exit_code == 0, signed.output
    # evaluate-model's report is a file in the directory now: the signature covers it too.
    assert signed.results["root-digest"] == root_digest_of(out)
    pushed = run_step(
        "push-model", f"--path={out}", f"--destination={(tmp_path / 'store').as_uri()}"
    )
    assert pushed.exit_code == 0, pushed.output
    deployed = run_step(
        "deploy-model", f"--model-uri={pushed.results['model-uri']}", "--target=local",
        "--name=iris", f"--state-dir={state}", f"--public-key={keys.public}",
    )  # fmt: skip
    assert deployed.exit_code == 0, deployed.output
    assert deployed.results["model-digest"] == signed.results["root-digest"]

    # A setosa, a versicolor and a virginica of the table: the served model answers as the
    # training step's own model.onnx does.
    rows = [[5.1, 3.5, 1.4, 0.2], [5.7, 2.8, 4.1, 1.3], [6.3, 3.3, 6.0, 2.5]]
    served = infer(deployed.results["url"], rows)
    session = ort.InferenceSession(written, providers=["CPUExecutionProvider"])
    label, _ = session.run(None, {"X": np.asarray(rows, dtype=np.float32)})
    assert served["label"] == label.tolist() == [0, 1, 2]


def test_the_command_reaches_the_program_exactly_as_given(  # type: ignore[no-untyped-def]
    run_step, datasets, tmp_path
) -> None:
    """No shell expansion, no word splitting: each args element is one argument."""
    shows = tmp_path / "argv.py"
    shows.write_text(
        "import json, os, sys\n"
        "with open(os.path.join(os.environ['MODEL_DIR'], 'argv.json'), 'w') as f:\n"
        "    json.dump(sys.argv[1:], f)\n"
    )
    odd = ["two words", "it's", '"quoted"', "$HOME", "`id`", "*", "a\nb", "-", ""]
    prepared = run_step(
        "prepare-training", f"--data={datasets['iris']}", "--target-column=target",
        f"--image={IMAGE}", json_arg("command", ["python3", str(shows)]), json_arg("args", odd),
        f"--work-dir={tmp_path / 'work'}",
    )  # fmt: skip
    assert prepared.exit_code == 0, prepared.output
    run_training_step(tmp_path / "work")
    assert json.loads((tmp_path / "work" / "model" / "argv.json").read_text()) == odd


def write_model(model: bytes) -> Callable[[Path, Path], None]:
    def write(folder: Path, _outside: Path) -> None:
        (folder / "model.onnx").write_bytes(model)

    return write


def escaping_link(model: bytes) -> Callable[[Path, Path], None]:
    def write(folder: Path, outside: Path) -> None:
        (folder / "model.onnx").write_bytes(model)
        (outside / "secret.txt").write_text("not the model's")
        (folder / "extra.txt").symlink_to(outside / "secret.txt")

    return write


def reserved(model: bytes) -> Callable[[Path, Path], None]:
    def write(folder: Path, _outside: Path) -> None:
        (folder / "model.onnx").write_bytes(model)
        (folder / ".mlops").mkdir()
        (folder / ".mlops" / "manifest.json").write_text("{}")

    return write


def narrower_model() -> bytes:
    """A classifier of three features, where the table has four."""
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((3, 3), dtype=np.float32), "W")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        "narrow",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3]),
        ],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("case", "extra", "phrase"),
    [
        ("broken-onnx", [], "model.onnx: not a valid ONNX model"),
        (
            "wrong-width",
            [],
            "input 'X' has shape [None, 3], but the dataset has 4 feature column(s)",
        ),
        ("no-output", [], "model: empty (the training step writes its model into MODEL_DIR)"),
        ("escaping-link", [], "extra.txt: symbolic link to"),
        ("too-large", ["--max-bytes=100"], "model: more than max-bytes (100) bytes"),
        ("reserved", [], "model/.mlops: reserved for the runtime's manifest and lineage"),
        ("few-classes", [], "probabilities has shape [5, 3] on the test rows, but target column"),
    ],
)
def test_a_bad_output_fails_naming_the_problem_and_publishes_nothing(  # type: ignore[no-untyped-def]
    steps, sample_model, datasets, tmp_path, case, extra, phrase
) -> None:
    writers: dict[str, Callable[[Path, Path], None]] = {
        "broken-onnx": write_model(b"\x08\x07not an ONNX model"),
        "wrong-width": write_model(narrower_model()),
        "no-output": lambda folder, outside: None,
        "escaping-link": escaping_link(sample_model),
        "too-large": write_model(sample_model),
        "reserved": reserved(sample_model),
        "few-classes": write_model(sample_model),
    }
    data = []
    if case == "few-classes":  # the model's 3 classes against a table of 2
        rows = datasets["iris"].read_text().splitlines()
        two = tmp_path / "two-classes.csv"
        two.write_text("\n".join(r for r in rows if not r.endswith(",2")) + "\n")
        data = [f"--data={two}"]
    assert steps("prepare-training", *data).exit_code == 0
    writers[case](tmp_path / "work" / "model", tmp_path)

    failed = steps("finish-training", *data, *extra)
    assert failed.exit_code == 1, failed.output
    errors = [line for line in failed.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, failed.output
    assert phrase in errors[0]
    assert "Traceback" not in failed.output
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # no staging
    assert failed.results == {}


@pytest.mark.parametrize(
    ("step", "bad", "phrase"),
    [
        (
            "prepare-training",
            "--image=trainer:1.4",
            "--image='trainer:1.4': must be an image pinned",
        ),
        ("prepare-training", "--command=python3 train.py", "--command='python3 train.py': must be"),
        ("prepare-training", "--format=pickle", "--format='pickle': must be one of onnx, files"),
        ("prepare-training", "--work-dir=relative", "--work-dir='relative': must be an absolute"),
        ("finish-training", "--min-bytes=200", "--min-bytes=200: must be <= max-bytes (100)"),
        ("finish-training", "--args=[1]", "--args[0]"),
    ],
)
def test_bad_params_exit_2_and_write_nothing(  # type: ignore[no-untyped-def]
    steps, tmp_path, step, bad, phrase
) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    refused = steps(step, bad, "--max-bytes=100")
    assert refused.exit_code == 2, refused.output
    assert phrase in refused.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no work-dir, no model
    assert refused.results == {}


def test_prepare_refuses_data_that_is_not_what_was_pinned(steps, tmp_path) -> None:  # type: ignore[no-untyped-def]
    refused = steps("prepare-training", f"--data-digest={'0' * 64}")
    assert refused.exit_code == 1
    assert "does not match the pinned" in refused.output
    assert not (tmp_path / "work").exists()
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "stale").write_text("from another run")
    assert "work: not empty" in steps("prepare-training").output


def test_format_files_publishes_any_files(steps, run_step, keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert steps("prepare-training", "--format=files").exit_code == 0
    model = tmp_path / "work" / "model"
    (model / "weights.pt").write_bytes(os.urandom(4096))
    (model / "tokenizer").mkdir()
    (model / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (model / "latest.pt").symlink_to("weights.pt")  # a link inside: its file is published

    finished = steps("finish-training", "--format=files")
    assert finished.exit_code == 0, finished.output
    out = tmp_path / "out"
    published = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert [p for p in published if not p.startswith(".mlops")] == [
        "latest.pt", "tokenizer", "tokenizer/vocab.txt", "weights.pt",
    ]  # fmt: skip
    assert not (out / "latest.pt").is_symlink()
    assert (out / "latest.pt").read_bytes() == (model / "weights.pt").read_bytes()
    assert finished.results["model-digest"] == ""
    assert finished.results["model-root-digest"] == root_digest_of(out)
    assert [s["name"] for s in lineage(out, "finish-training")["subject"]] == ["model-dir"]
    signed = run_step("sign-artifact", f"--path={out}", f"--private-key={keys.private}")
    assert signed.exit_code == 0, signed.output
    assert signed.results["root-digest"] == finished.results["model-root-digest"]


def test_a_model_with_its_own_metadata_is_held_to_it(steps, sample_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ours = {
        "task": "classification", "estimator": "my-net", "feature_names": FEATURES,
        "target_column": "target", "classes": [0, 1, 2],
    }  # fmt: skip
    assert steps("prepare-training").exit_code == 0
    model = tmp_path / "work" / "model"
    (model / "model.onnx").write_bytes(sample_model)
    (model / "metadata.json").write_text(json.dumps({**ours, "feature_names": FEATURES[:3]}))
    wrong = steps("finish-training")
    assert wrong.exit_code == 1
    assert "takes [('X', [None, 4])], but its metadata names 3 feature column(s)" in wrong.output
    assert not (tmp_path / "out").exists()

    (model / "metadata.json").write_text(json.dumps(ours))
    finished = steps("finish-training")
    assert finished.exit_code == 0, finished.output
    assert json.loads((tmp_path / "out" / "metadata.json").read_text()) == ours  # kept as written


def test_a_model_without_known_outputs_is_published_without_metadata(steps, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["scores"])],
        "scores",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(np.ones((4, 1), dtype=np.float32), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert steps("prepare-training").exit_code == 0
    onnx.save(model, tmp_path / "work" / "model" / "model.onnx")
    finished = steps("finish-training")
    assert finished.exit_code == 0, finished.output
    assert "no metadata.json: the outputs are neither" in finished.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".mlops", "model.onnx"]
