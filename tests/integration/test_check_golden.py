"""check-golden against real ``tekton-mlops serve`` servers: golden sets, agreement, baselines.

Models are trained with train-model on scikit-learn's own datasets; golden sets are made
into dataset directories by fetch-data (a manifest and a root digest). Every expected
count is worked out in the test from onnxruntime run in-process on the same model file,
not through the code under test.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import CLI, refused_url
from tests.integration.test_serving import Server, train

pytestmark = pytest.mark.integration

MIXED_HEADER = ["sepal length", "colour", "petal_length", "petal_width", "species"]


def fetch(csv_path: Path, out: Path) -> str:
    """A dataset directory as fetch-data writes it (CSV and manifest); its root digest."""
    done = subprocess.run(
        [CLI, "fetch-data", f"--source={csv_path.as_uri()}", f"--output={out}",
         f"--results-dir={out.parent / (out.name + '-results')}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return (out.parent / (out.name + "-results") / "dataset-digest").read_text()


def write(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def session(model: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])


def iris_rows(datasets: dict[str, Path]) -> tuple[list[str], np.ndarray, np.ndarray]:
    with datasets["iris"].open() as handle:
        header = next(csv.reader(handle))
    table = np.genfromtxt(datasets["iris"], delimiter=",", skip_header=1)
    return header[:-1], table[:, :-1], table[:, -1].astype(int)


def iris_predict(model: Path, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, probabilities = session(model).run(None, {"X": features.astype(np.float32)})
    return labels, probabilities


@pytest.fixture(scope="module")
def models(datasets, tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """iris (logistic regression), iris with every label shifted by one class (so it
    disagrees almost everywhere), a mixed table with a string column, diabetes (regression)."""
    root = tmp_path_factory.mktemp("golden-models")
    _, features, target = iris_rows(datasets)
    names, _, _ = iris_rows(datasets)
    shifted = write(
        root / "shifted.csv",
        [*names, "target"],
        [[*map(repr, row), (t + 1) % 3] for row, t in zip(features.tolist(), target, strict=True)],
    )
    mixed = write(root / "mixed.csv", [*MIXED_HEADER[:-1], "target"], mixed_rows(datasets))
    return {
        "iris": train(datasets["iris"], root / "iris", "logistic-regression", root / "r1"),
        "shifted": train(shifted, root / "shifted", "logistic-regression", root / "r2"),
        "mixed": train(mixed, root / "mixed", "random-forest-classifier", root / "r3"),
        "diabetes": train(
            datasets["diabetes"], root / "diabetes", "linear-regression", root / "r4"
        ),
    }


def mixed_rows(datasets: dict[str, Path]) -> list[list[str]]:
    """iris with a string column (blank in every seventh row) and a blank number now and
    then: the model takes one input per column, strings as BYTES."""
    _, features, target = iris_rows(datasets)
    rows = []
    for i, (row, t) in enumerate(zip(features.tolist(), target, strict=True)):
        colour = "" if i % 7 == 0 else ("red", "green", "blue")[i % 3]
        length = "" if i % 11 == 5 else repr(row[0])
        rows.append(
            [length, colour, repr(row[2]), repr(row[3]), ("setosa", "versicolor", "virginica")[t]]
        )
    return rows


@pytest.fixture(scope="module")
def servers(models) -> Iterator[dict[str, Server]]:  # type: ignore[no-untyped-def]
    started: dict[str, Server] = {}
    try:
        for name, model in models.items():
            started[name] = Server(model, name)
        # The same iris model a second time: a baseline that is another process.
        started["iris-again"] = Server(models["iris"], "iris")
        yield started
    finally:
        for running in started.values():
            running.kill()
    for running in started.values():
        assert "Traceback" not in running.log, running.log


@pytest.fixture(scope="module")
def iris_golden(datasets, models, tmp_path_factory) -> tuple[Path, str, np.ndarray]:  # type: ignore[no-untyped-def]
    """iris with the iris model's own predictions as the expected labels, as a dataset
    directory; its digest and the expected labels."""
    root = tmp_path_factory.mktemp("iris-golden")
    names, features, _ = iris_rows(datasets)
    labels, _ = iris_predict(models["iris"], features)
    rows = [
        [*map(repr, row), int(label)] for row, label in zip(features.tolist(), labels, strict=True)
    ]
    digest = fetch(write(root / "golden.csv", [*names, "expected"], rows), root / "golden")
    return root / "golden", digest, labels


def check(run_step, url: str, model: str, golden: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_step(
        "check-golden", f"--url={url}", f"--model={model}", f"--golden={golden}",
        "--expected-column=expected", f"--output={out}", *extra,
    )  # fmt: skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_model_agrees_with_its_golden_set(run_step, servers, iris_golden, tmp_path) -> None:  # type: ignore[no-untyped-def]
    golden, digest, _ = iris_golden
    out = tmp_path / "report"
    done = check(run_step, servers["iris"].url, "iris", golden, out, f"--golden-digest={digest}")
    assert done.exit_code == 0, done.output
    assert done.results == {
        "passed": "true",
        "agreement": "1",
        "rows": "150",
        "disagreements": "0",
        "baseline-agreement": "",
        "report": str(out / "golden-report.json"),
    }
    report = json.loads((out / "golden-report.json").read_text())
    assert report["passed"] is True
    assert (report["agreeing"], report["disagreeing_rows"]) == (150, [])
    assert report["golden"]["digest"] == digest.removeprefix("sha256:")
    assert "Verdict: **passed**: 150 of 150 rows agree" in (out / "golden-report.md").read_text()
    assert "Disagreeing rows" not in (out / "golden-report.md").read_text()

    record = json.loads((out / ".mlops/lineage/check-golden.intoto.json").read_text())
    build = record["predicate"]["buildDefinition"]
    assert build["resolvedDependencies"] == [
        {"name": "golden", "uri": report["golden"]["uri"],
         "digest": {"sha256": digest.removeprefix("sha256:")}},
        {"name": "endpoint", "uri": servers["iris"].url},
    ]  # fmt: skip
    assert record["subject"] == [
        {"name": "golden-report.json", "digest": {"sha256": sha256(out / "golden-report.json")}},
        {"name": "golden-report.md", "digest": {"sha256": sha256(out / "golden-report.md")}},
    ]


def test_a_different_model_fails_with_its_disagreeing_rows(  # type: ignore[no-untyped-def]
    run_step, servers, models, datasets, iris_golden, tmp_path
) -> None:
    golden, _, expected = iris_golden
    _, features, _ = iris_rows(datasets)
    got, scores = iris_predict(models["shifted"], features)
    wrong = [i for i in range(150) if got[i] != expected[i]]
    assert len(wrong) > 50  # so the listing is bounded below

    out = tmp_path / "report"
    done = check(run_step, servers["shifted"].url, "shifted", golden, out, "--batch-size=16")
    assert done.exit_code == 0, done.output
    agreement = round((150 - len(wrong)) / 150, 6)
    assert done.results["passed"] == "false"
    assert done.results["disagreements"] == str(len(wrong))
    assert float(done.results["agreement"]) == agreement
    report = json.loads((out / "golden-report.json").read_text())
    assert len(report["disagreeing_rows"]) == 50
    first = report["disagreeing_rows"][0]
    i = wrong[0]
    assert first == {
        "row": i + 2,  # the header is row 1
        "inputs": dict(
            zip(report["golden"]["columns_sent"], map(repr, features[i].tolist()), strict=True)
        ),
        "expected": str(int(expected[i])),
        "got": int(got[i]),
        "scores": scores[i].tolist(),  # float32 values, exact through JSON
    }
    assert [r["row"] for r in report["disagreeing_rows"]] == [j + 2 for j in wrong[:50]]
    markdown = (out / "golden-report.md").read_text()
    assert f"## Disagreeing rows (the first 50 of {len(wrong)})" in markdown
    assert f"| {i + 2} | {int(expected[i])} | {int(got[i])} | " in markdown

    # The same check asked to fail: exit 1, one line, the reports still there to read.
    out = tmp_path / "failing"
    done = check(
        run_step, servers["shifted"].url, "shifted", golden, out, "--fail-on-mismatch=true"
    )
    assert done.exit_code == 1
    assert done.output.splitlines()[-1] == (
        f"error: {len(wrong)} of 150 golden row(s) disagree: agreement {done_text(agreement)} "
        f"is below min-agreement 1 (rows listed in {out / 'golden-report.md'})"
    )
    assert done.results == {}
    assert (out / "golden-report.json").is_file()


def done_text(share: float) -> str:
    return f"{share:.6f}".rstrip("0").rstrip(".")


def test_min_agreement_is_a_share_of_the_rows(
    run_step, servers, datasets, iris_golden, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    golden, _, expected = iris_golden
    _, _, truth = iris_rows(datasets)
    # The true species as the golden set: the model gets most, not all, right.
    names, features, _ = iris_rows(datasets)
    rows = [[*map(repr, row), int(t)] for row, t in zip(features.tolist(), truth, strict=True)]
    true_set = write(tmp_path / "truth" / "golden.csv", [*names, "expected"], rows)
    right = int((expected == truth).sum())
    assert 135 <= right < 150
    at_least = check(run_step, servers["iris"].url, "iris", true_set, tmp_path / "a",
                     f"--min-agreement={right / 150}")  # fmt: skip
    above = check(run_step, servers["iris"].url, "iris", true_set, tmp_path / "b",
                  f"--min-agreement={(right + 1) / 150}")  # fmt: skip
    assert (at_least.results["passed"], above.results["passed"]) == ("true", "false")
    assert at_least.results["disagreements"] == str(150 - right)


def test_baseline_agreement_between_two_versions(  # type: ignore[no-untyped-def]
    run_step, servers, models, datasets, iris_golden, tmp_path
) -> None:
    golden, _, _ = iris_golden
    _, features, _ = iris_rows(datasets)
    mine, my_scores = iris_predict(models["iris"], features)
    theirs, their_scores = iris_predict(models["shifted"], features)
    same = int((mine == theirs).sum())

    out = tmp_path / "report"
    baseline = f"--baseline-url={servers['shifted'].url}"
    done = check(
        run_step, servers["iris"].url, "iris", golden, out, baseline, "--baseline-model=shifted"
    )
    assert done.exit_code == 0, done.output
    assert done.results["passed"] == "true"  # the candidate agrees with its golden set
    assert float(done.results["baseline-agreement"]) == round(same / 150, 6)
    versions = json.loads((out / "golden-report.json").read_text())["baseline"]
    assert versions["disagreements"] == 150 - same
    largest = float(np.abs(my_scores.astype(np.float64) - their_scores.astype(np.float64)).max())
    assert versions["max_score_difference"] == pytest.approx(largest, rel=1e-12)
    first = next(i for i in range(150) if mine[i] != theirs[i])
    assert versions["disagreeing_rows"][0]["row"] == first + 2
    assert (
        versions["disagreeing_rows"][0]["candidate"],
        versions["disagreeing_rows"][0]["baseline"],
    ) == (
        int(mine[first]),
        int(theirs[first]),
    )
    assert "## Against the baseline shifted at" in (out / "golden-report.md").read_text()

    # The same model behind another server: the versions agree everywhere, scores equal.
    out = tmp_path / "same"
    done = check(run_step, servers["iris"].url, "iris", golden, out,
                 f"--baseline-url={servers['iris-again'].url}")  # fmt: skip
    assert done.results["baseline-agreement"] == "1"
    assert (
        json.loads((out / "golden-report.json").read_text())["baseline"]["max_score_difference"]
        == 0
    )


def mixed_expected(model: Path, rows: list[list[str]]) -> np.ndarray:
    """The mixed model's labels for ``rows``, from feeds built here: numbers as float32
    with NaN where blank, strings with "" where blank, each input [n, 1]."""
    runtime = session(model)
    columns = list(zip(*rows, strict=True))
    feeds = {}
    for node, column in zip(runtime.get_inputs(), columns[:4], strict=True):
        if node.type == "tensor(string)":
            feeds[node.name] = np.asarray(column, dtype=object).reshape(-1, 1)
        else:
            values = [float(c) if c else math.nan for c in column]
            feeds[node.name] = np.asarray(values, dtype=np.float32).reshape(-1, 1)
    labels, _ = runtime.run(None, feeds)
    return labels


def test_a_mixed_table_with_strings_and_blanks(  # type: ignore[no-untyped-def]
    run_step, servers, models, datasets, tmp_path
) -> None:
    rows = mixed_rows(datasets)
    labels = mixed_expected(models["mixed"], rows)
    # Columns in another order than the model's inputs, and one it does not take: the
    # inputs bind by name (`sepal length` by the name skl2onnx gave it, sepal_length).
    header = ["note", "petal_width", "colour", "expected", "sepal length", "petal_length"]
    shuffled = [
        ["x", r[3], r[1], str(label), r[0], r[2]] for r, label in zip(rows, labels, strict=True)
    ]
    golden = write(tmp_path / "mixed" / "golden.csv", header, shuffled)
    for batch in ("1", "64", "1000"):
        out = tmp_path / f"report-{batch}"
        done = check(run_step, servers["mixed"].url, "mixed", golden, out, f"--batch-size={batch}")
        assert done.exit_code == 0, done.output
        assert done.results["agreement"] == "1", (batch, done.output)
    report = json.loads((out / "golden-report.json").read_text())
    assert report["golden"]["columns_sent"] == [
        "sepal length",
        "colour",
        "petal_length",
        "petal_width",
    ]

    # Against the true species, the rows it gets wrong are listed with their blanks.
    truth = [[*r[:4], r[4]] for r in rows]
    golden = write(tmp_path / "truth" / "golden.csv", [*MIXED_HEADER[:-1], "expected"], truth)
    done = check(run_step, servers["mixed"].url, "mixed", golden, tmp_path / "truth-report")
    wrong = [i for i, r in enumerate(rows) if r[4] != labels[i]]
    assert done.results["disagreements"] == str(len(wrong))
    listed = json.loads((tmp_path / "truth-report/golden-report.json").read_text())[
        "disagreeing_rows"
    ]
    assert [(r["row"], r["got"]) for r in listed] == [(i + 2, labels[i]) for i in wrong[:50]]
    assert [r["inputs"]["colour"] for r in listed] == [rows[i][1] or None for i in wrong[:50]]


def test_numeric_outputs_agree_within_the_tolerance(  # type: ignore[no-untyped-def]
    run_step, servers, models, datasets, tmp_path
) -> None:
    with datasets["diabetes"].open() as handle:
        names = next(csv.reader(handle))[:-1]
    features = np.genfromtxt(datasets["diabetes"], delimiter=",", skip_header=1)[:, :-1]
    (values,) = session(models["diabetes"]).run(None, {"X": features.astype(np.float32)})
    values = values.reshape(-1).astype(np.float64)
    # Ten rows off by 0.1 % of their value: outside the default tolerances, inside 1 %.
    expected = [v * (1.001 if i < 10 else 1.0) for i, v in enumerate(values.tolist())]
    rows = [[*map(repr, row), repr(e)] for row, e in zip(features.tolist(), expected, strict=True)]
    golden = write(tmp_path / "diabetes" / "golden.csv", [*names, "expected"], rows)
    url = servers["diabetes"].url
    tight = check(run_step, url, "diabetes", golden, tmp_path / "tight")
    loose = check(
        run_step, url, "diabetes", golden, tmp_path / "loose", "--relative-tolerance=0.01"
    )
    absolute = check(run_step, url, "diabetes", golden, tmp_path / "abs", "--tolerance=1")
    assert tight.results["disagreements"] == "10", tight.output
    assert loose.results["disagreements"] == "0"
    # 0.1 % of diabetes values (25 to 346) is under 1 for all of these ten rows
    assert all(abs(values[i] * 0.001) < 1 for i in range(10))
    assert absolute.results["disagreements"] == "0"
    listed = json.loads((tmp_path / "tight/golden-report.json").read_text())["disagreeing_rows"]
    assert [r["row"] for r in listed] == list(range(2, 12))
    assert listed[0]["got"] == pytest.approx(values[0], rel=1e-12)


# --- bad input: exit 2 (or 1), one clear line, nothing written --------------------------


def refused(run_step, tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    done = run_step("check-golden", f"--output={out}", *args)
    assert not out.exists(), "a report was written"
    assert done.results == {}
    assert "Traceback" not in done.output
    return done


def test_golden_columns_that_do_not_match_the_model(  # type: ignore[no-untyped-def]
    run_step, servers, models, datasets, tmp_path
) -> None:
    rows = mixed_rows(datasets)
    # Without colour and petal_width, which the mixed model takes.
    golden = write(tmp_path / "g" / "golden.csv", ["sepal length", "petal_length", "expected"],
                   [[r[0], r[2], r[4]] for r in rows])  # fmt: skip
    # A server that logs every inference request it gets: it must get none.
    logged = tmp_path / "payloads"
    server = Server(models["mixed"], "mixed", f"--log-payloads={logged}")
    try:
        done = refused(run_step, tmp_path, f"--url={server.url}", "--model=mixed",
                       f"--golden={golden}", "--expected-column=expected")  # fmt: skip
    finally:
        assert server.stop() == 143
    assert done.exit_code == 2
    assert done.output.splitlines() == [
        "error: check-golden: 1 invalid parameter(s):",
        f"  --golden={str(golden)!r}: its columns do not match the inputs of the model 'mixed' "
        f"at {server.url}: the model takes column(s) the table does not have: "
        "colour, petal_width",
    ]
    assert "payload log: 0 record(s) written" in server.log
    assert list(logged.glob("*")) == []

    # A 2-D input takes the columns by position: one column too many is refused.
    names, features, truth = iris_rows(datasets)
    rows5 = [[*map(repr, r), "1", int(t)] for r, t in zip(features.tolist(), truth, strict=True)]
    golden = write(tmp_path / "g5" / "golden.csv", [*names, "extra", "expected"], rows5)
    done = refused(run_step, tmp_path, f"--url={servers['iris'].url}", "--model=iris",
                   f"--golden={golden}", "--expected-column=expected")  # fmt: skip
    assert done.exit_code == 2
    assert "--golden=" in done.output
    assert "the model's input 'X' takes 4 column(s) and the table has 5 to give" in done.output


def test_cells_and_expected_values_the_model_cannot_take(
    run_step, servers, datasets, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    names, features, truth = iris_rows(datasets)
    rows = [[*map(repr, r), int(t)] for r, t in zip(features.tolist(), truth, strict=True)]
    rows[40][2] = "wide"
    golden = write(tmp_path / "g" / "golden.csv", [*names, "expected"], rows)
    base = [f"--url={servers['iris'].url}", "--model=iris", f"--golden={golden}"]
    done = refused(run_step, tmp_path, *base, "--expected-column=expected")
    assert done.exit_code == 2
    assert f"column {names[2]!r} row 42: 'wide' is not a number" in done.output

    done = refused(run_step, tmp_path, *base, "--expected-column=species")
    assert done.exit_code == 2
    assert "--expected-column='species': the golden set" in done.output
    assert "has no such column" in done.output

    rows[40][2] = "1.5"
    rows[7][-1] = ""
    write(golden, [*names, "expected"], rows)
    done = refused(run_step, tmp_path, *base, "--expected-column=expected")
    assert done.exit_code == 2
    assert "no expected value in column 'expected' at row(s) 9" in done.output


def test_a_golden_set_that_changed_or_an_endpoint_that_is_gone(  # type: ignore[no-untyped-def]
    run_step, servers, iris_golden, tmp_path
) -> None:
    golden, digest, _ = iris_golden
    url = servers["iris"].url
    done = refused(run_step, tmp_path, f"--url={url}", "--model=iris", f"--golden={golden}",
                   "--expected-column=expected", "--golden-digest=" + "0" * 64)  # fmt: skip
    assert done.exit_code == 1
    assert len(done.output.strip().splitlines()) == 1
    assert "does not match the pinned" in done.output

    with refused_url() as gone:
        done = refused(run_step, tmp_path, f"--url={gone}", "--model=iris", f"--golden={golden}",
                       "--expected-column=expected")  # fmt: skip
    assert done.exit_code == 1
    assert done.output.strip().splitlines() == [
        f"error: {gone}/v2/models/iris: cannot reach the endpoint ([Errno 111] Connection refused)"
    ]

    tampered = tmp_path / "tampered"
    shutil.copytree(golden, tampered)
    csv_file = next(tampered.glob("*.csv"))
    csv_file.write_text(csv_file.read_text().replace("expected", "expectet"))
    done = refused(run_step, tmp_path, f"--url={url}", "--model=iris", f"--golden={tampered}",
                   "--expected-column=expected")  # fmt: skip
    assert done.exit_code == 1
    assert f"{csv_file}: sha256 " in done.output
    assert "does not match the manifest's" in done.output
