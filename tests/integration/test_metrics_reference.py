"""train-model's and evaluate-model's metrics against scikit-learn, computed here on the same rows.

The reference never goes through the code under test: the holdout is split here with
scikit-learn, predictions come from onnxruntime here, the metrics from scikit-learn's own
functions; for evaluate-model, the model itself is also built here (scikit-learn, then
skl2onnx). A binary table (breast cancer), a multi-class one (iris, with a forest large
enough that its float32 probabilities miss 1 by more than scikit-learn tolerates) and a
regression one (diabetes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as sk

pytestmark = pytest.mark.integration

CASES = {
    "binary": ("cancer", "gradient-boosting-classifier", '{"n_estimators": 30}'),
    "multiclass": ("iris", "random-forest-classifier", '{"n_estimators": 1200}'),
    "multiclass-linear": ("iris", "logistic-regression", '{"max_iter": 1000}'),
    "regression": ("diabetes", "random-forest-regressor", '{"n_estimators": 30}'),
}


def read_csv(path: Path, classifier: bool) -> tuple[np.ndarray, np.ndarray]:
    table = np.genfromtxt(path, delimiter=",", skip_header=1)
    target = table[:, -1]
    return table[:, :-1], target.astype(np.int64) if classifier else target


def onnx_outputs(model: Path, features: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(None, {session.get_inputs()[0].name: features.astype(np.float32)})
    return dict(zip(names, values, strict=True))


def reference(truth: np.ndarray, outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """The metrics, from scikit-learn's functions, as a user would compute them."""
    if "variable" in outputs:
        predicted = outputs["variable"].ravel()
        found = {
            "r2": sk.r2_score(truth, predicted),
            "mae": sk.mean_absolute_error(truth, predicted),
            "mse": sk.mean_squared_error(truth, predicted),
            "rmse": sk.root_mean_squared_error(truth, predicted),
        }
    else:
        labels, proba = outputs["label"], outputs["probabilities"].astype(np.float64)
        classes = np.unique(truth)
        binary = len(classes) == 2
        average = "binary" if binary else "macro"
        if binary:
            auc = sk.roc_auc_score(truth, proba[:, 1])
        else:
            # scikit-learn's one-vs-rest AUC wants rows summing to 1 within 1e-8; divide out
            # the float32 rounding of the forest's sum. Per class that changes no ranking.
            auc = sk.roc_auc_score(
                truth, proba / proba.sum(axis=1, keepdims=True), multi_class="ovr"
            )
        found = {
            "accuracy": sk.accuracy_score(truth, labels),
            "precision": sk.precision_score(truth, labels, average=average),
            "recall": sk.recall_score(truth, labels, average=average),
            "f1": sk.f1_score(truth, labels, average=average),
            "roc_auc": auc,
        }
    return {k: round(float(v), 6) for k, v in found.items()}


def assert_metrics_equal(reported: dict[str, Any], expected: dict[str, float]) -> None:
    assert set(reported) == set(expected)
    for name, value in expected.items():
        # Exact to the 6 decimals reported; AUC within a hair, for the one case where
        # scikit-learn needs the probabilities divided by their float32 sums.
        assert reported[name] == pytest.approx(value, abs=2e-6 if name == "roc_auc" else 0), name


@pytest.mark.parametrize("case", sorted(CASES))
def test_train_model_holdout_metrics_equal_scikit_learn(run_step, datasets, tmp_path, case) -> None:  # type: ignore[no-untyped-def]
    from sklearn.model_selection import train_test_split

    name, estimator, hyper = CASES[case]
    classifier = "regressor" not in estimator
    trained = run_step(
        "train-model", f"--data={datasets[name]}", "--target-column=target",
        f"--output={tmp_path / 'm'}", f"--estimator={estimator}", f"--hyperparameters={hyper}",
        "--seed=42", "--test-size=0.2",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    x, y = read_csv(datasets[name], classifier)
    _, x_test, _, y_test = train_test_split(
        x, y, test_size=0.2, random_state=42, stratify=y if classifier else None
    )
    expected = reference(y_test, onnx_outputs(tmp_path / "m" / "model.onnx", x_test))
    assert_metrics_equal(json.loads(trained.results["metrics"]), expected)
    assert json.loads((tmp_path / "m" / "metrics.json").read_text()) == json.loads(
        trained.results["metrics"]
    )


def scikit_learn_model(folder: Path, data: Path, kind: str) -> np.ndarray:
    """A model directory made here with scikit-learn and skl2onnx, as another tool would
    make one; return the rows it must be evaluated on."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = kind != "regression"
    x, y = read_csv(data, classifier)
    model: Any = {
        "binary": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "multiclass": RandomForestClassifier(n_estimators=1200, random_state=0),
        "regression": LinearRegression(),
    }[kind]
    model.fit(x[::2], y[::2])  # the other half is for evaluation
    options = {id(model): {"zipmap": False}} if classifier else None
    onnx = to_onnx(model, x[:1].astype(np.float32), options=options, target_opset=18)
    names = [o.name for o in onnx.graph.output]
    assert names == (["label", "probabilities"] if classifier else ["variable"])
    assert [i.name for i in onnx.graph.input] == ["X"]  # the name train-model gives its input
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(onnx.SerializeToString())
    columns = data.read_text().splitlines()[0].split(",")
    metadata = {
        "task": "classification" if classifier else "regression",
        "estimator": type(model).__name__,
        "feature_names": columns[:-1],
        "target_column": "target",
        "classes": model.classes_.tolist() if classifier else None,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return x[1::2], y[1::2]  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("kind", "name"), [("binary", "cancer"), ("multiclass", "iris"), ("regression", "diabetes")]
)
def test_evaluate_model_metrics_equal_scikit_learn(  # type: ignore[no-untyped-def]
    run_step, datasets, tmp_path, kind, name
) -> None:
    folder = tmp_path / "model"
    x_eval, y_eval = scikit_learn_model(folder, datasets[name], kind)
    header, *rows = datasets[name].read_text().splitlines()
    evaluation = tmp_path / "eval.csv"
    evaluation.write_text("\n".join([header, *rows[1::2]]) + "\n")
    evaluated = run_step(
        "evaluate-model", f"--model-path={folder}", f"--data={evaluation}",
        f"--output={tmp_path / 'report'}",
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    expected = reference(y_eval, onnx_outputs(folder / "model.onnx", x_eval))
    reported = json.loads(evaluated.results["metrics"])
    assert_metrics_equal(reported, expected)
    report = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert report["metrics"] == reported
    assert report["data"]["rows"] == len(y_eval)
