"""check-slo's model metric: labelled rows through real ``tekton-mlops serve`` servers.

Two versions of a model (a good one and a deliberately weak one: a single decision stump)
serve on 127.0.0.1; their datasets are made into dataset directories by fetch-data (a
manifest and a root digest). Each version's metric and each paired test's p-value are
worked out in the test from onnxruntime run in-process on the same model files and from
scipy, not through the code under test.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from tekton_mlops.cli import main
from tests.conftest import CLI
from tests.integration.test_serving import Server

pytestmark = pytest.mark.integration

STUMP = '{"n_estimators": 1, "max_depth": 1}'


def train(data: Path, out: Path, estimator: str, hyperparameters: str = "{}") -> Path:
    outcome = CliRunner().invoke(
        main,
        ["train-model", f"--data={data}", "--target-column=target", f"--output={out}",
         f"--estimator={estimator}", f"--hyperparameters={hyperparameters}",
         f"--results-dir={out.parent / (out.name + '-results')}"],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    return out


def fetch(csv_path: Path, out: Path) -> str:
    """A dataset directory as fetch-data writes it (CSV and manifest); its root digest."""
    results = out.parent / (out.name + "-results")
    done = subprocess.run(
        [CLI, "fetch-data", f"--source={csv_path.as_uri()}", f"--output={out}",
         f"--results-dir={results}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return (results / "dataset-digest").read_text()


def predict(model: Path, csv_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The model's first output on every row of the CSV, by onnxruntime here; and the truth."""
    import onnxruntime as ort

    table = np.genfromtxt(csv_path, delimiter=",", skip_header=1)
    features, truth = table[:, :-1].astype(np.float32), table[:, -1]
    session = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"X": features})[0]).reshape(-1), truth


@pytest.fixture(scope="module")
def served(datasets, tmp_path_factory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("abn")
    models = {
        "good": train(datasets["iris"], root / "good", "logistic-regression", '{"max_iter": 500}'),
        "weak": train(datasets["iris"], root / "weak", "random-forest-classifier", STUMP),
        "linear": train(datasets["diabetes"], root / "linear", "linear-regression"),
        "stump": train(datasets["diabetes"], root / "stump", "random-forest-regressor", STUMP),
    }
    iris, diabetes = root / "iris-data", root / "diabetes-data"
    digests = {
        "iris": fetch(datasets["iris"], iris),
        "diabetes": fetch(datasets["diabetes"], diabetes),
    }
    servers = {name: Server(model, "m") for name, model in models.items()}
    try:
        yield {"models": models, "urls": {n: s.url for n, s in servers.items()},
               "data": {"iris": iris, "diabetes": diabetes}, "digests": digests,
               "csv": {"iris": datasets["iris"], "diabetes": datasets["diabetes"]}}  # fmt: skip
    finally:
        for server in servers.values():
            server.kill()
        for server in servers.values():
            assert "Traceback" not in server.log, server.log


def check(run_step, out: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_step(
        "check-slo", "--model=m", "--requests=20", "--concurrency=2", f"--output={out}", *args
    )


def correct(model: Path, csv_path: Path) -> np.ndarray:
    labels, truth = predict(model, csv_path)
    return labels.astype(int) == truth.astype(int)


def test_accuracy_decides_the_winner_by_mcnemars_test(served, run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    urls, out = served["urls"], tmp_path / "r"
    done = check(
        run_step, out, "--endpoints=" + json.dumps({"weak": urls["weak"], "good": urls["good"]}),
        f"--dataset={served['data']['iris']}", "--target-column=target",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.results["winner"] == "good"
    report = json.loads((out / "slo-report.json").read_text())
    # Each version's accuracy, as onnxruntime here computes it from the same model file.
    right = {n: correct(served["models"][n], served["csv"]["iris"]) for n in ("good", "weak")}
    for version in report["versions"]:
        expected = round(float(right[version["name"]].mean()), 6)
        assert version["model_metric"] == {"metric": "accuracy", "value": expected, "rows": 150}
    assert right["good"].mean() > 0.9 > 0.7 > right["weak"].mean()  # a stump: one split
    serving, model = report["decisions"]
    assert serving["metric"] == "latency_p99_ms"  # kept for information
    assert model["metric"] == "accuracy"
    assert model["winner"] == report["winner"] == "good"
    (test,) = model["tests"]
    only_good = int((right["good"] & ~right["weak"]).sum())
    only_weak = int((~right["good"] & right["weak"]).sum())
    expected_p = stats.binomtest(only_good, only_good + only_weak, 0.5).pvalue
    assert (test["versions"], test["test"], test["favours"]) == (
        ["good", "weak"], "McNemar's exact test", "good",
    )  # fmt: skip
    assert test["p_value"] == pytest.approx(expected_p, rel=1e-5)
    assert test["detail"] == f"{only_good} row(s) only good got right, {only_weak} only weak"
    assert done.results["winner-reason"] == (
        f"good is better by accuracy than weak: McNemar's exact test p={expected_p:.3g} <= 0.05"
    )
    md = (out / "slo-report.md").read_text()
    assert "| throughput rps | accuracy | SLOs |" in md
    assert "## Serving comparison by latency_p99_ms" in md
    assert "## Winner by accuracy at confidence 0.95" in md
    # The dataset is in the record, by its manifest's root digest.
    record = json.loads((out / ".mlops/lineage/check-slo.intoto.json").read_text())
    deps = record["predicate"]["buildDefinition"]["resolvedDependencies"]
    (dataset,) = [d for d in deps if d["name"] == "dataset"]
    assert dataset["digest"] == {"sha256": served["digests"]["iris"].removeprefix("sha256:")}


def test_ab_macro_f1_by_a_paired_bootstrap(served, run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sklearn.metrics import f1_score

    urls = served["urls"]
    done = check(
        run_step, tmp_path / "r", f"--url={urls['weak']}", f"--baseline-url={urls['good']}",
        f"--dataset={served['data']['iris']}", "--target-column=target", "--model-metric=f1",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.results["winner"] == "baseline"
    report = json.loads((tmp_path / "r" / "slo-report.json").read_text())
    for version, name in zip(report["versions"], ("weak", "good"), strict=True):
        labels, truth = predict(served["models"][name], served["csv"]["iris"])
        expected = f1_score(truth.astype(int), labels.astype(int), average="macro")
        assert version["model_metric"]["value"] == round(float(expected), 6)
    # A/B keeps the candidate's own figures at the top, its metric among them.
    assert report["model_metric"] == report["versions"][0]["model_metric"]
    (test,) = report["decisions"][-1]["tests"]
    assert (test["test"], test["favours"]) == ("paired bootstrap", "baseline")
    assert test["p_value"] == pytest.approx(2 / 2001, rel=1e-4)  # no resample reversed it


def test_rmse_decides_between_two_regressors(served, run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    urls = served["urls"]
    done = check(
        run_step, tmp_path / "r",
        "--endpoints=" + json.dumps({"stump": urls["stump"], "linear": urls["linear"]}),
        f"--dataset={served['data']['diabetes']}", "--target-column=target",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.results["winner"] == "linear"
    report = json.loads((tmp_path / "r" / "slo-report.json").read_text())
    errors = {}
    for name in ("stump", "linear"):
        values, truth = predict(served["models"][name], served["csv"]["diabetes"])
        errors[name] = (values.astype(float) - truth) ** 2
    for version in report["versions"]:
        rmse = math.sqrt(float(errors[version["name"]].mean()))
        assert version["model_metric"]["metric"] == "rmse"  # the default for a regressor
        assert version["model_metric"]["value"] == pytest.approx(rmse, rel=1e-5)
    (test,) = report["decisions"][-1]["tests"]
    expected = stats.wilcoxon(errors["linear"], errors["stump"])
    assert (test["test"], test["favours"]) == ("Wilcoxon signed-rank test", "linear")
    assert test["p_value"] == pytest.approx(float(expected.pvalue), rel=1e-3)
    assert test["p_value"] < 0.05


def test_one_endpoint_reports_its_metric_without_a_winner(served, run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = check(
        run_step, tmp_path / "r", f"--url={served['urls']['good']}",
        f"--dataset={served['data']['iris']}", "--target-column=target",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert (done.results["winner"], done.results["winner-reason"]) == ("", "")
    report = json.loads((tmp_path / "r" / "slo-report.json").read_text())
    expected = round(float(correct(served["models"]["good"], served["csv"]["iris"]).mean()), 6)
    assert report["model_metric"] == {"metric": "accuracy", "value": expected, "rows": 150}
    assert "decisions" not in report
    assert (
        f"accuracy on 150 labelled rows: {expected}."
        in (tmp_path / "r" / "slo-report.md").read_text()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset={iris}", "--target-column=target", "--model-metric=rmse"],
         "--model-metric='rmse': does not fit a classifier: the models answer classes; "
         "use accuracy or f1"),
        (["--dataset={iris}", "--target-column=species"],
         "--target-column='species': the dataset {iris}/iris.csv has no such column; "
         "its columns are sepal_length_cm"),
        (["--dataset={diabetes}", "--target-column=target"],
         "its columns do not match the inputs of the model 'm' at"),
    ],
)  # fmt: skip
def test_a_dataset_that_does_not_fit_exits_2_before_any_load(  # type: ignore[no-untyped-def]
    served, run_step, tmp_path, args, message
) -> None:
    data = {k: str(v) for k, v in served["data"].items()}
    urls = served["urls"]
    done = check(
        run_step, tmp_path / "r", f"--url={urls['good']}", f"--baseline-url={urls['weak']}",
        *(a.format(**data) for a in args),
    )  # fmt: skip
    assert done.exit_code == 2, done.output
    assert message.format(**data) in done.output
    assert not (tmp_path / "r").exists()
    assert done.results == {}


def test_classes_written_as_text_in_the_csv_still_match(served, run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The same rows with the label written "1.0" instead of "1": the same accuracy.
    source = served["csv"]["iris"]
    with source.open() as handle:
        rows = list(csv.reader(handle))
    rewritten = tmp_path / "floats.csv"
    with rewritten.open("w", newline="") as handle:
        csv.writer(handle).writerows(
            [rows[0], *([*r[:-1], f"{float(r[-1]):.1f}"] for r in rows[1:])]
        )
    fetch(rewritten, tmp_path / "floats")
    done = check(
        run_step, tmp_path / "r", f"--url={served['urls']['good']}",
        f"--dataset={tmp_path / 'floats'}", "--target-column=target",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    report = json.loads((tmp_path / "r" / "slo-report.json").read_text())
    expected = round(float(correct(served["models"]["good"], source).mean()), 6)
    assert report["model_metric"]["value"] == expected
