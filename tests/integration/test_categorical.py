"""train-model on tables with categories and missing values: preprocessing inside the ONNX graph.

The table is scikit-learn's breast-cancer data with two columns binned into named
categories and about 10% of the feature cells blanked. Every comparison is against a
pipeline the test builds from scikit-learn's own classes (not through the code under
test), fitted on the same rows with the same parameters and seed.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tekton_mlops.ml import columns, inputs
from tests.integration.test_serving import Server

pytestmark = pytest.mark.integration

HEADER = ["radius", "size class", "perimeter", "texture_kind", "smoothness", "target"]
NUMERIC = [0, 2, 4]  # positions of the numeric features
CATEGORICAL = [1, 3]
SEED = 42
CASES = {
    # estimator, hyper-parameters, encoding: one scaled linear model, one tree ensemble
    "logistic-one-hot": ("logistic-regression", {"max_iter": 1000}, "one-hot"),
    "forest-ordinal": ("random-forest-classifier", {"n_estimators": 25}, "ordinal"),
}


def _cells(rng: np.random.Generator) -> list[list[str]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = data.data
    size = np.where(x[:, 3] < 450, "small", np.where(x[:, 3] < 800, "medium", "large"))
    texture = np.where(x[:, 1] < 17, "smooth", np.where(x[:, 1] < 22, "grainy", "rough"))
    rows = []
    for i in range(len(x)):
        features = [repr(float(x[i, 0])), size[i], repr(float(x[i, 2])), texture[i]]
        features.append(repr(float(x[i, 4])))
        blanked = ["" if rng.random() < 0.1 else cell for cell in features]
        rows.append([*blanked, str(data.target[i])])
    return rows


def write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def as_sklearn(rows: list[list[str]], float32: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Object features (floats, NaN where blank; strings, "" where blank) and int labels.
    Numbers are rounded to float32, as the model's FP32 inputs receive them, unless they
    are for fitting (train-model fits on the file's float64 values)."""
    x = np.empty((len(rows), 5), dtype=object)
    for i, row in enumerate(rows):
        for j in range(5):
            cell = row[j]
            if j in NUMERIC:
                value = float(cell) if cell else math.nan
                x[i, j] = float(np.float32(value)) if float32 else value
            else:
                x[i, j] = cell
    return x, np.asarray([int(r[5]) for r in rows])


def reference(estimator: str, hyperparameters: dict[str, Any], encoding: str) -> Any:
    """The pipeline train-model documents, built from scikit-learn's classes directly."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    numeric = [("impute", SimpleImputer(strategy="mean"))]
    if estimator == "logistic-regression":
        numeric.append(("scale", StandardScaler()))
        final = LogisticRegression(random_state=SEED, **hyperparameters)
    else:
        final = RandomForestClassifier(random_state=SEED, **hyperparameters)
    encoder = (
        OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        if encoding == "one-hot"
        else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    )
    categorical = [("impute", SimpleImputer(missing_values="", strategy="most_frequent"))]
    transformer = ColumnTransformer(
        [
            ("numeric", Pipeline(numeric), NUMERIC),
            ("categorical", Pipeline([*categorical, ("encode", encoder)]), CATEGORICAL),
        ],
        sparse_threshold=0,
    )
    return Pipeline([("preprocess", transformer), ("estimator", final)])


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The whole table, its training and holdout rows (train-model's split, redone here)."""
    from sklearn.model_selection import train_test_split

    root = tmp_path_factory.mktemp("categorical")
    rows = _cells(np.random.default_rng(7))
    labels = np.asarray([int(r[5]) for r in rows])
    train, test = train_test_split(
        np.arange(len(rows)), test_size=0.2, random_state=SEED, stratify=labels
    )
    return {
        "all": write(root / "mixed.csv", rows),
        "train": [rows[i] for i in train],
        "holdout": [rows[i] for i in test],
        "holdout_csv": write(root / "holdout.csv", [rows[i] for i in test]),
    }


@pytest.fixture(scope="module")
def trained(table, tmp_path_factory) -> dict[str, tuple[Path, Any]]:  # type: ignore[no-untyped-def]
    """Each case trained once through the CLI, beside its scikit-learn reference."""
    from click.testing import CliRunner

    from tekton_mlops.cli import main

    root = tmp_path_factory.mktemp("trained")
    models = {}
    for case, (estimator, hyperparameters, encoding) in CASES.items():
        out = root / case
        outcome = CliRunner().invoke(
            main,
            ["train-model", f"--data={table['all']}", "--target-column=target",
             f"--output={out}", f"--estimator={estimator}",
             f"--hyperparameters={json.dumps(hyperparameters)}",
             f"--categorical-encoding={encoding}", f"--results-dir={root / (case + '-r')}"],
        )  # fmt: skip
        assert outcome.exit_code == 0, outcome.output
        x, y = as_sklearn(table["train"], float32=False)
        models[case] = (out, reference(estimator, hyperparameters, encoding).fit(x, y))
    return models


def session(model_dir: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnx_on_raw_rows_equals_scikit_learn(table, trained, case) -> None:  # type: ignore[no-untyped-def]
    model_dir, expected = trained[case]
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["input_layout"] == "columns"
    assert metadata["missing_values"] == "imputed"
    kinds = metadata["feature_kinds"]
    assert [kinds[n] for n in HEADER[:5]] == ["numeric", "categorical"] * 2 + ["numeric"]
    # The graph takes one input per column, float or string, named after the column.
    graph = session(model_dir)
    assert [(i.name, i.type) for i in graph.get_inputs()] == [
        ("radius", "tensor(float)"),
        ("size_class", "tensor(string)"),
        ("perimeter", "tensor(float)"),
        ("texture_kind", "tensor(string)"),
        ("smoothness", "tensor(float)"),
    ]
    assert [i["column"] for i in metadata["inputs"]] == HEADER[:5]

    x, _ = as_sklearn(table["holdout"])
    assert sum(1 for v in x.ravel() if v == "" or (isinstance(v, float) and math.isnan(v))) > 20
    want_labels, want_proba = expected.predict(x), expected.predict_proba(x)

    # 1. The feeds the steps build, from the holdout CSV as a user has it.
    frame = columns.read_frame(
        table["holdout_csv"], "target", metadata["feature_names"], kinds=kinds
    )
    label, proba = graph.run(["label", "probabilities"], inputs.feeds(metadata, frame))
    np.testing.assert_array_equal(label, want_labels)
    np.testing.assert_allclose(proba, want_proba, atol=1e-5)

    # 2. Feeds built by hand: float32 with NaN, strings with "" where a cell is blank.
    by_hand = {
        "radius": x[:, [0]].astype(np.float32),
        "size_class": x[:, [1]].astype(str),
        "perimeter": x[:, [2]].astype(np.float32),
        "texture_kind": x[:, [3]].astype(str),
        "smoothness": x[:, [4]].astype(np.float32),
    }
    label, proba = graph.run(["label", "probabilities"], by_hand)
    np.testing.assert_array_equal(label, want_labels)
    np.testing.assert_allclose(proba, want_proba, atol=1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_unseen_category_gets_an_answer(table, trained, case) -> None:  # type: ignore[no-untyped-def]
    model_dir, expected = trained[case]
    x, _ = as_sklearn(table["holdout"][:4])
    x[:, 1] = ["gigantic", "tiny", "", "large"]  # two categories training never saw
    x[:, 3] = ["velvet", "", "smooth", "smooth"]
    x[3, 0] = math.nan
    feeds = {
        "radius": x[:, [0]].astype(np.float32),
        "size_class": x[:, [1]].astype(str),
        "perimeter": x[:, [2]].astype(np.float32),
        "texture_kind": x[:, [3]].astype(str),
        "smoothness": x[:, [4]].astype(np.float32),
    }
    label, proba = session(model_dir).run(["label", "probabilities"], feeds)
    np.testing.assert_array_equal(label, expected.predict(x))
    np.testing.assert_allclose(proba, expected.predict_proba(x), atol=1e-5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_evaluate_model_metrics_equal_scikit_learn(run_step, table, trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    model_dir, expected = trained["logistic-one-hot"]
    outcome = run_step(
        "evaluate-model",
        f"--model-path={model_dir}",
        f"--data={table['holdout_csv']}",
        f"--output={tmp_path / 'evaluation'}",
        "--min-rows=30",
    )
    assert outcome.exit_code == 0, outcome.output
    got = json.loads(outcome.results["metrics"])
    x, y = as_sklearn(table["holdout"])
    labels, proba = expected.predict(x), expected.predict_proba(x)[:, 1]
    want = {
        "accuracy": accuracy_score(y, labels),
        "precision": precision_score(y, labels),
        "recall": recall_score(y, labels),
        "f1": f1_score(y, labels),
        "roc_auc": roc_auc_score(y, proba),
    }
    assert got == pytest.approx(want, abs=1e-6)
    # ... and train-model's own holdout metrics are the same rows, the same numbers.
    assert json.loads((model_dir / "metrics.json").read_text()) == got


def _v2_request(rows: list[list[str]]) -> dict[str, Any]:
    """A V2 request as a client writes it: one tensor per column, BYTES for categories,
    null for a missing value."""
    tensors = []
    for position, name in enumerate(["radius", "size_class", "perimeter", "texture_kind"]):
        cells = [r[position] for r in rows]
        numeric = position in NUMERIC
        if numeric:
            data: list[Any] = [float(c) if c else None for c in cells]
        else:  # a missing category as null in one column, as "" in the other
            data = [c or None for c in cells] if name == "size_class" else cells
        datatype = "FP32" if numeric else "BYTES"
        tensors.append({"name": name, "datatype": datatype, "shape": [len(rows), 1], "data": data})
    # NaN spelled out (Python's json, and KServe, accept it) also means missing.
    smoothness = [float(r[4]) if r[4] else math.nan for r in rows]
    tensors.append({"name": "smoothness", "datatype": "FP32", "shape": [len(rows), 1],
                    "data": smoothness})  # fmt: skip
    return {"id": "mixed-1", "inputs": tensors}


def test_serve_answers_v2_requests_with_string_inputs(table, trained) -> None:  # type: ignore[no-untyped-def]
    model_dir, expected = trained["forest-ordinal"]
    rows = table["holdout"]
    rows = [*rows[:-1], ["", "enormous", "", "", "", rows[-1][5]]]  # unseen and all missing
    running = Server(model_dir, "mixed")
    try:
        status, metadata = running.call("GET", "/v2/models/mixed")
        assert status == 200
        assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {
            "radius": "FP32", "size_class": "BYTES", "perimeter": "FP32",
            "texture_kind": "BYTES", "smoothness": "FP32",
        }  # fmt: skip
        status, reply = running.call("POST", "/v2/models/mixed/infer", _v2_request(rows))
        assert status == 200, reply
        outputs = {o["name"]: o for o in reply["outputs"]}
        x, _ = as_sklearn(rows)
        assert outputs["label"]["data"] == expected.predict(x).tolist()
        served = np.asarray(outputs["probabilities"]["data"]).reshape(len(rows), 2)
        np.testing.assert_allclose(served, expected.predict_proba(x), atol=1e-5)

        # A category sent as a number is refused with the input's name, and nothing breaks.
        wrong = _v2_request(rows[:1])
        wrong["inputs"][1]["data"] = [3]
        status, reply = running.call("POST", "/v2/models/mixed/infer", wrong)
        assert status == 400
        assert "BYTES data must be strings" in reply["error"]
        assert running.call("GET", "/v2/health/ready")[0] == 200
    finally:
        running.kill()
    assert "Traceback" not in running.log


def test_numeric_table_with_gaps_keeps_one_input_and_imputes(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No category: the matrix input X stays, NaN is a missing value the graph fills in."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    data = load_iris()
    rng = np.random.default_rng(3)
    x = data.data.copy()
    x[rng.random(x.shape) < 0.1] = np.nan
    rows = [[("" if math.isnan(v) else repr(float(v))) for v in r] + [str(t)]
            for r, t in zip(x, data.target, strict=True)]  # fmt: skip
    csv_path = write(tmp_path / "gaps.csv", rows, ["a", "b", "c", "d", "target"])
    outcome = run_step(
        "train-model", f"--data={csv_path}", "--target-column=target",
        f"--output={tmp_path / 'm'}", "--estimator=random-forest-classifier",
        '--hyperparameters={"n_estimators": 15}', "--numeric-imputation=median",
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["input_layout"] == "matrix"
    assert metadata["input"] == {"name": "X", "datatype": "FP32", "shape": [-1, 4]}
    assert metadata["missing_values"] == "imputed"

    train, test = train_test_split(
        np.arange(len(x)), test_size=0.2, random_state=SEED, stratify=data.target
    )
    expected = Pipeline(
        [("impute", SimpleImputer(strategy="median")),
         ("estimator", RandomForestClassifier(n_estimators=15, random_state=SEED))]
    ).fit(x[train], data.target[train])  # fmt: skip
    holdout = x[test].astype(np.float32)
    assert np.isnan(holdout).any()
    label, proba = session(tmp_path / "m").run(["label", "probabilities"], {"X": holdout})
    np.testing.assert_array_equal(label, expected.predict(holdout))
    np.testing.assert_allclose(proba, expected.predict_proba(holdout), atol=1e-5)


def test_forced_kinds(run_step, table, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A numeric-looking code forced categorical becomes a string input; forcing a
    column both ways is a parameter error with nothing written."""
    rows = [[*r[:5], str(10000 + (i % 7)), r[5]] for i, r in enumerate(table["train"])]
    csv_path = write(tmp_path / "codes.csv", rows, [*HEADER[:5], "store", "target"])
    out = tmp_path / "m"
    outcome = run_step(
        "train-model", f"--data={csv_path}", "--target-column=target", f"--output={out}",
        '--categorical-columns=["store"]', '--numeric-columns=["radius"]',
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["feature_kinds"]["store"] == "categorical"
    assert {"name": "store", "column": "store", "datatype": "BYTES", "shape": [-1, 1]} in (
        metadata["inputs"]
    )
    assert metadata["preprocessing"] == [
        "impute-numeric:mean", "standard-scaler", "impute-categorical:most-frequent",
        "one-hot-encoder",
    ]  # fmt: skip

    both = run_step(
        "train-model", f"--data={csv_path}", "--target-column=target",
        f"--output={tmp_path / 'm2'}", '--categorical-columns=["store"]',
        '--numeric-columns=["store"]',
    )  # fmt: skip
    assert both.exit_code == 2
    assert "names 'store', also in categorical-columns" in both.output
    assert not (tmp_path / "m2").exists()


BAD_TABLES = {
    # name: (header, rows, extra args, phrase)
    "word in a column forced numeric": (
        ["a", "b", "target"], [["1.5", "x", "0"], ["2.5", "y", "1"], ["n/a", "x", "0"]],
        ['--numeric-columns=["a"]'],
        "column 'a' row 4: 'n/a' is not a number (the column is listed in numeric-columns)",
    ),
    "infinite number": (
        ["a", "b", "target"], [["1.5", "x", "0"], ["inf", "y", "1"]], [],
        "column 'a' row 3: 'inf' is not a finite number",
    ),
    "empty column": (
        ["a", "b", "target"], [["1.5", "", "0"], ["2.5", "", "1"]], [],
        "column 'b' has no values (every cell is empty)",
    ),
    "no rows": (["a", "b", "target"], [], [], "no data rows"),
    "missing label": (
        ["a", "b", "target"], [["1.5", "x", "0"], ["2.5", "y", ""]], [],
        "missing value in target column 'target' at row 3",
    ),
    "forced column absent": (
        ["a", "b", "target"], [["1.5", "x", "0"], ["2.5", "y", "1"]],
        ['--categorical-columns=["colour"]'],
        "categorical-columns names column(s) not in the table: ['colour']",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_tables_fail_in_one_line_and_write_nothing(run_step, tmp_path, case) -> None:  # type: ignore[no-untyped-def]
    header, rows, extra, phrase = BAD_TABLES[case]
    csv_path = write(tmp_path / "bad.csv", rows, header)
    out = tmp_path / "m"
    outcome = run_step(
        "train-model", f"--data={csv_path}", "--target-column=target", f"--output={out}", *extra
    )
    assert outcome.exit_code == 1, outcome.output
    errors = [line for line in outcome.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, outcome.output
    assert phrase in errors[0]
    assert "Traceback" not in outcome.output
    assert not out.exists()


def test_evaluate_refuses_a_word_in_a_numeric_column(run_step, table, trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model_dir, _ = trained["logistic-one-hot"]
    rows = [list(r) for r in table["holdout"]]
    rows[5][2] = "wide"
    csv_path = write(tmp_path / "bad.csv", rows)
    out = tmp_path / "evaluation"
    outcome = run_step(
        "evaluate-model", f"--model-path={model_dir}", f"--data={csv_path}", f"--output={out}"
    )
    assert outcome.exit_code == 1, outcome.output
    assert (
        "column 'perimeter' row 7: 'wide' is not a number "
        "(the model takes this column as a number)" in outcome.output
    )
    assert not (out / "evaluation.json").exists()


def test_regression_on_a_mixed_table(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A regressor: the category "sex" as text, gaps in bmi; output "variable"."""
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_diabetes
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    data = load_diabetes()
    rng = np.random.default_rng(11)
    sex = np.where(data.data[:, 1] > 0, "F", "M")
    rows = [
        [repr(float(r[0])), str(s), "" if rng.random() < 0.1 else repr(float(r[2])),
         repr(float(r[3])), repr(float(t))]
        for r, s, t in zip(data.data, sex, data.target, strict=True)
    ]  # fmt: skip
    csv_path = write(tmp_path / "diabetes.csv", rows, ["age", "sex", "bmi", "bp", "progression"])
    outcome = run_step(
        "train-model", f"--data={csv_path}", "--target-column=progression",
        f"--output={tmp_path / 'm'}", "--estimator=linear-regression",
        "--numeric-imputation=constant",
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output

    def features(subset: list[list[str]], float32: bool) -> np.ndarray:
        x = np.empty((len(subset), 4), dtype=object)
        for i, r in enumerate(subset):
            for j in (0, 2, 3):
                value = float(r[j]) if r[j] else math.nan
                x[i, j] = float(np.float32(value)) if float32 else value
            x[i, 1] = r[1]
        return x

    train, test = train_test_split(np.arange(len(rows)), test_size=0.2, random_state=SEED)
    expected = Pipeline([
        ("preprocess", ColumnTransformer([
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="constant", fill_value=0.0))]),
             [0, 2, 3]),
            ("categorical", Pipeline([
                ("impute", SimpleImputer(missing_values="", strategy="most_frequent")),
                ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]), [1]),
        ], sparse_threshold=0)),
        ("estimator", LinearRegression()),
    ])  # fmt: skip
    expected.fit(features([rows[i] for i in train], False), [float(rows[i][4]) for i in train])
    holdout = features([rows[i] for i in test], True)
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert [i["datatype"] for i in metadata["inputs"]] == ["FP32", "BYTES", "FP32", "FP32"]
    frame = columns.read_frame(
        csv_path, "progression", metadata["feature_names"], True, kinds=metadata["feature_kinds"]
    )
    feeds = inputs.feeds(metadata, frame.take(test))
    (variable,) = session(tmp_path / "m").run(["variable"], feeds)
    np.testing.assert_allclose(variable.ravel(), expected.predict(holdout), rtol=1e-4)
