"""detect-drift end to end: a model trained by train-model on data fetch-data fetched, the
reference found through the model's lineage, current data as a CSV dataset and as payload
logs, the reports and the lineage record, and every bad input refused with nothing written.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tekton_mlops.digests import read_manifest, root_hex
from tests.conftest import CLI

pytestmark = pytest.mark.integration

HEADER = ["age", "income", "city", "plan", "label"]
FEATURES = HEADER[:-1]


def people(seed: int, rows: int, shifted: bool = False) -> list[list[Any]]:
    """A table with two numeric and two categorical columns; shifted: age and city moved."""
    rng = np.random.default_rng(seed)
    age = rng.normal(48 if shifted else 40, 10, rows).round(1)
    income = rng.lognormal(10, 0.4, rows).round(0)
    odds = [0.1, 0.2, 0.3, 0.4] if shifted else [0.4, 0.3, 0.2, 0.1]
    city = rng.choice(["paris", "berlin", "rome", "oslo"], rows, p=odds)
    plan = rng.choice(["free", "pro"], rows, p=[0.7, 0.3])
    label = ((age > 40) ^ (city == "rome")).astype(int)
    return [
        [float(a), float(i), str(c), str(p), int(y)]
        for a, i, c, p, y in zip(age, income, city, plan, label, strict=True)
    ]


def write_table(path: Path, rows: list[list[Any]], header: list[str] = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(row[: len(header)] for row in rows)
    return path


def cli(*args: str) -> dict[str, str]:
    """Run a step as a process; its results."""
    results = Path(args[-1].split("=", 1)[1])
    done = subprocess.run([CLI, *args], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    return {p.name: p.read_text() for p in results.iterdir()}


class Trained:
    def __init__(self, root: Path) -> None:
        self.source = write_table(root / "source" / "people.csv", people(1, 800))
        self.dataset = root / "dataset"
        self.model = root / "model"
        self.fetched = cli(
            "fetch-data",
            f"--source={self.source.as_uri()}",
            f"--output={self.dataset}",
            f"--results-dir={root / 'r1'}",
        )
        self.trained = cli(
            "train-model",
            f"--data={self.dataset}",
            "--target-column=label",
            f"--output={self.model}",
            f"--results-dir={root / 'r2'}",
        )
        self.metadata = json.loads((self.model / "metadata.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """fetch-data of a local CSV, then train-model on the fetched dataset: the model's
    lineage names the CSV's file:// URI and the dataset's root digest."""
    return Trained(tmp_path_factory.mktemp("drift-model"))


def detect(run_step, model: Path, current: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_step(
        "detect-drift", f"--model-path={model}", f"--current={current}", f"--output={out}", *extra
    )


def error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def report(out: Path) -> dict[str, Any]:
    return json.loads((out / "drift-report.json").read_text())  # type: ignore[no-any-return]


def verdicts(out: Path) -> dict[str, bool]:
    return {c["column"]: c["drifted"] for c in report(out)["columns"]}


# --- verdicts -----------------------------------------------------------------------------


def test_a_fresh_sample_of_the_same_data_has_not_drifted(run_step, trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Production data has no label: only the model's feature columns are read. Each p-value
    # test flags about one fresh sample in twenty by design (chi-square more: it takes the
    # reference's shares as exact); this seed's sample passes all four, with p > 0.15.
    current = write_table(tmp_path / "current.csv", people(4, 400), FEATURES)
    done = detect(run_step, trained.model, current, tmp_path / "out")
    assert done.exit_code == 0, done.output
    assert done.results["drifted"] == "false"
    assert done.results["drifted-share"] == "0.0"
    assert json.loads(done.results["drifted-columns"]) == {"count": 0, "of": 4, "columns": []}
    assert verdicts(tmp_path / "out") == dict.fromkeys(FEATURES, False)
    found = report(tmp_path / "out")
    # 800 reference rows: Evidently's choice for up to 1000 is KS, chi-square, and Z for two.
    assert {c["column"]: c["test"] for c in found["columns"]} == {
        "age": "ks",
        "income": "ks",
        "city": "chisquare",
        "plan": "z",
    }
    assert found["reference"]["rows"] == 800
    assert found["current"]["rows"] == 400


def test_shifted_data_drifted_in_the_shifted_columns(run_step, trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    current = write_table(tmp_path / "current.csv", people(3, 400, shifted=True))
    done = detect(run_step, trained.model, current, tmp_path / "out")
    assert done.exit_code == 0, done.output
    assert verdicts(tmp_path / "out") == {
        "age": True,
        "income": False,
        "city": True,
        "plan": False,
    }
    assert done.results["drifted"] == "true"  # a share of 0.5 reaches drift-share 0.5
    assert done.results["drifted-share"] == "0.5"
    assert json.loads(done.results["drifted-columns"]) == {
        "count": 2,
        "of": 4,
        "columns": ["age", "city"],
    }
    assert done.results["report"] == str(tmp_path / "out" / "drift-report.json")
    strict = detect(run_step, trained.model, current, tmp_path / "out2", "--drift-share=0.6")
    assert strict.results["drifted"] == "false"


def test_the_reference_is_what_the_lineage_names_or_the_same_data_given(
    run_step, trained, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Unset, the reference is the lineage's file:// CSV (its sha256 differs from the
    recorded root digest of the one-file dataset, and is accepted as the same data);
    given, the fetched dataset itself. Both give the same report."""
    current = write_table(tmp_path / "current.csv", people(3, 400, shifted=True))
    found = detect(run_step, trained.model, current, tmp_path / "a")
    given = detect(
        run_step, trained.model, current, tmp_path / "b", f"--reference={trained.dataset}"
    )
    assert found.exit_code == given.exit_code == 0, found.output + given.output
    assert report(tmp_path / "a")["columns"] == report(tmp_path / "b")["columns"]
    recorded = trained.fetched["dataset-digest"]
    assert report(tmp_path / "a")["reference"]["digest"] == recorded
    assert report(tmp_path / "b")["reference"]["digest"] == recorded


def test_tests_and_thresholds_are_parameters(run_step, trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    current = write_table(tmp_path / "current.csv", people(3, 400, shifted=True))
    done = detect(
        run_step, trained.model, current, tmp_path / "out",
        "--numeric-test=psi", "--categorical-test=psi", "--psi-threshold=0.2", "--psi-bins=5",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    columns = report(tmp_path / "out")["columns"]
    assert {c["test"] for c in columns} == {"psi"}
    assert all(c["threshold"] == 0.2 and c["score"] == c["psi"] for c in columns)
    assert all(c["drifted"] == (c["psi"] >= 0.2) for c in columns)
    assert report(tmp_path / "out")["options"]["psi_bins"] == 5


def test_fail_on_drift_exits_1_after_writing_the_reports(run_step, trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    current = write_table(tmp_path / "current.csv", people(3, 400, shifted=True))
    done = detect(run_step, trained.model, current, tmp_path / "out", "--fail-on-drift=true")
    assert done.exit_code == 1
    assert error_line(done.output).startswith(
        "error: drift detected: 2 of 4 columns drifted (share 0.5 >= drift-share 0.5)"
    )
    assert report(tmp_path / "out")["drifted"] is True


# --- the reports and the lineage ------------------------------------------------------------


class _Cells(HTMLParser):
    """The text of each cell of the table with id "columns", and the ids on the page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.ids: list[str] = []
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self._in_table = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if tag == "table":
            self._in_table = found.get("id") == "columns"
        elif tag == "tr" and self._in_table:
            self.rows.append([])
        elif tag == "td" and self._in_table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._in_table = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_the_page_shows_the_numbers_of_the_json_and_a_histogram_per_drifted_column(
    run_step, trained, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    current = write_table(tmp_path / "current.csv", people(3, 400, shifted=True))
    assert detect(run_step, trained.model, current, tmp_path / "out").exit_code == 0
    found = report(tmp_path / "out")
    page = _Cells()
    page.feed((tmp_path / "out" / "drift-report.html").read_text())
    rows = [r for r in page.rows if r]
    assert len(rows) == 4
    for cells, column in zip(rows, found["columns"], strict=True):
        assert cells[0] == column["column"]
        assert cells[2] == column["test"]
        assert cells[3] == json.dumps(column["score"])
        assert cells[4] == json.dumps(column["threshold"])
        assert cells[5] == ("yes" if column["drifted"] else "no")
        assert cells[7] == json.dumps(column["psi"])
        assert cells[8:10] == [str(column["reference_count"]), str(column["current_count"])]
    histograms = sorted(
        i.removeprefix("histogram-") for i in page.ids if i.startswith("histogram-")
    )
    assert histograms == ["age", "city"]
    assert "svg" in page.tags
    assert "rect" in page.tags
    # Self-contained: nothing is loaded from anywhere.
    assert "script" not in page.tags
    assert "link" not in page.tags
    assert not {"src", "href"} & page.attributes


def test_report_digest_manifest_and_lineage_name_every_input_and_output(
    run_step, trained, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    current = write_table(tmp_path / "current.csv", people(3, 400, shifted=True))
    out = tmp_path / "out"
    done = detect(run_step, trained.model, current, out)
    assert done.exit_code == 0, done.output
    manifest = read_manifest(out)
    assert manifest is not None
    assert sorted(e.path for e in manifest.files) == ["drift-report.html", "drift-report.json"]
    digests = {
        name: hashlib.sha256((out / name).read_bytes()).hexdigest()
        for name in ("drift-report.html", "drift-report.json")
    }
    assert done.results["report-digest"] == "sha256:" + root_hex(digests)
    record = json.loads((out / ".mlops/lineage/detect-drift.intoto.json").read_text())
    inputs = {
        d["name"]: d["digest"]["sha256"]
        for d in record["predicate"]["buildDefinition"]["resolvedDependencies"]
    }
    assert inputs == {
        "model": trained.trained["model-digest"].removeprefix("sha256:"),
        "reference": trained.fetched["dataset-digest"].removeprefix("sha256:"),
        "current": hashlib.sha256(current.read_bytes()).hexdigest(),
    }
    subjects = {s["name"]: s["digest"]["sha256"] for s in record["subject"]}
    assert subjects == {**digests, "drift-report": root_hex(digests)}


# --- payload logs ---------------------------------------------------------------------------


def _event(kind: str, number: int, data: Any) -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"req-{number}",
            "type": f"org.kubeflow.serving.inference.{kind}",
            "source": "http://127.0.0.1:8080/",
            "time": "2026-11-30T12:00:00.000000Z",
            "datacontenttype": "application/json",
            "inferenceservicename": "people",
            "endpoint": "/v2/models/people/infer",
            "data": data,
        }
    )


def write_logs(folder: Path, metadata: dict[str, Any], rows: list[list[Any]], batch: int) -> Path:
    """The rows as requests of ``batch`` rows in the model's own layout, each followed by a
    response record, over two files, and a file still being written beside them."""
    folder.mkdir(parents=True)
    lines = []
    for number, start in enumerate(range(0, len(rows), batch)):
        part = rows[start : start + batch]
        if metadata["input_layout"] == "matrix":
            inputs = [
                {
                    "name": metadata["input"]["name"],
                    "datatype": "FP32",
                    "shape": [len(part), len(part[0])],
                    "data": [list(r) for r in part],  # nested, as V2 allows
                }
            ]
        else:
            inputs = [
                {
                    "name": spec["name"],
                    "datatype": spec["datatype"],
                    "shape": [len(part), 1],
                    "data": [r[FEATURES.index(spec["column"])] for r in part],
                }
                for spec in metadata["inputs"]
            ]
        lines.append(_event("request", number, {"inputs": inputs}))
        lines.append(_event("response", number, {"model_name": "people", "outputs": []}))
    half = len(lines) // 2
    (folder / "payloads-1.jsonl").write_text("\n".join(lines[:half]) + "\n")
    (folder / "payloads-2.jsonl").write_text("\n".join(lines[half:]) + "\n\n")
    (folder / "payloads-3.jsonl.partial").write_text('{"half a line')
    return folder


def test_payload_logs_give_the_verdicts_of_the_same_rows_as_a_csv(
    run_step, trained, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    rows = people(3, 400, shifted=True)
    assert trained.metadata["input_layout"] == "columns"  # categories: one input per column
    logs = write_logs(tmp_path / "logs", trained.metadata, rows, batch=7)
    from_logs = detect(run_step, trained.model, logs, tmp_path / "a")
    from_csv = detect(
        run_step, trained.model, write_table(tmp_path / "c.csv", rows), tmp_path / "b"
    )
    assert from_logs.exit_code == from_csv.exit_code == 0, from_logs.output + from_csv.output
    assert report(tmp_path / "a")["columns"] == report(tmp_path / "b")["columns"]
    assert report(tmp_path / "a")["current"] | {"digest": ""} == {
        "uri": logs.resolve().as_uri(),
        "digest": "",
        "format": "payload-logs",
        "rows": 400,
        "requests": 58,
        "skipped_requests": 0,
    }
    assert from_logs.results["drifted-columns"] == from_csv.results["drifted-columns"]


def test_payload_logs_of_a_matrix_model(run_step, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An all-numeric model takes one 2-D input; its logged rows are the table's rows."""
    model = tmp_path / "iris-model"
    cli("train-model", f"--data={datasets['iris']}", "--target-column=target",
        f"--output={model}", f"--results-dir={tmp_path / 'r'}")  # fmt: skip
    metadata = json.loads((model / "metadata.json").read_text())
    assert metadata["input_layout"] == "matrix"
    with datasets["iris"].open() as handle:
        table = [[float(v) for v in row[:-1]] for row in list(csv.reader(handle))[1:]]
    moved = [[r[0] + 1.0, r[1], r[2], r[3]] for r in table]
    logs = write_logs(tmp_path / "logs", metadata, moved, batch=10)
    done = detect(run_step, model, logs, tmp_path / "out", "--current-format=payload-logs")
    assert done.exit_code == 0, done.output
    names = metadata["feature_names"]
    assert [c for c, drifted in verdicts(tmp_path / "out").items() if drifted] == [names[0]]


def test_a_payload_log_digest_can_be_pinned(run_step, trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    logs = write_logs(tmp_path / "logs", trained.metadata, people(2, 100), batch=10)
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in logs.glob("*.jsonl")}
    pinned = "sha256:" + root_hex(files)
    done = detect(run_step, trained.model, logs, tmp_path / "out", f"--current-digest={pinned}")
    assert done.exit_code == 0, done.output
    assert report(tmp_path / "out")["current"]["digest"] == pinned


# --- bad input: exit 2 or 1, one clear line, nothing written --------------------------------


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--ks-threshold=1.5", "--ks-threshold='1.5': must be <= 1"),
        ("--chisquare-threshold=0", "--chisquare-threshold='0': must be > 0"),
        ("--wasserstein-threshold=-0.1", "--wasserstein-threshold='-0.1': must be > 0"),
        ("--jensenshannon-threshold=2", "--jensenshannon-threshold='2': must be <= 1"),
        ("--psi-threshold=abc", "--psi-threshold='abc': must be a number"),
        ("--drift-share=0", "--drift-share='0': must be > 0"),
        ("--drift-share=1.01", "--drift-share='1.01': must be <= 1"),
        ("--psi-bins=1", "--psi-bins='1': must be >= 2"),
        ("--numeric-test=chisquare", "--numeric-test='chisquare': must be one of auto, ks"),
        ("--current-format=parquet", "--current-format='parquet': must be one of auto, csv"),
        ("--current-digest=abc", "--current-digest='abc': must be 64 hex digits"),
    ],
)
def test_a_bad_parameter_exits_2_naming_it(run_step, trained, tmp_path, arg, message) -> None:  # type: ignore[no-untyped-def]
    current = write_table(tmp_path / "current.csv", people(2, 100))
    done = detect(run_step, trained.model, current, tmp_path / "out", arg)
    assert done.exit_code == 2
    assert message in done.output
    assert not (tmp_path / "out").exists()
    assert done.results == {}


def test_every_bad_parameter_is_named_at_once(run_step, trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    current = write_table(tmp_path / "current.csv", people(2, 100))
    done = detect(
        run_step, trained.model, current, tmp_path / "out", "--ks-threshold=2", "--psi-bins=0"
    )
    assert done.exit_code == 2
    assert "2 invalid parameter(s)" in done.output
    assert "--ks-threshold" in done.output
    assert "--psi-bins" in done.output
    assert not (tmp_path / "out").exists()


def _non_number(path: Path) -> None:
    rows = people(2, 100)
    rows[41][0] = "forty"
    write_table(path, rows)


def _infinite(path: Path) -> None:
    rows = people(2, 100)
    rows[9][1] = "inf"
    write_table(path, rows)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: write_table(p, people(2, 100), ["age", "income", "plan"]),
            "{current}: no column(s) 'city'; the columns are age, income, plan",
        ),
        (_non_number, "{current}: column 'age' row 43: 'forty' is not a number"),
        (_infinite, "{current}: column 'income' row 11: 'inf' is not a finite number"),
        (
            lambda p: write_table(p, people(2, 12)),
            "{current}: 12 current row(s), fewer than min-rows (30)",
        ),
    ],
    ids=["missing-column", "not-a-number", "infinite", "too-few-rows"],
)
def test_unusable_current_data_exits_1(run_step, trained, tmp_path, make, message) -> None:  # type: ignore[no-untyped-def]
    current = tmp_path / "current.csv"
    make(current)
    done = detect(run_step, trained.model, current, tmp_path / "out")
    assert done.exit_code == 1
    assert error_line(done.output).startswith("error: " + message.format(current=current))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not a JSON object (Expecting property name"),
        ('{"type": "com.example.other", "data": {}}', "type 'com.example.other' is neither"),
        (
            _event("request", 9, {"inputs": [{"name": "age", "datatype": "FP32",
                                              "shape": [1, 1], "data": [30.0]}]}),
            "no input 'income' in the request (it has 'age')",
        ),
        (
            _event("request", 9, {"inputs": []}),
            "no input 'age' in the request (it has none)",
        ),
    ],
    ids=["not-json", "other-type", "missing-input", "no-inputs"],
)  # fmt: skip
def test_a_bad_payload_log_line_exits_1_naming_file_and_line(
    run_step, trained, tmp_path, line, message
) -> None:  # type: ignore[no-untyped-def]
    logs = write_logs(tmp_path / "logs", trained.metadata, people(2, 100), batch=10)
    target = logs / "payloads-1.jsonl"
    lines = target.read_text().splitlines()
    target.write_text("\n".join([*lines[:3], line, *lines[3:]]) + "\n")
    done = detect(run_step, trained.model, logs, tmp_path / "out")
    assert done.exit_code == 1
    assert error_line(done.output).startswith(f"error: {target}:4: {message}")
    assert not (tmp_path / "out").exists()


def test_reference_data_that_is_not_the_training_data_exits_1_naming_both(
    run_step, trained, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    other = write_table(tmp_path / "other.csv", people(5, 800))
    current = write_table(tmp_path / "current.csv", people(2, 100))
    done = detect(run_step, trained.model, current, tmp_path / "out", f"--reference={other}")
    assert done.exit_code == 1
    actual = hashlib.sha256(other.read_bytes()).hexdigest()
    assert error_line(done.output) == (
        f"error: {other}: the reference data is sha256:{actual}, but the model was trained on "
        f"{trained.fetched['dataset-digest']} (its lineage record)"
    )
    assert not (tmp_path / "out").exists()


def test_a_changed_training_file_exits_1(run_step, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The lineage's file:// path no longer holds the data the model was trained on."""
    source = write_table(tmp_path / "people.csv", people(1, 300))
    cli("train-model", f"--data={source}", "--target-column=label",
        f"--output={tmp_path / 'model'}", f"--results-dir={tmp_path / 'r'}")  # fmt: skip
    recorded = hashlib.sha256(source.read_bytes()).hexdigest()
    source.write_text(source.read_text().replace("paris", "lyon", 1))
    current = write_table(tmp_path / "current.csv", people(2, 100))
    done = detect(run_step, tmp_path / "model", current, tmp_path / "out")
    assert done.exit_code == 1
    changed = hashlib.sha256(source.read_bytes()).hexdigest()
    assert error_line(done.output) == (
        f"error: {source}: the reference data is sha256:{changed}, but the model was trained "
        f"on sha256:{recorded} (its lineage record)"
    )
    assert not (tmp_path / "out").exists()


def test_a_lineage_record_that_disagrees_with_the_model_metadata_exits_1(
    run_step, trained, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "model"
    shutil.copytree(trained.model, copy)
    record = copy / ".mlops/lineage/train-model.intoto.json"
    recorded = trained.fetched["dataset-digest"].removeprefix("sha256:")
    record.write_text(record.read_text().replace(recorded, "0" * 64))
    current = write_table(tmp_path / "current.csv", people(2, 100))
    done = detect(run_step, copy, current, tmp_path / "out")
    assert done.exit_code == 1
    assert error_line(done.output) == (
        f"error: {record}: names the training data sha256:{'0' * 64}, but the model's "
        f"metadata.json (verified by its manifest) says {trained.fetched['dataset-digest']}"
    )
    assert not (tmp_path / "out").exists()


def test_a_model_trained_on_s3_data_needs_the_reference_given(
    run_step, s3, s3_server, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    s3.create_bucket(Bucket="drift")
    source = write_table(tmp_path / "people.csv", people(1, 300))
    s3.upload_file(str(source), "drift", "people.csv")
    fetched = cli("fetch-data", "--source=s3://drift/people.csv",
                  f"--endpoint-url={s3_server.endpoint}", f"--output={tmp_path / 'dataset'}",
                  f"--results-dir={tmp_path / 'r1'}")  # fmt: skip
    cli("train-model", f"--data={tmp_path / 'dataset'}", "--target-column=label",
        f"--output={tmp_path / 'model'}", f"--results-dir={tmp_path / 'r2'}")  # fmt: skip
    current = write_table(tmp_path / "current.csv", people(2, 100))
    alone = detect(run_step, tmp_path / "model", current, tmp_path / "out")
    assert alone.exit_code == 1
    assert error_line(alone.output) == (
        "error: the model was trained on s3://drift/people.csv, which is not a local path: "
        f"fetch it (fetch-data with {fetched['dataset-digest']}) and give it as the reference data"
    )
    assert not (tmp_path / "out").exists()
    given = detect(
        run_step,
        tmp_path / "model",
        current,
        tmp_path / "out",
        f"--reference={tmp_path / 'dataset'}",
    )
    assert given.exit_code == 0, given.output


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--model-digest=" + "0" * 64, "model.onnx: sha256 {model} does not match the pinned"),
        ("--current-digest=" + "0" * 64, "{current}: dataset digest sha256:{data} does not match"),
    ],
    ids=["model", "current"],
)
def test_a_pinned_digest_that_does_not_match_exits_1(
    run_step, trained, tmp_path, arg, message
) -> None:  # type: ignore[no-untyped-def]
    current = write_table(tmp_path / "current.csv", people(2, 100))
    done = detect(run_step, trained.model, current, tmp_path / "out", arg)
    assert done.exit_code == 1
    expected = message.format(
        model=trained.trained["model-digest"].removeprefix("sha256:"),
        current=current,
        data=hashlib.sha256(current.read_bytes()).hexdigest(),
    )
    assert expected in error_line(done.output)
    assert not (tmp_path / "out").exists()


def test_an_output_that_is_not_empty_is_refused_before_anything_is_read(
    run_step, trained, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = detect(run_step, trained.model, tmp_path / "does-not-exist.csv", out)
    assert done.exit_code == 1
    assert error_line(done.output) == (
        f"error: {out}: not empty (set overwrite to replace its content)"
    )
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    current = write_table(tmp_path / "current.csv", people(2, 100))
    again = detect(run_step, trained.model, current, out, "--overwrite=true")
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in out.iterdir()) == [
        ".mlops",
        "drift-report.html",
        "drift-report.json",
    ]


def test_the_drifted_columns_result_keeps_to_its_budget_as_tekton_counts_bytes() -> None:
    from tekton_mlops.results import termination_message_size
    from tekton_mlops.steps.detect_drift import drifted_columns

    # "<", ">" and "&" take 6 bytes each in Tekton's termination message, "é" 2.
    names = ["a<b>&c", "café", *(f"a_rather_long_column_name_{i:03d}" for i in range(200))]
    text = drifted_columns(names, 250)
    found = json.loads(text)
    assert found["count"] == 202
    assert found["of"] == 250
    assert 2 < len(found["columns"]) < 202
    assert found["columns"] == names[: len(found["columns"])]
    size = termination_message_size({"r": text}) - termination_message_size({"r": ""})
    assert 1000 - 40 < size <= 1000  # one more name (36 bytes with its quotes) would not fit
    assert json.loads(drifted_columns([], 4)) == {"count": 0, "of": 4, "columns": []}


def test_the_payload_logs_serve_writes_give_the_verdicts_of_the_same_rows_as_a_csv(
    run_step, trained, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A real `tekton-mlops serve --log-payloads` takes the rows as requests; its files,
    closed at SIGTERM, are the current data."""
    from tests.integration.test_serving import Server

    rows = people(3, 400, shifted=True)
    logs = tmp_path / "logs"
    server = Server(trained.model, "people", f"--log-payloads={logs}")
    try:
        for start in range(0, len(rows), 10):
            part = rows[start : start + 10]
            inputs = [
                {
                    "name": spec["name"],
                    "datatype": spec["datatype"],
                    "shape": [len(part), 1],
                    "data": [r[FEATURES.index(spec["column"])] for r in part],
                }
                for spec in trained.metadata["inputs"]
            ]
            status, _ = server.call("POST", "/v2/models/people/infer", {"inputs": inputs})
            assert status == 200
    finally:
        server.stop()  # SIGTERM: the last file is closed and renamed to *.jsonl
    assert "payload log: 80 record(s) written, 0 dropped" in server.log, server.log
    from_logs = detect(run_step, trained.model, logs, tmp_path / "a")
    from_csv = detect(
        run_step, trained.model, write_table(tmp_path / "c.csv", rows), tmp_path / "b"
    )
    assert from_logs.exit_code == from_csv.exit_code == 0, from_logs.output + from_csv.output
    assert report(tmp_path / "a")["current"]["requests"] == 40
    assert report(tmp_path / "a")["columns"] == report(tmp_path / "b")["columns"]


@pytest.mark.parametrize("mode", ["all", "request"])
def test_a_request_the_server_refused_is_skipped_and_counted(
    run_step, trained, tmp_path, mode
) -> None:  # type: ignore[no-untyped-def]
    """serve logs a refused request (400) too, as KServe's logger does: its rows are not
    data the model served. With responses logged it has none; with requests only, its inputs
    do not fit the model. Either way the drift is that of the accepted rows, one skip counted."""
    from tests.integration.test_serving import Server

    rows = people(3, 400, shifted=True)
    logs = tmp_path / "logs"
    server = Server(trained.model, "people", f"--log-payloads={logs}", f"--log-mode={mode}")
    try:
        for start in range(0, len(rows), 10):
            inputs = column_inputs(trained.metadata, rows[start : start + 10])
            assert server.call("POST", "/v2/models/people/infer", {"inputs": inputs})[0] == 200
            if start == 200:  # halfway, a client forgets a column
                refused = [t for t in inputs if t["name"] != "income"]
                status, answer = server.call("POST", "/v2/models/people/infer", {"inputs": refused})
                assert status == 400, answer
    finally:
        server.stop()  # SIGTERM: the last file is closed and renamed to *.jsonl
    written = 81 if mode == "all" else 41  # 40 answered requests (and their responses), 1 refused
    assert f"payload log: {written} record(s) written, 0 dropped" in server.log, server.log
    from_logs = detect(run_step, trained.model, logs, tmp_path / "a")
    from_csv = detect(
        run_step, trained.model, write_table(tmp_path / "c.csv", rows), tmp_path / "b"
    )
    assert from_logs.exit_code == from_csv.exit_code == 0, from_logs.output + from_csv.output
    current = report(tmp_path / "a")["current"]
    assert (current["rows"], current["requests"], current["skipped_requests"]) == (400, 40, 1)
    assert report(tmp_path / "a")["columns"] == report(tmp_path / "b")["columns"]
    assert (
        "1 not accepted by the model, skipped" in (tmp_path / "a" / "drift-report.html").read_text()
    )


def test_an_answered_request_that_does_not_fit_the_model_still_exits_1(
    run_step, trained, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Skipping is for requests the model refused: one it answered (a response with its id)
    that does not fit the layout read here means the layout is wrong, not the request."""
    logs = write_logs(tmp_path / "logs", trained.metadata, people(2, 100), batch=10)
    target = logs / "payloads-1.jsonl"
    lines = target.read_text().splitlines()
    answered = json.loads(lines[0])  # req-0, followed by its response
    answered["data"]["inputs"] = answered["data"]["inputs"][:1]
    target.write_text("\n".join([json.dumps(answered), *lines[1:]]) + "\n")
    done = detect(run_step, trained.model, logs, tmp_path / "out")
    assert done.exit_code == 1
    assert error_line(done.output).startswith(f"error: {target}:1: no input 'income'")
    assert not (tmp_path / "out").exists()


def column_inputs(metadata: dict[str, Any], part: list[list[Any]]) -> list[dict[str, Any]]:
    """V2 inputs of ``part`` in a one-input-per-column model's layout."""
    return [
        {
            "name": spec["name"],
            "datatype": spec["datatype"],
            "shape": [len(part), 1],
            "data": [r[FEATURES.index(spec["column"])] for r in part],
        }
        for spec in metadata["inputs"]
    ]
