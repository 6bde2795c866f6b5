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
        # A missing value is imputed and a word is a category (test_categorical.py), but a
        # column with no value at all has nothing to learn from.
        ("a,b,label\n1,,x\n3,,y\n", "label", "column 'b' has no values"),
        ("a,b,label\n1,2,x\n3,,y\n", "b", "missing value in target column 'b' at row 3"),
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


def corrupted(source: Path, target: Path, row: int, column: str, value: str) -> Path:
    """``source`` with one cell replaced; rows are numbered as a spreadsheet shows them."""
    lines = source.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row - 1].split(",")
    cells[header.index(column)] = value
    lines[row - 1] = ",".join(cells)
    target.write_text("\n".join(lines) + "\n")
    return target


def one_error_line(output: str) -> str:
    """The step's whole log must be one error line; return it."""
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    assert "internal error" not in output
    assert "Traceback" not in output
    return lines[0]


def assert_says(line: str, *parts: str) -> None:
    """A one-line message must say what is wrong and where: each part must appear."""
    for part in parts:
        assert part in line, f"{part!r} missing from: {line}"


NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e39", ""]


#: Missing values to train-model, which imputes them (test_categorical.py covers that).
MISSING = ["nan", "NaN", ""]


@pytest.mark.parametrize("value", [v for v in NON_FINITE if v not in MISSING])
def test_training_data_must_be_finite(run_step, datasets, tmp_path, value) -> None:  # type: ignore[no-untyped-def]
    data = corrupted(datasets["iris"], tmp_path / "d.csv", 17, "petal_width_cm", value)
    outcome = train(run_step, data, tmp_path / "m", "logistic-regression")
    assert outcome.exit_code == 1
    line = one_error_line(outcome.output)
    assert_says(line, str(data), "'petal_width_cm'", "row 17")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("value", NON_FINITE)
def test_evaluation_data_must_be_finite(run_step, datasets, iris_model, tmp_path, value) -> None:  # type: ignore[no-untyped-def]
    data = corrupted(datasets["iris"], tmp_path / "d.csv", 42, "sepal_width_cm", value)
    outcome = run_step(
        "evaluate-model",
        f"--model-path={iris_model}",
        f"--data={data}",
        '--thresholds={"accuracy": ">=0.5"}',
        f"--output={tmp_path}/eval",
    )
    assert outcome.exit_code == 1
    line = one_error_line(outcome.output)
    assert_says(line, str(data), "'sepal_width_cm'", "row 42")
    assert not (tmp_path / "eval").exists()
    assert outcome.results == {}


def test_evaluation_refuses_rows_of_nothing(run_step, datasets, iris_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A row of NaN (what a failed join leaves) and a row of empty fields both stop the gate."""
    lines = datasets["iris"].read_text().splitlines()
    width = len(lines[0].split(","))
    for name, row in (
        ("nan", ",".join(["nan"] * (width - 1) + ["0"])),
        ("empty", "," * (width - 1)),
    ):
        data = tmp_path / f"{name}.csv"
        data.write_text("\n".join([*lines[:60], row, *lines[60:]]) + "\n")
        outcome = run_step(
            "evaluate-model", f"--model-path={iris_model}", f"--data={data}",
            f"--output={tmp_path}/eval",
        )  # fmt: skip
        assert outcome.exit_code == 1, outcome.output
        line = one_error_line(outcome.output)
        assert_says(line, str(data), "row 61", "missing value")
        assert not (tmp_path / "eval").exists()


def test_evaluation_needs_min_rows(run_step, datasets, iris_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lines = datasets["iris"].read_text().splitlines()
    few = tmp_path / "few.csv"
    few.write_text("\n".join([lines[0], *lines[1::5][:29]]) + "\n")  # every class, 29 rows
    one = tmp_path / "one.csv"
    one.write_text("\n".join(lines[:2]) + "\n")
    header_only = tmp_path / "header.csv"
    header_only.write_text(lines[0] + "\n")

    def evaluate(data: Path, *extra: str):  # type: ignore[no-untyped-def]
        return run_step(
            "evaluate-model", f"--model-path={iris_model}", f"--data={data}",
            '--thresholds={"accuracy": ">=0.5"}', f"--output={tmp_path}/eval", *extra,
        )  # fmt: skip

    for data, rows in ((few, 29), (one, 1)):
        refused = evaluate(data)  # the default min-rows is 30
        assert refused.exit_code == 1
        line = one_error_line(refused.output)
        assert_says(line, str(data), f"{rows} data row", "min-rows (30)")
        assert not (tmp_path / "eval").exists()
        assert refused.results == {}
    empty = evaluate(header_only)
    assert empty.exit_code == 1
    assert "no data rows" in one_error_line(empty.output)

    lowered = evaluate(few, "--min-rows=29")
    assert lowered.exit_code == 0, lowered.output
    assert lowered.results["passed"] == "true"
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["data"]["rows"] == 29

    invalid = evaluate(few, "--min-rows=0")
    assert invalid.exit_code == 2
    assert "--min-rows=" in invalid.output


def test_evaluation_data_must_match_the_model(run_step, datasets, iris_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Columns by name (any order, extra ones ignored), numbers only, known labels."""
    lines = [line.split(",") for line in datasets["iris"].read_text().splitlines()]
    shuffled = tmp_path / "shuffled.csv"  # same columns, another order, one extra column
    shuffled.write_text(
        "\n".join(",".join([r[4], "extra", *reversed(r[:4])]) for r in lines) + "\n"
    )
    ok = run_step(
        "evaluate-model", f"--model-path={iris_model}", f"--data={shuffled}",
        '--thresholds={"accuracy": ">=0.9"}', f"--output={tmp_path}/ok",
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert ok.results["passed"] == "true"

    text = corrupted(datasets["iris"], tmp_path / "text.csv", 5, "petal_length_cm", "long")
    unknown = corrupted(datasets["iris"], tmp_path / "unknown.csv", 9, "target", "7")
    duplicate = tmp_path / "duplicate.csv"
    duplicate.write_text(
        "\n".join(",".join([*r, r[0]]) if i else ",".join([*r, r[0]]) for i, r in enumerate(lines))
        + "\n"
    )
    for data, where in (
        (text, "'petal_length_cm' row 5"),
        (unknown, "[7]"),
        (duplicate, f"{lines[0][0]!r} appears twice"),
    ):
        outcome = run_step(
            "evaluate-model", f"--model-path={iris_model}", f"--data={data}",
            f"--output={tmp_path}/eval",
        )  # fmt: skip
        assert outcome.exit_code == 1
        line = one_error_line(outcome.output)
        assert_says(line, str(data), where)
        assert not (tmp_path / "eval").exists()


def test_evaluate_refuses_metadata_that_does_not_match_the_model(  # type: ignore[no-untyped-def]
    run_step, datasets, iris_model, tmp_path
) -> None:
    """A model directory whose metadata lies about its input is refused, not run."""
    from tekton_mlops.digests import build_manifest, write_manifest

    for name, change in (
        ("fewer", lambda m: m | {"feature_names": m["feature_names"][:3]}),
        ("no-features", lambda m: {k: v for k, v in m.items() if k != "feature_names"}),
        ("not-an-object", lambda m: [m]),
    ):
        copy = tmp_path / name
        shutil.copytree(iris_model, copy)
        metadata = json.loads((copy / "metadata.json").read_text())
        (copy / "metadata.json").write_text(json.dumps(change(metadata)))
        write_manifest(copy, build_manifest(copy))  # consistent, so only the content is wrong
        outcome = run_step(
            "evaluate-model", f"--model-path={copy}", f"--data={datasets['iris']}",
            f"--output={tmp_path}/eval-{name}",
        )  # fmt: skip
        assert outcome.exit_code == 1
        line = one_error_line(outcome.output)
        assert str(copy) in line
        assert not (tmp_path / f"eval-{name}").exists()


def test_utf8_with_byte_order_mark_trains(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Spreadsheets save CSV with a BOM; the first column keeps its name."""
    data = tmp_path / "bom.csv"
    data.write_bytes(b"\xef\xbb\xbf" + datasets["iris"].read_bytes())
    outcome = train(run_step, data, tmp_path / "m", "logistic-regression")
    assert outcome.exit_code == 0, outcome.output
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["feature_names"][0] == datasets["iris"].read_text().split(",")[0]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("a,label\n1,x\n2,température\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 in line 3)"),
        (b"a,label\n1,x\n2,\x00y\n", "line 3 holds a NUL byte"),
    ],
    ids=["latin-1", "nul-byte"],
)
def test_data_that_is_not_csv_text(run_step, tmp_path, content, problem) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    data.write_bytes(content)
    outcome = run_step(
        "train-model", f"--data={data}", "--target-column=label", f"--output={tmp_path}/m"
    )
    assert outcome.exit_code == 1
    assert_says(one_error_line(outcome.output), str(data), problem)
    assert not (tmp_path / "m").exists()


def test_each_step_records_its_inputs_and_outputs_by_their_digests(  # type: ignore[no-untyped-def]
    run_step, datasets, keys, tmp_path
) -> None:
    """fetch-data -> train-model -> evaluate-model -> sign-artifact: every record names what
    the step read and wrote by the digests a user can compute from the files themselves."""
    import hashlib

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    def root(folder: Path, leave_out: tuple[str, ...] = ()) -> str:
        files = sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and ".mlops" not in p.relative_to(folder).parts
            and p.name not in leave_out
        )  # fmt: skip
        return hashlib.sha256(b"".join(bytes.fromhex(sha(folder / f)) for f in files)).hexdigest()

    def record(folder: Path, step: str) -> tuple[list[dict], list[dict]]:  # type: ignore[type-arg]
        statement = json.loads((folder / f".mlops/lineage/{step}.intoto.json").read_text())
        deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        return deps, statement["subject"]

    data, model, report = tmp_path / "data", tmp_path / "model", tmp_path / "report"
    source = datasets["iris"]
    assert run_step("fetch-data", f"--source={source.as_uri()}", f"--output={data}").exit_code == 0
    deps, subject = record(data, "fetch-data")
    assert deps == [{"name": "source", "uri": source.as_uri(), "digest": {"sha256": sha(source)}}]
    assert subject == [{"name": "dataset", "digest": {"sha256": root(data)}}]

    trained = train(run_step, data, model, "logistic-regression")
    assert trained.exit_code == 0, trained.output
    deps, subject = record(model, "train-model")
    assert deps == [{"name": "dataset", "uri": source.as_uri(), "digest": {"sha256": root(data)}}]
    assert subject == [
        {"name": "model", "digest": {"sha256": sha(model / "model.onnx")}},
        {"name": "model-dir", "digest": {"sha256": root(model)}},
    ]
    assert trained.results["model-root-digest"] == f"sha256:{root(model)}"

    evaluated = run_step(
        "evaluate-model", f"--model-path={model}", f"--data={data}", f"--output={report}"
    )
    assert evaluated.exit_code == 0, evaluated.output
    deps, subject = record(report, "evaluate-model")
    assert deps == [
        {"name": "model", "uri": (model / "model.onnx").as_uri(),
         "digest": {"sha256": sha(model / "model.onnx")}},
        {"name": "dataset", "uri": source.as_uri(), "digest": {"sha256": root(data)}},
    ]  # fmt: skip
    assert subject == [
        {"name": "evaluation", "digest": {"sha256": sha(report / "evaluation.json")}}
    ]

    signed = run_step("sign-artifact", f"--path={model}", f"--private-key={keys.private}")
    assert signed.exit_code == 0, signed.output
    deps, subject = record(model, "sign-artifact")
    signed_root = root(model, leave_out=("model.sig",))
    assert signed.results["root-digest"] == f"sha256:{signed_root}"
    assert deps == [{"name": "model", "uri": model.as_uri(), "digest": {"sha256": signed_root}}]
    assert subject == [{"name": "signature", "digest": {"sha256": sha(model / "model.sig")}}]
