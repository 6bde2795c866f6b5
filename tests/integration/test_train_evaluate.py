"""train-model and evaluate-model on scikit-learn's bundled datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

CLASSIFIERS = ["logistic-regression", "random-forest-classifier", "gradient-boosting-classifier"]
REGRESSORS = ["linear-regression", "random-forest-regressor", "gradient-boosting-regressor"]
SMALL = {
    "logistic-regression": '{"max_iter": 2000}',
    "random-forest-classifier": '{"n_estimators": 20, "max_depth": 6}',
    "gradient-boosting-classifier": '{"n_estimators": 20}',
    "linear-regression": "{}",
    "random-forest-regressor": '{"n_estimators": 20, "max_depth": 6}',
    "gradient-boosting-regressor": '{"n_estimators": 20}',
}


def train(run_step, data: Path, out: Path, estimator: str, *extra: str):  # type: ignore[no-untyped-def]
    return run_step(
        "train-model",
        f"--data={data}",
        "--target-column=target",
        f"--output={out}",
        f"--estimator={estimator}",
        f"--hyperparameters={SMALL[estimator]}",
        *extra,
    )


def sklearn_reference(data: Path, estimator: str, seed: int = 42):  # type: ignore[no-untyped-def]
    """Train the same model with scikit-learn directly, as a user would, for comparison."""
    from sklearn.model_selection import train_test_split

    from tekton_mlops.ml.estimators import build

    table = np.genfromtxt(data, delimiter=",", skip_header=1)
    x, y = table[:, :-1], table[:, -1]
    classifier = estimator in CLASSIFIERS
    if classifier:
        y = y.astype(np.int64)
    split = train_test_split(
        x, y, test_size=0.2, random_state=seed, stratify=y if classifier else None
    )
    model = build(estimator, json.loads(SMALL[estimator]), seed).fit(split[0], split[2])
    return model, split[1].astype(np.float32)


@pytest.mark.parametrize("estimator", CLASSIFIERS + REGRESSORS)
def test_onnx_export_equals_scikit_learn(run_step, datasets, tmp_path, estimator) -> None:  # type: ignore[no-untyped-def]
    import onnx
    import onnxruntime as ort

    data = datasets["diabetes" if estimator in REGRESSORS else "iris"]
    out = tmp_path / "model"
    outcome = train(run_step, data, out, estimator, "--onnx-opset=18")
    assert outcome.exit_code == 0, outcome.output

    proto = onnx.load(out / "model.onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert {o.domain: o.version for o in proto.opset_import}[""] == 18
    assert proto.ir_version == 8
    outputs = {o.name: o.type.WhichOneof("value") for o in proto.graph.output}
    assert set(outputs.values()) == {"tensor_type"}  # no ZipMap sequence-of-maps output

    model, holdout = sklearn_reference(data, estimator)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, {"X": holdout}), strict=True)
    )
    if estimator in CLASSIFIERS:
        np.testing.assert_array_equal(got["label"], model.predict(holdout))
        np.testing.assert_allclose(got["probabilities"], model.predict_proba(holdout), atol=1e-5)
    else:
        np.testing.assert_allclose(got["variable"].ravel(), model.predict(holdout), rtol=1e-4)

    assert (
        outcome.results["model-digest"]
        == "sha256:" + __import__("hashlib").sha256((out / "model.onnx").read_bytes()).hexdigest()
    )
    metrics = json.loads(outcome.results["metrics"])
    assert metrics == json.loads((out / "metrics.json").read_text())
    if estimator in CLASSIFIERS:
        assert metrics["accuracy"] > 0.8
    else:
        assert metrics["r2"] > 0.2
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["feature_names"][0] == "sepal_length_cm" or estimator in REGRESSORS


def test_same_seed_gives_byte_identical_model(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    runs = [
        train(run_step, datasets["cancer"], tmp_path / f"m{i}", "random-forest-classifier")
        for i in range(2)
    ]
    assert all(r.exit_code == 0 for r in runs)
    assert (tmp_path / "m0" / "model.onnx").read_bytes() == (
        tmp_path / "m1" / "model.onnx"
    ).read_bytes()
    other = train(
        run_step, datasets["cancer"], tmp_path / "m2", "random-forest-classifier", "--seed=7"
    )
    assert other.results["model-digest"] != runs[0].results["model-digest"]


def test_fetched_dataset_is_verified_before_training(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fetched = run_step(
        "fetch-data", f"--source={datasets['iris'].as_uri()}", f"--output={tmp_path}/data"
    )
    assert fetched.exit_code == 0
    digest = fetched.results["dataset-digest"]
    ok = train(
        run_step,
        tmp_path / "data",
        tmp_path / "m",
        "logistic-regression",
        f"--data-digest={digest}",
    )
    assert ok.exit_code == 0, ok.output
    chains = json.loads(ok.results["dataset_ARTIFACT_INPUTS"])
    assert chains == {"uri": datasets["iris"].as_uri(), "digest": digest}
    lineage = json.loads((tmp_path / "m" / ".mlops/lineage/train-model.intoto.json").read_text())
    inputs = lineage["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert inputs[0]["digest"]["sha256"] == digest.removeprefix("sha256:")

    with (tmp_path / "data" / "iris.csv").open("a") as handle:
        handle.write("9.9,9.9,9.9,9.9,2\n")  # tampered after the fetch
    tampered = train(run_step, tmp_path / "data", tmp_path / "m2", "logistic-regression")
    assert tampered.exit_code == 1
    assert "does not match the manifest" in tampered.output
    assert not (tmp_path / "m2").exists()


def test_pinned_digest_mismatch(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outcome = train(
        run_step,
        datasets["iris"],
        tmp_path / "m",
        "logistic-regression",
        f"--data-digest={'a' * 64}",
    )
    assert outcome.exit_code == 1
    assert "does not match the pinned" in outcome.output
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("csv_text", "target", "message"),
    [
        ("a,b,label\n1,2,x\n3,,y\n", "label", "missing value in column 'b' at row 3"),
        ("a,b,label\n1,red,x\n", "label", "'red' is not a number"),
        ("a,b\n1,2\n", "label", "no column 'label'; columns are a, b"),
        ("a,label\n1,x\n2,x\n3,x\n4,x\n5,x\n", "label", "has a single class"),
        ("", "label", "empty file"),
    ],
)
def test_unusable_data_is_a_clear_error(run_step, tmp_path, csv_text, target, message) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    data.write_text(csv_text)
    outcome = run_step(
        "train-model", f"--data={data}", f"--target-column={target}", f"--output={tmp_path}/m"
    )
    assert outcome.exit_code == 1
    assert message in outcome.output
    assert not (tmp_path / "m").exists()


@pytest.fixture
def iris_model(run_step, datasets, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("iris-model") / "model"
    assert train(run_step, datasets["iris"], out, "logistic-regression").exit_code == 0
    return out


def test_evaluate_gates_on_thresholds(run_step, datasets, iris_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    passed = run_step(
        "evaluate-model",
        f"--model-path={iris_model}",
        f"--data={datasets['iris']}",
        '--thresholds={"accuracy": ">=0.9"}',
        f"--output={tmp_path}/eval",
    )
    assert passed.exit_code == 0, passed.output
    assert passed.results["passed"] == "true"
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["checks"] == [
        {
            "metric": "accuracy",
            "condition": ">=0.9",
            "value": report["metrics"]["accuracy"],
            "passed": True,
        }
    ]
    assert json.loads(passed.results["metrics"]) == report["metrics"]
    assert "| accuracy |" in (tmp_path / "eval" / "evaluation.md").read_text()

    failed = run_step(
        "evaluate-model",
        f"--model-path={iris_model}",
        f"--data={datasets['iris']}",
        '--thresholds={"accuracy": ">0.999"}',
    )
    assert failed.exit_code == 0
    assert failed.results["passed"] == "false"
    # With no output given, the evaluation travels with the model.
    assert (iris_model / "evaluation.json").exists()

    strict = run_step(
        "evaluate-model",
        f"--model-path={iris_model}",
        f"--data={datasets['iris']}",
        '--thresholds={"accuracy": ">0.999"}',
        "--fail-on-threshold",
    )
    assert strict.exit_code == 1
    assert "thresholds not met: accuracy" in strict.output
    assert strict.results == {}


def test_evaluate_regression_metrics(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "m"
    assert train(run_step, datasets["diabetes"], model, "linear-regression").exit_code == 0
    outcome = run_step(
        "evaluate-model",
        f"--model-path={model}",
        f"--data={datasets['diabetes']}",
        '--thresholds={"r2": ">0.3"}',
    )
    assert outcome.exit_code == 0, outcome.output
    assert set(json.loads(outcome.results["metrics"])) == {"r2", "mae", "mse", "rmse"}
    wrong_kind = run_step(
        "evaluate-model",
        f"--model-path={model}",
        f"--data={datasets['diabetes']}",
        '--thresholds={"accuracy": ">0.3"}',
    )
    assert wrong_kind.exit_code == 2
    assert "not a regression metric" in wrong_kind.output


def test_evaluate_refuses_a_tampered_model(run_step, datasets, iris_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "model"
    shutil.copytree(iris_model, copy)
    data = (copy / "model.onnx").read_bytes()
    (copy / "model.onnx").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    outcome = run_step(
        "evaluate-model",
        f"--model-path={copy}",
        f"--data={datasets['iris']}",
        f"--output={tmp_path}/eval",
    )
    assert outcome.exit_code == 1
    assert "model.onnx: sha256" in outcome.output
    assert "does not match the manifest" in outcome.output
    assert not (tmp_path / "eval").exists()


def test_evaluate_pinned_model_digest(run_step, datasets, iris_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outcome = run_step(
        "evaluate-model",
        f"--model-path={iris_model}",
        f"--data={datasets['iris']}",
        f"--model-digest={'b' * 64}",
        f"--output={tmp_path}/eval",
    )
    assert outcome.exit_code == 1
    assert "does not match the pinned" in outcome.output
    assert not (tmp_path / "eval").exists()


def test_evaluate_missing_feature_column(run_step, iris_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    data.write_text("sepal_length_cm,target\n1.0,0\n")
    outcome = run_step(
        "evaluate-model",
        f"--model-path={iris_model}",
        f"--data={data}",
        f"--output={tmp_path}/eval",
    )
    assert outcome.exit_code == 1
    assert "missing feature column(s) sepal_width_cm" in outcome.output
    assert not (tmp_path / "eval").exists()
