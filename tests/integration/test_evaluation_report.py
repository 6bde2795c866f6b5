"""evaluate-model's HTML report: figures, numbers, baseline deltas, digests and bad paths.

Models are trained with ``tekton-mlops train-model`` on scikit-learn's bundled tables,
as a user would; each report is then read as a user reads it: the PNG files, the HTML
page (parsed, not searched as text) and the step's results and lineage record.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CLASSIFIER_FIGURES = {"roc.png", "precision-recall.png", "confusion-matrix.png", "calibration.png"}
REGRESSOR_FIGURES = {"predicted-vs-actual.png", "residuals.png"}
BOTH = {"permutation-importance.png"}
CASES = {
    "binary": ("cancer", "random-forest-classifier", '{"n_estimators": 20, "max_depth": 6}'),
    "multiclass": ("iris", "logistic-regression", '{"max_iter": 2000}'),
    "regression": ("diabetes", "random-forest-regressor", '{"n_estimators": 20, "max_depth": 6}'),
}


class Tables(HTMLParser):
    """Tables by id as lists of rows of cell text; images by src."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.tags: set[str] = set()
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self.tags.add(tag)
        if tag == "table":
            self._table = named.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(named.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(page: Path) -> Tables:
    parser = Tables()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def rows(parser: Tables, table: str) -> dict[str, list[str]]:
    """Body rows of a table keyed by their first cell."""
    return {row[0]: row[1:] for row in parser.tables[table][1:]}


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR, after checking the signature and every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append(kind)
        position += 12 + length
    assert chunks[0] == b"IHDR"
    assert chunks[-1] == b"IEND"
    assert b"tIME" not in chunks  # no date in the file
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def models(datasets, tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from tekton_mlops.cli import main

    root = tmp_path_factory.mktemp("report-models")
    trained = {}
    for case, (table, estimator, hyper) in {
        **CASES,
        "baseline": ("cancer", "logistic-regression", '{"max_iter": 2000}'),
    }.items():
        out = root / case
        outcome = CliRunner().invoke(
            main,
            [
                "train-model",
                f"--data={datasets[table]}",
                "--target-column=target",
                f"--output={out}",
                f"--estimator={estimator}",
                f"--hyperparameters={hyper}",
                f"--results-dir={root / ('results-' + case)}",
            ],
            catch_exceptions=False,
        )
        assert outcome.exit_code == 0, outcome.output
        trained[case] = out
    return trained


def evaluate(run_step, models, datasets, case: str, *extra: str):  # type: ignore[no-untyped-def]
    return run_step(
        "evaluate-model",
        f"--model-path={models[case]}",
        f"--data={datasets[CASES.get(case, CASES['binary'])[0]]}",
        *extra,
    )


@pytest.mark.parametrize("case", list(CASES))
def test_report_shows_the_step_s_numbers_and_every_figure(  # type: ignore[no-untyped-def]
    run_step, models, datasets, tmp_path, case
) -> None:
    import matplotlib.image

    out = tmp_path / "eval"
    thresholds = '{"r2": ">=0.99"}' if case == "regression" else '{"accuracy": ">=0.9"}'
    outcome = evaluate(
        run_step, models, datasets, case, f"--output={out}", "--report=report",
        f"--thresholds={thresholds}",
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    report = out / "report"  # a relative report directory is taken inside output
    expected = (REGRESSOR_FIGURES if case == "regression" else CLASSIFIER_FIGURES) | BOTH
    files = {p.name for p in report.iterdir() if p.is_file()}
    assert files == expected | {"report.html"}

    page = parse(report / "report.html")
    embedded = [base64.b64decode(src.split(",", 1)[1]) for src in page.images]
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    for name in expected:
        data = (report / name).read_bytes()
        width, height = png_size(data)
        assert (200, 200) <= (width, height) <= (2000, 2000)
        assert matplotlib.image.imread(BytesIO(data), format="png").shape[:2] == (height, width)
        assert data in embedded, name  # the page carries the very bytes of each figure
    # Self-contained: no script, no style sheet or image fetched from anywhere.
    assert not page.tags & {"script", "link", "iframe"}
    assert not re.search(r"(src|href)=\"(?!data:)", (report / "report.html").read_text())

    metrics = json.loads(outcome.results["metrics"])
    shown = rows(page, "metrics")
    assert {name: float(cells[0]) for name, cells in shown.items()} == metrics
    if case == "regression":
        assert shown["r2"][1:] == [">=0.99", "not met"]
    else:
        assert shown["accuracy"][1:] == [">=0.9", "met"]
    inputs = rows(page, "digests")
    assert inputs["model"][1] == f"sha256:{sha(models[case] / 'model.onnx')}"
    assert inputs["dataset"][1].startswith("sha256:")
    importance = rows(page, "importance")
    metadata = json.loads((models[case] / "metadata.json").read_text())
    assert set(importance) == set(metadata["feature_names"])

    # The digest result is the root of the report's manifest, recomputable from the files.
    manifest = json.loads((report / ".mlops" / "manifest.json").read_text())
    listed = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    assert listed == {name: sha(report / name) for name in files}
    root = hashlib.sha256(b"".join(bytes.fromhex(listed[p]) for p in sorted(listed)))
    assert outcome.results["report-digest"] == f"sha256:{root.hexdigest()}"
    lineage = json.loads((out / ".mlops/lineage/evaluate-model.intoto.json").read_text())
    subjects = {s["name"]: s["digest"]["sha256"] for s in lineage["subject"]}
    assert subjects["report"] == root.hexdigest()
    assert {f"report/{name}": listed[name] for name in files}.items() <= subjects.items()
    assert sum(len(name) + len(value) for name, value in outcome.results.items()) < 4096


def test_the_same_inputs_give_the_same_report_bytes(run_step, models, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first, second, other = (
        evaluate(
            run_step,
            models,
            datasets,
            "binary",
            f"--output={tmp_path / 'eval' / name}",
            f"--report={tmp_path / name}",
            *seed,
        )  # fmt: skip
        for name, seed in (("a", ()), ("b", ()), ("c", ("--seed=7",)))
    )
    assert first.exit_code == second.exit_code == other.exit_code == 0
    for path in (tmp_path / "a").iterdir():
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    assert first.results["report-digest"] == second.results["report-digest"]
    # The seed drives the importance's shuffles: another seed, another figure.
    assert sha(tmp_path / "c" / "permutation-importance.png") != sha(
        tmp_path / "a" / "permutation-importance.png"
    )


def test_baseline_deltas_are_candidate_minus_baseline(run_step, models, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    alone = evaluate(run_step, models, datasets, "baseline", f"--output={tmp_path / 'b'}")
    assert alone.exit_code == 0, alone.output
    compared = evaluate(
        run_step, models, datasets, "binary", f"--output={tmp_path / 'c'}",
        f"--report={tmp_path / 'report'}", f"--baseline-path={models['baseline']}",
    )  # fmt: skip
    assert compared.exit_code == 0, compared.output
    candidate = json.loads(compared.results["metrics"])
    baseline = json.loads(alone.results["metrics"])
    table = rows(parse(tmp_path / "report" / "report.html"), "baseline-deltas")
    assert set(table) == set(candidate) == set(baseline)
    for name, (mine, theirs, delta) in table.items():
        assert float(mine) == candidate[name]
        assert float(theirs) == baseline[name]  # the baseline as evaluate-model scores it alone
        assert float(delta) == pytest.approx(candidate[name] - baseline[name], abs=1e-6)
    assert (tmp_path / "report" / "baseline-deltas.png").is_file()
    lineage = json.loads((tmp_path / "c/.mlops/lineage/evaluate-model.intoto.json").read_text())
    deps = lineage["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {d["name"]: d["digest"]["sha256"] for d in deps}["baseline-model"] == sha(
        models["baseline"] / "model.onnx"
    )


def test_a_baseline_of_another_kind_is_refused_before_anything_is_written(  # type: ignore[no-untyped-def]
    run_step, models, datasets, tmp_path
) -> None:
    outcome = evaluate(
        run_step, models, datasets, "binary", f"--output={tmp_path / 'eval'}",
        f"--report={tmp_path / 'report'}", f"--baseline-path={models['regression']}",
    )  # fmt: skip
    assert outcome.exit_code == 1
    assert "the baseline is a regression model" in outcome.output
    assert not (tmp_path / "eval").exists()
    assert not (tmp_path / "report").exists()


def _bad_paths(tmp_path: Path) -> dict[str, tuple[str, str]]:
    (tmp_path / "a-file").write_text("keep me\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me too\n")
    return {
        "file": (str(tmp_path / "a-file"), "exists and is not a directory"),
        "under-a-file": (str(tmp_path / "a-file" / "report"), "is a file, not a directory"),
        "not-writable": ("/proc/self/report", "/proc/self is not writable"),
        "the-output-itself": (".", "the report needs a directory of its own"),
        "someone-else-s": (str(tmp_path / "notes"), "not empty and holds no earlier report"),
    }


@pytest.mark.parametrize(
    "case", ["file", "under-a-file", "not-writable", "the-output-itself", "someone-else-s"]
)
def test_a_bad_report_path_is_one_line_and_nothing_is_written(  # type: ignore[no-untyped-def]
    run_step, models, datasets, tmp_path, case
) -> None:
    path, message = _bad_paths(tmp_path)[case]
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    out = tmp_path / "eval"
    outcome = evaluate(run_step, models, datasets, "binary", f"--output={out}", f"--report={path}")
    assert outcome.exit_code == 1
    lines = [line for line in outcome.output.splitlines() if line.strip()]
    assert len(lines) == 1, outcome.output
    assert lines[0].startswith("error:")
    assert message in lines[0]
    assert outcome.results == {}
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "a-file").read_text() == "keep me\n"


def test_an_earlier_report_is_replaced_whole(run_step, models, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "report"
    out = f"--output={tmp_path / 'eval'}"
    first = evaluate(run_step, models, datasets, "regression", out, f"--report={report}")
    assert first.exit_code == 0, first.output
    (report / "stale.png").write_bytes(b"left from an older run")
    again = evaluate(run_step, models, datasets, "binary", out, f"--report={report}")
    assert again.exit_code == 0, again.output
    names = {p.name for p in report.iterdir()}
    assert names == CLASSIFIER_FIGURES | BOTH | {"report.html", ".mlops"}
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


# Python's audit hooks see every import and every process started, in this process.
SCRIPT = """
import sys
from click.testing import CliRunner
from tekton_mlops.cli import main
seen = set()
def hook(event, args):
    if event == "import" and args[0].split(".")[0] == "matplotlib":
        seen.add("matplotlib")
    elif event == "subprocess.Popen" and "tekton_mlops.ml.render" in list(args[1]):
        seen.add("renderer")
sys.addaudithook(hook)
outcome = CliRunner().invoke(main, ["evaluate-model", *sys.argv[1:]])
assert outcome.exit_code == 0, outcome.output
print(",".join(sorted(seen)))
"""


def test_matplotlib_is_loaded_only_for_a_report(models, datasets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def loaded(*extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, f"--model-path={models['binary']}",
             f"--data={datasets['cancer']}", f"--output={tmp_path / 'eval'}",
             f"--results-dir={tmp_path / 'results'}", *extra],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    assert loaded() == ""  # neither imported here nor a renderer process started
    assert (tmp_path / "results" / "report-digest").read_text() == ""
    # With a report, matplotlib runs in the renderer process, never in the step's own.
    assert loaded(f"--report={tmp_path / 'report'}") == "renderer"
    assert (tmp_path / "report" / "report.html").is_file()


def test_a_baseline_without_a_report_is_a_parameter_error(  # type: ignore[no-untyped-def]
    run_step, models, datasets, tmp_path
) -> None:
    outcome = evaluate(
        run_step, models, datasets, "binary", f"--output={tmp_path / 'eval'}",
        f"--baseline-path={models['baseline']}",
    )  # fmt: skip
    assert outcome.exit_code == 2
    assert "--baseline-path=" in outcome.output
    assert "set report" in outcome.output
    assert not (tmp_path / "eval").exists()
